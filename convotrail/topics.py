"""Topic administration: every topic of DESIGN.md section 2, one partition count.

Co-partitioning matters: conversation-events and every table changelog keyed by
conversation must have the same partition count, so one setting drives them all
and `ensure_topics` refuses to "fix" an existing topic with a different count.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic  # type: ignore[attr-defined]

from convotrail.errors import ConvotrailError, TopicError
from convotrail.settings import Settings

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    names, partitions, rf = settings.topics, settings.partitions, settings.replication_factor
    return [
        TopicSpec(names.conversation_events, partitions, rf, {},
                  "every fact about a conversation, keyed by conversation_id"),
        TopicSpec(names.delivery_notifications, partitions, rf, {},
                  "raw provider notifications, keyed by message_id"),
        TopicSpec(names.conversation_state, partitions, rf, dict(COMPACTED),
                  "latest ConversationState per conversation (compacted)"),
        TopicSpec(names.conversation_timeline, partitions, rf, {},
                  "one TimelineEntry per accepted event"),
        TopicSpec(names.read_receipts, partitions, rf, dict(COMPACTED),
                  "first/last view per message and viewer (compacted)"),
        TopicSpec(names.delivery_status, partitions, rf, dict(COMPACTED),
                  "delivery status per message and recipient (compacted)"),
        TopicSpec(names.suppressed_recipients, partitions, rf, dict(COMPACTED),
                  "recipients senders should not mail, per account (compacted, tombstone lifts)"),
        TopicSpec(names.message_routes, partitions, rf, dict(COMPACTED),
                  "internal: message ref -> conversation, co-partitioned with notifications"),
        TopicSpec(names.delivery_facts, partitions, rf, {},
                  "internal: delivery events keyed by account/recipient, before escalation"),
        TopicSpec(names.conversation_events_dlq, partitions, rf, {},
                  "conversation events that could not be accepted, with the reason"),
        TopicSpec(names.delivery_notifications_dlq, partitions, rf, {},
                  "notifications that could not be parsed, with the reason"),
        TopicSpec(names.conversation_timeline_dlq, partitions, rf, {},
                  "timeline entries the SQL sink could not decode, with the reason"),
        TopicSpec(names.conversation_state_dlq, partitions, rf, {},
                  "state snapshots the SQL sink could not decode, with the reason"),
        TopicSpec(names.read_receipts_dlq, partitions, rf, {},
                  "read receipts the SQL sink could not decode, with the reason"),
        TopicSpec(names.delivery_status_dlq, partitions, rf, {},
                  "delivery statuses the SQL sink could not decode, with the reason"),
    ]  # fmt: skip


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    created: bool
    partitions: int


def admin_client(settings: Settings) -> AdminClient:
    from convotrail import clients

    return clients.admin(settings)


class KafkaUnreachable(ConvotrailError):
    """Kafka refused this client (credentials, security protocol) or did not answer."""


class _Collected:
    """librdkafka's log lines of one client: kept for the error message, logged at DEBUG."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, level: int, message: str, *args: object) -> None:
        self.lines.append(message % args if args else message)
        log.debug(message, *args)


# "<broker>/bootstrap: " before, "(after 12ms in state AUTH_REQ)" after librdkafka's reasons.
_BROKER_PREFIX = re.compile(r"^\S+/(?:bootstrap|\d+): ")
_STATE_SUFFIX = re.compile(r"\s*\(after \d+ms in state \w+\)\s*$")


def _reason(text: str) -> str:
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", text.split("]: ", 1)[-1])).rstrip(" :")


