"""Topic administration: every topic of DESIGN.md section 2, one partition count.

Co-partitioning matters: conversation-events and every table changelog keyed by
conversation must have the same partition count, so one setting drives them all
and `ensure_topics` refuses to "fix" an existing topic with a different count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from convotrail.errors import TopicError
from convotrail.settings import Settings

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
