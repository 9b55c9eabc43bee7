"""The AsyncAPI 3 document of every convotrail topic, generated from the code.

Topic names, purposes, partition counts and compaction come from
`convotrail.topics.topic_specs`; Avro payloads are the expanded schemas of
`schemas.contract`, so the document cannot describe a topic or a field the code
does not have. `python -m schemas.asyncapi` writes docs/asyncapi.yaml; the test
suite checks that file against `generate()` and runs the AsyncAPI parser (with
its Avro schema parser) over it.

A dev tool: nothing at run time imports it, and it must never do I/O other than
writing the document in `main()`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from convotrail import __version__
from convotrail.settings import Settings
from convotrail.topics import TopicSpec, topic_specs
from schemas import contract

# Header names the intake and the processors write (one definition, shared with the code).
from schemas.headers import (
    DLQ_ERROR,
    DLQ_ERROR_CLASS,
    DLQ_EXPECTED_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TRUNCATED,
    IDEMPOTENCY_KEY,
    PROVIDERS,
)
from schemas.headers import PROVIDER as PROVIDER_HEADER

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"

ASYNCAPI_VERSION = "3.0.0"
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING_VERSION = "0.5.0"
SERVER_ID = "kafka"

_HEADERS_ARE_TEXT = "Kafka record headers; each value is UTF-8 text."

Json = dict[str, Any]
Action = Literal["send", "receive"]


@dataclass(frozen=True)
class _Message:
    """One kind of record a topic carries: its component id and how its value is written."""

    component_id: str
    title: str
    summary: str
    avro_type: str | None = None
    raw_description: str = ""
    headers: Json | None = None


@dataclass(frozen=True)
class _Topic:
    """What the document says about one topic beyond its TopicSpec."""

    channel_id: str
    key: str
    message: _Message
    action: Action
    operation_id: str
    operation_summary: str
    dead_letter: bool = False


def _dlq_headers() -> Json:
    digits = {"type": "string", "pattern": "^[0-9]+$"}
    return {
        "type": "object",
        "description": _HEADERS_ARE_TEXT,
        "required": [
            DLQ_ERROR,
            DLQ_ERROR_CLASS,
            DLQ_SOURCE_TOPIC,
            DLQ_SOURCE_PARTITION,
            DLQ_SOURCE_OFFSET,
        ],
        "properties": {
            DLQ_ERROR: {
                "type": "string",
                "description": "Why the record was refused, naming the field and the rule.",
            },
            DLQ_ERROR_CLASS: {
                "type": "string",
                "description": "Python class name of the error, for grouping and alerting.",
            },
            DLQ_SOURCE_TOPIC: {
                "type": "string",
                "description": "Topic the record was read from.",
            },
            DLQ_SOURCE_PARTITION: {
                **digits,
                "description": "Partition it was read from, as decimal text.",
            },
            DLQ_SOURCE_OFFSET: {
                **digits,
                "description": "Offset it was read at, as decimal text.",
            },
            DLQ_EXPECTED_PARTITION: {
                **digits,
                "description": (
                    "Only on `wrong-partition` dead letters: the partition the record's key "
                    "hashes to (Java's murmur2), as decimal text."
                ),
            },
            DLQ_TRUNCATED: {
                "type": "string",
                "description": (
                    "Only when the record was too large to carry whole (key over 4 KB, value "
                    "over 256 KB, headers over 64 KB): what was cut. The whole record stays "
                    "readable at its source offset while the topic retains it."
                ),
            },
        },
    }


def _notification_headers() -> Json:
    return {
        "type": "object",
        "description": _HEADERS_ARE_TEXT,
        "required": [PROVIDER_HEADER],
        "properties": {
            PROVIDER_HEADER: {
                "type": "string",
                "enum": list(PROVIDERS),
                "description": (
                    "Who sent the notification, which tells the bounce processor how to "
                    "parse the value: a provider's JSON webhook body, or `dsn` for a raw "
                    "RFC 3464 delivery status notification email."
                ),
            },
            IDEMPOTENCY_KEY: {
                "type": "string",
                "description": (
                    "The same for every retry of one notification: `<provider>:id:<the "
                    "provider's own id>:<notification kinds>` or "
                    "`<provider>:sha256:<digest of the value>`. "
                    "The bounce processor ignores a key it has seen for the same message "
                    "ref. Written by the webhook intake; optional (older records lack it)."
                ),
            },
        },
    }


def _topics(settings: Settings) -> dict[str, _Topic]:
    names = settings.topics
    return {
        names.conversation_events: _Topic(
            "conversationEvents",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "ConversationEvent",
                "Conversation event",
                "One fact about a conversation, from a producer or derived by a processor.",
                avro_type=contract.CONVERSATION_EVENT,
            ),
            "send",
            "publishConversationEvent",
            "Platform services (SDK, CLI) and processors append facts about conversations.",
        ),
        names.delivery_notifications: _Topic(
            "deliveryNotifications",
            "first message ref the provider names (no account: providers rarely say it); "
            "`recipient <address>` for a bounce that names no message (routed by recipient)",
            _Message(
                "DeliveryNotification",
                "Delivery notification",
                "A provider's delivery notification, as received.",
                raw_description=(
                    "The bytes the provider sent, unchanged: a JSON webhook body "
                    "(SES, SendGrid, Mailgun, Postmark) or an RFC 3464 DSN email."
                ),
                headers=_notification_headers(),
            ),
            "send",
            "publishDeliveryNotification",
            "The delivery-notification intake puts provider webhooks and DSN emails here.",
        ),
        names.conversation_state: _Topic(
            "conversationState",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "ConversationState",
                "Conversation state",
                "Latest snapshot of one conversation.",
                avro_type=contract.CONVERSATION_STATE,
            ),
            "receive",
            "consumeConversationState",
            "Sinks and analytics read each conversation's latest state.",
        ),
        names.conversation_timeline: _Topic(
            "conversationTimeline",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "TimelineEntry",
                "Timeline entry",
                "One rendered line of a conversation's audit trail.",
                avro_type=contract.TIMELINE_ENTRY,
            ),
            "receive",
            "consumeConversationTimeline",
            "Sinks and analytics read the human-readable timeline.",
        ),
        names.read_receipts: _Topic(
            "readReceipts",
            "account_id|message_id|viewer_kind|viewer_id (one record per message and viewer "
            "survives compaction)",
            _Message(
                "ReadReceipt",
                "Read receipt",
                "First and latest view of one message by one viewer.",
                avro_type=contract.READ_RECEIPT,
            ),
            "receive",
            "consumeReadReceipts",
            "Sinks and analytics read first and latest views per message and viewer.",
        ),
        names.delivery_status: _Topic(
            "deliveryStatus",
            "account_id|message_id|recipient (the recipient last: it may hold any character)",
            _Message(
                "DeliveryStatus",
                "Delivery status",
                "Furthest known delivery state of one message to one recipient.",
                avro_type=contract.DELIVERY_STATUS,
            ),
            "receive",
            "consumeDeliveryStatus",
            "Sinks and analytics read whether each email reached its recipient (compacted).",
        ),
        names.suppressed_recipients: _Topic(
            "suppressedRecipients",
            "account_id|recipient (the recipient last: it may hold any character)",
            _Message(
                "SuppressedRecipient",
                "Suppressed recipient",
                "A recipient senders should not mail; a null value (tombstone) lifts it.",
                avro_type=contract.SUPPRESSED_RECIPIENT,
            ),
            "receive",
            "consumeSuppressedRecipients",
            "Email senders read the suppression list (compacted) before sending.",
        ),
        names.message_routes: _Topic(
            "messageRoutes",
            "message_ref (no account: it must meet the notifications of that ref on one "
            "partition; the processor keeps one route per account under it), or "
            "`recipient <address>` for the recipient index",
            _Message(
                "MessageRoute",
                "Message route",
                "Internal to the bounce processor: the conversation of a message ref.",
                avro_type=contract.MESSAGE_ROUTE,
            ),
            "receive",
            "consumeMessageRoutes",
            "Internal: the bounce processor files routes where their notifications arrive.",
        ),
        names.delivery_facts: _Topic(
            "deliveryFacts",
            "account_id|recipient (the recipient last: it may hold any character)",
            _Message(
                "DeliveryFact",
                "Delivery fact",
                "Internal to the bounce processor: a delivery event before escalation.",
                avro_type=contract.CONVERSATION_EVENT,
            ),
            "receive",
            "consumeDeliveryFacts",
            "Internal: delivery events re-keyed by recipient for escalation and suppression.",
        ),
        names.conversation_events_dlq: _Topic(
            "conversationEventsDlq",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "RefusedConversationEvent",
                "Refused conversation event",
                "A record of conversation-events that could not be accepted.",
                raw_description=(
                    "The original value bytes, unchanged (normally Confluent-framed Avro, "
                    "but whatever arrived: undecodable records land here too)."
                ),
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeConversationEventsDlq",
            "Operators inspect and replay refused conversation events.",
            dead_letter=True,
        ),
        names.delivery_notifications_dlq: _Topic(
            "deliveryNotificationsDlq",
            "first message ref the provider names (no account: providers rarely say it); "
            "`recipient <address>` for a bounce that names no message (routed by recipient)",
            _Message(
                "RefusedDeliveryNotification",
                "Refused delivery notification",
                "A delivery notification that could not be parsed.",
                raw_description="The original notification bytes, unchanged.",
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeDeliveryNotificationsDlq",
            "Operators inspect and replay notifications the bounce processor could not parse.",
            dead_letter=True,
        ),
        names.conversation_timeline_dlq: _Topic(
            "conversationTimelineDlq",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "RefusedTimelineEntry",
                "Refused timeline entry",
                "A record of conversation-timeline the SQL sink could not decode.",
                raw_description="The original value bytes, unchanged.",
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeConversationTimelineDlq",
            "Operators inspect timeline records the SQL sink could not store.",
            dead_letter=True,
        ),
        names.conversation_state_dlq: _Topic(
            "conversationStateDlq",
            "account_id|conversation_id (schemas/keys.py: `|` joins the parts, account first)",
            _Message(
                "RefusedConversationState",
                "Refused conversation state",
                "A record of conversation-state the SQL sink could not decode.",
                raw_description="The original value bytes, unchanged.",
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeConversationStateDlq",
            "Operators inspect state records the SQL sink could not store.",
            dead_letter=True,
        ),
        names.read_receipts_dlq: _Topic(
            "readReceiptsDlq",
            "account_id|message_id|viewer_kind|viewer_id",
            _Message(
                "RefusedReadReceipt",
                "Refused read receipt",
                "A record of read-receipts the SQL sink could not decode.",
                raw_description="The original value bytes, unchanged.",
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeReadReceiptsDlq",
            "Operators inspect read receipts the SQL sink could not store.",
            dead_letter=True,
        ),
        names.delivery_status_dlq: _Topic(
            "deliveryStatusDlq",
            "account_id|message_id|recipient (the recipient last: it may hold any character)",
            _Message(
                "RefusedDeliveryStatus",
                "Refused delivery status",
                "A record of delivery-status the SQL sink could not decode.",
                raw_description="The original value bytes, unchanged.",
                headers=_dlq_headers(),
            ),
            "receive",
            "consumeDeliveryStatusDlq",
            "Operators inspect delivery statuses the SQL sink could not store.",
            dead_letter=True,
        ),
    }


def _message(message: _Message, topic: _Topic) -> Json:
    key = f"The record's {topic.key}, as UTF-8 text"
    if topic.dead_letter:
        key += ": the key of the refused record, unchanged"
    binding: Json = {"key": {"type": "string", "description": f"{key}."}}
    out: Json = {
        "name": message.component_id,
        "title": message.title,
        "summary": message.summary,
    }
    if message.avro_type is not None:
        out["description"] = (
            "Confluent wire format: magic byte 0, the 4-byte big-endian schema id of the "
            "registry (subject `<topic>-value`), then the Avro binary body."
        )
        out["payload"] = {
            "schemaFormat": AVRO_SCHEMA_FORMAT,
            "schema": contract.expand(message.avro_type),
        }
        # The registry holds the writer schema; readers must resolve by the framed id.
        binding |= {
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "schemaLookupStrategy": "TopicNameStrategy",
        }
    else:
        out["contentType"] = "application/octet-stream"
        out["description"] = message.raw_description
        out["payload"] = {"type": "string", "format": "binary"}
    if message.headers is not None:
        out["headers"] = message.headers
    out["bindings"] = {"kafka": {**binding, "bindingVersion": KAFKA_BINDING_VERSION}}
    return out


def _channel(spec: TopicSpec, topic: _Topic) -> Json:
    binding: Json = {
        "partitions": spec.partitions,
        "replicas": spec.replication_factor,
    }
    if spec.config.get("cleanup.policy"):
        binding["topicConfiguration"] = {
            "cleanup.policy": spec.config["cleanup.policy"].split(","),
        }
    message_id = topic.message.component_id
    return {
        "address": spec.name,
        "description": spec.purpose,
        "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {"kafka": {**binding, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _operation(topic: _Topic) -> Json:
    return {
        "action": topic.action,
        "channel": {"$ref": f"#/channels/{topic.channel_id}"},
        "summary": topic.operation_summary,
        "messages": [
            {"$ref": f"#/channels/{topic.channel_id}/messages/{topic.message.component_id}"}
        ],
    }


def document(settings: Settings | None = None) -> Json:
    """The AsyncAPI document as a mapping, for the default settings unless given others."""
    settings = Settings.from_env({}) if settings is None else settings
    topics = _topics(settings)
    specs = topic_specs(settings)
    undocumented = [spec.name for spec in specs if spec.name not in topics]
    if undocumented:
        # A topic added to topic_specs must be described here before it ships.
        raise KeyError(f"topics without an AsyncAPI description: {', '.join(undocumented)}")

    channels: Json = {}
    operations: Json = {}
    messages: Json = {}
    for spec in specs:
        topic = topics[spec.name]
        channels[topic.channel_id] = _channel(spec, topic)
        operations[topic.operation_id] = _operation(topic)
        messages[topic.message.component_id] = _message(topic.message, topic)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "convotrail",
            "version": __version__,
            "description": (
                "The Kafka topics of convotrail, the event backbone for customer-support "
                "conversations: producers append facts to conversation-events and raw "
                "provider notifications to delivery-notifications; processors derive "
                "conversation state, timelines and read receipts; refused records land in "
                "dead-letter topics with the reason.\n\n"
                "Topic names are the defaults: CONVOTRAIL_TOPIC_PREFIX prefixes them all, "
                "and CONVOTRAIL_PARTITIONS sets one partition count for every topic, "
                "because the conversation-keyed topics are co-partitioned.\n\n"
                "Generated by `python -m schemas.asyncapi`; do not edit by hand."
            ),
        },
        "servers": {
            SERVER_ID: {
                "host": settings.bootstrap_servers,
                "protocol": "kafka",
                "description": (
                    "The local stack's broker (`convotrail stack start`), the default; "
                    "KAFKA_BOOTSTRAP_SERVERS (with SCHEMA_REGISTRY_URL) points every "
                    "client at another cluster instead."
                ),
                "bindings": {
                    "kafka": {
                        "schemaRegistryUrl": settings.registry_url,
                        "schemaRegistryVendor": "apicurio",
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def generate() -> str:
    """The YAML text of docs/asyncapi.yaml."""
    # expand() shares sub-objects between schemas; a JSON round trip gives each use its
    # own copy, so the YAML has no anchors and aliases that a reader would have to follow.
    plain = json.loads(json.dumps(document()))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def main() -> int:
    DOCUMENT_PATH.write_text(generate(), encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