def _refusal(settings: Settings, errors: list[KafkaError], logged: list[str]) -> str | None:
    """Why the broker turned this client away, when it did (as opposed to not answering)."""
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    if auth:
        reason = _reason(auth[-1].str())
        user = settings.kafka_extra.get("sasl.username")
        if "invalid credentials" in reason:
            who = f" of {user!r}" if user else ""
            fix = "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            return f"refused the credentials{who}: {reason}: {fix}"
        fix = "check KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM and the listener's port"
        return f"refused the SASL handshake: {reason}: {fix}"
    dropped = [line for line in logged if "Disconnected" in line]
    # Twice, so that a broker stopping while we connect is not taken for a refusal.
    if len(dropped) < 2:
        return None
    protocol = str(settings.kafka_extra.get("security.protocol", "plaintext")).lower()
    if protocol == "plaintext":
        return (
            "closed the connection without answering: the listener probably requires "
            "authentication (or TLS): set KAFKA_SECURITY_PROTOCOL (SASL_PLAINTEXT or SASL_SSL), "
            "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    return (
        f"closed the connection without answering ({_reason(dropped[-1])}): check that "
        f"KAFKA_SECURITY_PROTOCOL={protocol.upper()} is what its listener speaks"
    )


def connect(
    settings: Settings, timeout: float | None = None
) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client and the cluster's metadata, or one line saying why not.

    A refusal (wrong credentials, no credentials where the listener requires them, a
    SASL mechanism it does not offer) ends the wait at once; a broker that does not
    answer is waited for until `timeout` (default: CONVOTRAIL_CONNECT_TIMEOUT, 15 s).
    librdkafka's own lines about this connection go to DEBUG: the error says what they said.
    """
    from convotrail import clients

    if timeout is None:
        timeout = settings.connect_timeout
    errors: list[KafkaError] = []
    logged = _Collected()
    config: dict[str, Any] = {**clients.admin_config(settings), "error_cb": errors.append}
    admin = AdminClient(config, logger=logged)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            metadata = admin.list_topics(timeout=max(0.1, min(1.0, remaining)))
            break
        except KafkaException as exc:
            # Error and log callbacks are served by poll(); it also paces the retries.
            admin.poll(max(0.0, min(0.2, remaining)))
            refusal = _refusal(settings, errors, logged.lines)
            if refusal is not None:
                raise KafkaUnreachable(f"Kafka at {settings.bootstrap_servers} {refusal}") from exc
            if time.monotonic() >= deadline:
                known = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
                reason = _reason(known[-1].str()) if known else str(exc.args[0].str())
                raise KafkaUnreachable(
                    f"Kafka at {settings.bootstrap_servers} did not answer in "
                    f"{timeout:.0f} s: {reason}: check KAFKA_BOOTSTRAP_SERVERS"
                ) from exc
    admin.poll(0)
    refusal = _refusal(settings, [e for e in errors if e.code() == KafkaError._AUTHENTICATION], [])
    if refusal is not None:
        raise KafkaUnreachable(f"Kafka at {settings.bootstrap_servers} {refusal}")
    return admin, metadata


def _partition_count(admin: AdminClient, name: str, timeout: float) -> int:
    metadata = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
    return len(metadata.partitions) if metadata is not None else 0


def ensure_topics(
    admin: AdminClient, specs: list[TopicSpec], timeout: float = 30.0
) -> list[TopicOutcome]:
    """Create the topics that are missing; check the partition count of those that exist."""
    existing = admin.list_topics(timeout=timeout).topics
    outcomes: list[TopicOutcome] = []
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in specs:
        if spec.name in existing:
            found = len(existing[spec.name].partitions)
            if found != spec.partitions:
                raise TopicError(
                    f"topic {spec.name} exists with {found} partitions, not {spec.partitions}: "
                    "co-partitioned topics must share one count (CONVOTRAIL_PARTITIONS)"
                )
            outcomes.append(TopicOutcome(spec.name, False, found))
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name].result()
                outcomes.append(TopicOutcome(spec.name, True, spec.partitions))
            except KafkaException as exc:
                error = exc.args[0]
                # Another process created it between our listing and our request: fine.
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    # Our listing was stale: check the existing topic like any other.
                    found = _partition_count(admin, spec.name, timeout)
                    if found != spec.partitions:
                        raise TopicError(
                            f"topic {spec.name} exists with {found} partitions, not "
                            f"{spec.partitions}: co-partitioned topics must share one count "
                            "(CONVOTRAIL_PARTITIONS)"
                        ) from exc
                    outcomes.append(TopicOutcome(spec.name, False, found))
                else:
                    raise TopicError(f"creating topic {spec.name} failed: {error}") from exc
    order = {spec.name: index for index, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda outcome: order[outcome.name])
