"""The stream shell of the conversation processor: a faust-streaming app.

It only decodes, calls `core.evolve`, writes the table and sends the outputs:

    conversation-events --(decode, evolve)--> conversation-state (compacted)
                                         \\-> conversation-timeline
                                         \\-> conversation-events (derived, other keys)
                                         \\-> conversation-events.dlq (undecodable, rejected)

The table (`conversation-memory`, changelog-backed, co-partitioned with
conversation-events) holds each conversation's Memory as bytes. Events are taken
in batches (`take_events`): a conversation's memory is read once per batch,
evolved through its events in order, and assigned back once at the end of the
batch (a value changed in place never reaches the changelog).

Delivery guarantee: at least once, with every output idempotent downstream, in
this order per batch:

1. outputs (timeline, state, derived events, dead letters) are sent and the
   worker waits until the broker has acknowledged all of them (acks=all);
2. only then the memories are written (RocksDB and the changelog);
3. the batch is acked; faust flushes the producer before it commits offsets.

A worker killed anywhere in between reprocesses the batch: a memory that reached
the changelog implies its outputs reached their topics (step 1 before 2), so an
event that is a duplicate on reprocessing lost nothing; an event whose memory was
not written is processed again and its outputs repeat with the same event_id and
state version, which the sinks fold (timeline keyed by event_id, state applied
only when newer) and the core drops (derived events carry deterministic ids).
RocksDB is written before the changelog, so after an unclean stop the local store
is wiped and rebuilt from the changelog (recovery.py).

Why not faust's exactly_once: faust-streaming 0.15.3 crashed under it when
partitions moved between two workers ("Can't send messages while not in
transaction" in the producer buffer, then "ConsistencyError: persisted offset for
changelog ... is higher" on the worker that took the partitions); the ordering
above gives the same stored result without transactions (docs/ARCHITECTURE.md).

Never put a slow await in the agent: it stalls rebalances and commits.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.utils.terminal import SpinnerHandler
from prometheus_client import Counter, Gauge, Histogram

from convotrail.settings import Settings
from processors.conversation.core import Memory, evolve
from processors.conversation.memory_codec import decode_memory, encode_memory
from processors.conversation.timer_index import TimerIndex
from processors.conversation.timers import TimerPolicy, fire, pending_timers
from schemas import headers as h
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import ConversationEvent, ConversationState, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

EVENTS_IN = Counter("convotrail_conversation_events_total", "Events read by outcome", ["outcome"])
OUTPUTS = Counter("convotrail_conversation_outputs_total", "Records produced", ["topic"])
TIMERS_PENDING = Gauge("convotrail_timers_pending", "Timers armed on this worker's partitions")
TIMERS_FIRED = Counter("convotrail_timers_fired_total", "Timer events sent", ["kind"])
TIMER_LATENESS = Histogram(
    "convotrail_timer_lateness_seconds",
    "From a timer's due time to its event being sent",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300, 3600),
)
DLQ = Counter("convotrail_conversation_dlq_total", "Records sent to the DLQ", ["reason"])

TABLE_NAME = "conversation-memory"

# Events are taken in batches so that each conversation's memory is read from the
# table, decoded, encoded and written to the changelog once per batch instead of
# once per event (a conversation's events come in bursts: in the benchmark traffic
# a batch of 500 holds about 65 conversations). A partial batch waits at most
# BATCH_WITHIN seconds for more events.
BATCH_SIZE = 500
BATCH_WITHIN = 0.05


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
    # faust's transactional mode; off by default (see the module docstring). Kept
    # so that the benchmark can measure it.
    exactly_once: bool = False
    # Durable timers (reminders, auto-resolve); off for pipelines that replay
    # history whose timers are not under test.
    timers: bool = True
    timer_policy: TimerPolicy = field(default_factory=TimerPolicy)
    # Replay mode: timers fire in event time (each partition's latest occurred_at),
    # not on the wall clock, so the same log yields the same timeline.
    replay: bool = False
    # How often the timer loop looks for due timers: sub-second resolution.
    timer_tick: float = 0.1


def make_current(event: Any) -> None:
    """Make `event` faust's current event, as faust's Stream does for each event it
    yields: the table reads and writes of its key go to its partition (store and
    changelog). take_events fills its buffer in another task, whose context the
    agent does not share, so the agent sets it for each event of a batch."""
    _current_event.set(weakref.ref(event))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wall_clock() -> datetime:
    return datetime.now(UTC)


def app_settings(settings: Settings, options: WorkerOptions) -> dict[str, Any]:
    """The faust settings of the worker (broker, guarantees, store); shared with bench/."""
    data_dir = Path(options.data_dir or settings.home / "worker")
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": options.store,
        "datadir": str(data_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "processing_guarantee": "exactly_once" if options.exactly_once else "at_least_once",
        "broker_session_timeout": options.session_timeout,
        "broker_heartbeat_interval": options.heartbeat_interval,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": options.web_port is not None,
        "web_port": options.web_port or 6066,
        "web_bind": "127.0.0.1",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_allow_declare": True,
        "topic_disable_leader": True,
        # Outputs wait up to 50 ms to share a produce request; at linger 0 every
        # output made its own batch and request, and a full 16 KB batch stalled
        # the agent until the broker answered (docs/benchmarks.md: 1.5x events/s).
        "producer_linger": 0.05,
        "producer_max_batch_size": 256 * 1024,
    }


def drop_unprinted_debug_records() -> None:
    """Raise the root logger to the lowest level one of its handlers prints.

    faust's start-up spinner (`worker --loglevel warn`, the CLI default) sets the
    root logger to DEBUG and only its handlers to the chosen level, so every debug
    line of aiokafka and faust builds a LogRecord that nothing prints: some 14% of
    the worker's CPU under load (docs/benchmarks.md). What is printed is unchanged.
    """
    root = logging.getLogger()
    printed = [h.level for h in root.handlers if not isinstance(h, SpinnerHandler)]
    if printed and min(printed) > root.level:
        root.setLevel(min(printed))


def install_logging_fix(app: faust.App) -> None:
    """Run `drop_unprinted_debug_records` once the worker has set logging up."""

    async def drop_debug_records() -> None:
        drop_unprinted_debug_records()

    app.task(drop_debug_records)


def create_app(
    settings: Settings,
    options: WorkerOptions | None = None,
    clock: Callable[[], datetime] = wall_clock,
) -> faust.App:
    options = options or WorkerOptions()
    topics = settings.topics
    app = faust.App(f"{topics.prefix}{options.app_id}", **app_settings(settings, options))
    install_logging_fix(app)
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
    index = TimerIndex()
    watermarks: dict[int, datetime] = {}  # per partition, the latest event time seen
    # Imported here: processors.shell builds on this module's app settings.
    from processors.shell import install_stall_guard, note_progress

    stalls = install_stall_guard(app, {topics.conversation_events})

    async def dead_letter(
        event: Any, reason: str, error: str, error_class: str, acks: list[Awaitable[Any]]
    ) -> None:
        message = event.message
        DLQ.labels(reason).inc()
        log.warning(
            "dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
        )
        ack = await dlq_topic.send(
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
        acks.append(ack)

    async def process(
        event: Any,
        changed: dict[bytes, tuple[Memory, Any]],
        snapshots: dict[bytes, ConversationState],
        acks: list[Awaitable[Any]],
    ) -> None:
        """One event: evolve the conversation's memory (kept in `changed` until the
        batch ends), send the outputs (their delivery futures go to `acks`), and
        dead-letter what cannot be processed."""
        try:
            decoded = event_codec.decode(event.value)
        except SerdeError as exc:
            EVENTS_IN.labels("undecodable").inc()
            await dead_letter(event, exc.reason, str(exc), type(exc).__name__, acks)
            return
        partition = event.message.partition
        watermarks[partition] = max(watermarks.get(partition, _EPOCH), decoded.occurred_at)
        key = decoded.conversation_id.encode()
        pending = changed.get(key)
        stored = table.get(key) if pending is None else None
        try:
            if pending is not None:
                memory: Memory | None = pending[0]
            else:
                memory = decode_memory(stored) if stored is not None else None
            memory, outputs = evolve(memory, decoded, clock())
        except Exception as exc:  # a bug must not stop the stream: park the record
            log.exception("processing %s failed", decoded.event_id)
            EVENTS_IN.labels("failed").inc()
            await dead_letter(event, "processing-error", repr(exc), type(exc).__name__, acks)
            return
        changed[key] = (memory, event)
        for rejection in outputs.rejections:
            EVENTS_IN.labels("rejected").inc()
            await dead_letter(event, rejection.reason, rejection.message, "Rejection", acks)
        EVENTS_IN.labels("duplicate").inc(outputs.duplicates)
        EVENTS_IN.labels("noop").inc(outputs.noops)
        EVENTS_IN.labels("applied").inc(outputs.applied)
        for entry in outputs.timeline:
            acks.append(await timeline_topic.send(key=key, value=timeline_codec.encode(entry)))
            OUTPUTS.labels("timeline").inc()
        if outputs.state is not None:
            snapshots[key] = outputs.state  # sent once per batch, the latest
        for derived in outputs.derived:
            # Same-conversation derived events were applied already; they still go
            # to the log so that it holds every fact (and come back as duplicates).
            ack = await events_topic.send(
                key=derived.conversation_id.encode(),
                value=event_codec.encode(derived),
                headers=[(h.EVENT_TYPE, derived.type.value.encode())],
            )
            acks.append(ack)
            OUTPUTS.labels("derived").inc()

    @app.agent(events_topic)
    async def conversations(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        # take_events is on the Stream class only, not on the StreamT interface.
        batches = cast("faust.Stream[bytes]", stream).take_events(BATCH_SIZE, within=BATCH_WITHIN)
        async for events in batches:
            # Per conversation: its memory after the batch's events so far, and the
            # last of those events (whose partition the table write belongs to).
            changed: dict[bytes, tuple[Memory, Any]] = {}
            # conversation-state is a compacted snapshot topic: one snapshot per
            # conversation per batch, its latest, instead of one per event (the
            # benchmark's cheapest win: a third fewer records to produce).
            snapshots: dict[bytes, ConversationState] = {}
            acks: list[Awaitable[Any]] = []
            for event in events:
                make_current(event)
                await process(event, changed, snapshots, acks)
            for key, snapshot in snapshots.items():
                make_current(changed[key][1])
                acks.append(await state_topic.send(key=key, value=state_codec.encode(snapshot)))
                OUTPUTS.labels("state").inc()
            # Step 1 of the module docstring: every output of the batch is on the
            # broker before any memory that records it is written.
            if acks:
                await asyncio.gather(*acks)
            for key, (memory, last) in changed.items():
                make_current(last)
                table[key] = encode_memory(memory)  # assigned back: reaches the changelog
                if options.timers and memory.state is not None:
                    timers = pending_timers(memory.state, options.timer_policy)
                    index.set(last.message.partition, memory.state.conversation_id, timers)
            TIMERS_PENDING.set(len(index))
            note_progress(stalls, events)
            yield None

    @table.on_recover
    async def rebuild_timer_index() -> None:
        # After every assignment (the table is recovered from the changelog for the
        # partitions this worker now has): the index holds exactly their timers.
        index.clear()
        if not options.timers:
            return
        for key, value in table.items():
            memory = decode_memory(value)
            if memory.state is None:
                continue
            partition = app.producer.key_partition(topics.conversation_events, key).partition
            index.set(partition, memory.state.conversation_id,
                      pending_timers(memory.state, options.timer_policy))  # fmt: skip
        TIMERS_PENDING.set(len(index))
        log.info("timer index rebuilt: %d pending timers", len(index))

    @app.timer(interval=options.timer_tick)  # type: ignore[untyped-decorator]
    async def fire_due_timers() -> None:
        if not options.timers or app.rebalancing:
            return
        wall = clock()

        def now(partition: int) -> datetime:
            # Replay mode: a partition's clock is the latest event time it has seen.
            return watermarks.get(partition, _EPOCH) if options.replay else wall

        for partition, timer in index.due(now):
            stored = table.get(timer.conversation_id.encode())
            state = decode_memory(stored).state if stored is not None else None
            event = fire(state, timer, now(partition), options.timer_policy)
            if event is None:
                continue
            # To the log, like every fact: it comes back through the agent, which
            # applies it (and disarms the timer) or drops it as a duplicate.
            await events_topic.send(
                key=event.conversation_id.encode(),
                value=event_codec.encode(event),
                headers=[(h.EVENT_TYPE, event.type.value.encode())],
            )
            TIMERS_FIRED.labels(event.type.value).inc()
            if not options.replay:
                TIMER_LATENESS.observe(max(0.0, (wall - timer.due_at).total_seconds()))

    app.conversations_agent = conversations  # type: ignore[attr-defined]
    app.timer_index = index  # type: ignore[attr-defined]
    return app
