"""The stream shell of the conversation processor: a faust-streaming app.

It only decodes, calls `core.evolve`, writes the table and sends the outputs:

    conversation-events --(decode, evolve)--> conversation-state (compacted)
                                         \\-> conversation-timeline
                                         \\-> conversation-events (derived, other keys)
                                         \\-> conversation-events.dlq (undecodable, rejected)

The table (`conversation-memory`, changelog-backed, co-partitioned with
conversation-events) holds each conversation's Memory as bytes, assigned back
after every event (a value changed in place never reaches the changelog). The
app runs with processing_guarantee=exactly_once: outputs, changelog writes and
source offsets are committed in one Kafka transaction, so a worker killed at any
moment neither loses nor doubles an output (derived events also carry
deterministic ids, and the sinks upsert idempotently).

Never put a slow await in the agent: it stalls rebalances and commits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Counter

from convotrail.settings import Settings
from processors.conversation.core import evolve
from processors.conversation.memory_codec import decode_memory, encode_memory
from schemas import headers as h
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import ConversationEvent, ConversationState, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

EVENTS_IN = Counter("convotrail_conversation_events_total", "Events read by outcome", ["outcome"])
OUTPUTS = Counter("convotrail_conversation_outputs_total", "Records produced", ["topic"])
DLQ = Counter("convotrail_conversation_dlq_total", "Records sent to the DLQ", ["reason"])

TABLE_NAME = "conversation-memory"


@dataclass(frozen=True)
class WorkerOptions:
    app_id: str = "convotrail-conversations"
    store: str = "rocksdb://"
    data_dir: str | None = None
    web_port: int | None = None
    # Short session timeouts make group joins and failover fast (the recipe's
    # advice for this broker); production may raise them.
    session_timeout: float = 10.0
    heartbeat_interval: float = 2.0
    exactly_once: bool = True


def wall_clock() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    options: WorkerOptions | None = None,
    clock: Callable[[], datetime] = wall_clock,
) -> faust.App:
    options = options or WorkerOptions()
    topics = settings.topics
    data_dir = Path(options.data_dir or settings.home / "worker")
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{topics.prefix}{options.app_id}",
        broker=f"kafka://{settings.bootstrap_servers}",
        store=options.store,
        datadir=str(data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="exactly_once" if options.exactly_once else "at_least_once",
        broker_session_timeout=options.session_timeout,
        broker_heartbeat_interval=options.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        web_enabled=options.web_port is not None,
        web_port=options.web_port or 6066,
        web_bind="127.0.0.1",
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=True,
        topic_disable_leader=True,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    events_topic = app.topic(topics.conversation_events, **raw)
    state_topic = app.topic(topics.conversation_state, **raw)
    timeline_topic = app.topic(topics.conversation_timeline, **raw)
    dlq_topic = app.topic(topics.conversation_events_dlq, **raw)
    table = app.Table(
        TABLE_NAME, default=None, partitions=settings.partitions, key_type=bytes, value_type=bytes
    )

    registry = Registry(settings.registry_url)
    serde = AvroSerde(registry)
    event_codec = ModelCodec(serde, topics.conversation_events, ConversationEvent)
    state_codec = ModelCodec(serde, topics.conversation_state, ConversationState)
    timeline_codec = ModelCodec(serde, topics.conversation_timeline, TimelineEntry)

    async def dead_letter(event: Any, reason: str, error: str, error_class: str) -> None:
        message = event.message
        DLQ.labels(reason).inc()
        log.warning(
            "dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
        )
        await dlq_topic.send(
            key=message.key,
            value=message.value,
            headers=[
                (h.DLQ_ERROR, f"{reason}: {error}".encode()),
                (h.DLQ_ERROR_CLASS, error_class.encode()),
                (h.DLQ_SOURCE_TOPIC, message.topic.encode()),
                (h.DLQ_SOURCE_PARTITION, str(message.partition).encode()),
                (h.DLQ_SOURCE_OFFSET, str(message.offset).encode()),
            ],
        )

    @app.agent(events_topic)
    async def conversations(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            try:
                decoded = event_codec.decode(event.value)
            except SerdeError as exc:
                EVENTS_IN.labels("undecodable").inc()
                await dead_letter(event, exc.reason, str(exc), type(exc).__name__)
                yield None
                continue
            key = decoded.conversation_id.encode()
            stored = table.get(key)
            try:
                memory = decode_memory(stored) if stored is not None else None
                memory, outputs = evolve(memory, decoded, clock())
            except Exception as exc:  # a bug must not stop the stream: park the record
                log.exception("processing %s failed", decoded.event_id)
                EVENTS_IN.labels("failed").inc()
                await dead_letter(event, "processing-error", repr(exc), type(exc).__name__)
                yield None
                continue
            table[key] = encode_memory(memory)  # assigned back: reaches the changelog
            for rejection in outputs.rejections:
                EVENTS_IN.labels("rejected").inc()
                await dead_letter(event, rejection.reason, rejection.message, "Rejection")
            EVENTS_IN.labels("duplicate").inc(outputs.duplicates)
            EVENTS_IN.labels("noop").inc(outputs.noops)
            EVENTS_IN.labels("applied").inc(outputs.applied)
            for entry in outputs.timeline:
                await timeline_topic.send(key=key, value=timeline_codec.encode(entry))
                OUTPUTS.labels("timeline").inc()
            if outputs.state is not None:
                await state_topic.send(key=key, value=state_codec.encode(outputs.state))
                OUTPUTS.labels("state").inc()
            for derived in outputs.derived:
                # Same-conversation derived events were applied already; they still go
                # to the log so that it holds every fact (and come back as duplicates).
                await events_topic.send(
                    key=derived.conversation_id.encode(),
                    value=event_codec.encode(derived),
                    headers=[(h.EVENT_TYPE, derived.type.value.encode())],
                )
                OUTPUTS.labels("derived").inc()
            yield None

    app.conversations_agent = conversations  # type: ignore[attr-defined]
    return app
