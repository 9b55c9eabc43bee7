"""The conversation processor on the stream runtime: decode, evolve, encode.

    conversation-events --(core.evolve)--> conversation-timeline (an entry per applied event)
                                      \\-> conversation-state (the newest snapshot per commit)
                                      \\-> conversation-events (derived events; fired timers)
                                      \\-> conversation-events.dlq (undecodable, invalid,
                                          rejected, wrong partition)

Store `conversation-memory` (changelog `<app>-conversation-memory-changelog`): each
conversation's Memory, keyed like its events. Its schedule is the memory's armed
timers (firing.py), so reminders and auto-resolve fire from the runtime's loop
within 100 ms of their due time, in the transaction that marks them fired.

Everything here is a top-level function the runtime calls with a task: no Kafka,
no clock of its own (the task's clock is the wall clock, or in replay mode the
latest event time its partition has seen).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from convotrail import clients
from convotrail.logs import record_fields
from convotrail.settings import Settings, TopicNames
from processors import contract_check
from processors.conversation.core import evolve
from processors.conversation.firing import fire_timer, schedule
from processors.conversation.memory_codec import MemoryCodec, encode_memory, state_body
from processors.conversation.timers import TimerPolicy
from processors.runtime.metrics import labelled
from processors.runtime.store import Due, StoreSpec
from processors.runtime.task import Record, Task
from processors.runtime.topology import Topology
from schemas import headers as h
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import ConversationEvent, ConversationState, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

EVENTS_IN = Counter("convotrail_conversation_events_total", "Events read by outcome", ["outcome"])
TIMERS_PENDING = Gauge("convotrail_timers_pending", "Timers armed on this worker's partitions")
TIMERS_FIRED = Counter("convotrail_timers_fired_total", "Timer events sent", ["kind"])
TIMER_LATENESS = Histogram(
    "convotrail_timer_lateness_seconds",
    "From a timer's due time to its event being sent",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300, 3600),
)

MEMORY = "conversation-memory"
SNAPSHOTS = "snapshots"
COUNTS = "counts"
OUTCOMES = ("applied", "duplicate", "noop", "rejected")
WATERMARK = "watermark"
CLOCK = "clock"
INVALID_EVENT = contract_check.INVALID_EVENT


@dataclass(frozen=True)
class ConversationOptions:
    app_id: str = "convotrail-conversations"
    # Durable timers (reminders, auto-resolve); off for pipelines that replay history
    # whose timers are not under test.
    timers: bool = True
    timer_policy: TimerPolicy = field(default_factory=TimerPolicy)
    # Replay mode: timers fire in event time (each partition's latest occurred_at),
    # not on the wall clock, so the same log yields the same timeline.
    replay: bool = False


@dataclass(frozen=True)
class ConversationApp:
    """What the handlers need: topic names, codecs, options."""

    topics: TopicNames
    options: ConversationOptions
    events: ModelCodec[ConversationEvent]
    states: ModelCodec[ConversationState]
    timeline: ModelCodec[TimelineEntry]


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _clock(task: Task[ConversationApp]) -> datetime:
    """The task's clock as a datetime, converted once per millisecond, not per event."""
    ms = task.now()
    last = task.scratch.get(CLOCK)
    if last is not None and last[0] == ms:
        moment: datetime = last[1]
        return moment
    moment = _datetime(ms)
    task.scratch[CLOCK] = (ms, moment)
    return moment


def _event_headers(event: ConversationEvent) -> list[tuple[str, bytes | str | None]]:
    return [(h.EVENT_TYPE, event.type.value.encode())]


def on_event(task: Task[ConversationApp], record: Record) -> None:
    """One event: evolve its conversation's memory and send what it produced."""
    app = task.app
    try:
        event = app.events.decode(record.value())
    except SerdeError as exc:
        labelled(EVENTS_IN, "undecodable").inc()
        task.dead_letter(record, exc.reason, str(exc), type(exc).__name__)
        return
    refused = contract_check.refusal(task, record, event)  # the topic is not trusted
    if refused is not None:
        labelled(EVENTS_IN, "invalid").inc()
        task.dead_letter(record, INVALID_EVENT, str(refused), "InvalidEvent",
                         account=event.account_id, conversation=event.conversation_id)  # fmt: skip
        return
    if app.options.replay:
        moment = round(event.occurred_at.timestamp() * 1000)
        task.scratch[WATERMARK] = max(task.scratch.get(WATERMARK, 0), moment)
    store = task.store(MEMORY)
    key = keys.of_event(event)
    before = store.get(key)
    memory, outputs = evolve(before, event, _clock(task))
    if memory is not before:
        store.put(key, memory)
    for rejection in outputs.rejections:
        task.dead_letter(record, rejection.reason, rejection.message, "Rejection",
                         account=event.account_id, conversation=event.conversation_id)  # fmt: skip
    # Counted per commit (a Prometheus inc() per event takes a lock).
    counts = task.pending.get(COUNTS)
    if counts is None:
        counts = task.pending[COUNTS] = [0, 0, 0, 0]
    counts[0] += outputs.applied
    counts[1] += outputs.duplicates
    counts[2] += outputs.noops
    counts[3] += len(outputs.rejections)
    timeline_topic = app.topics.conversation_timeline
    for entry in outputs.timeline:
        task.send(timeline_topic, key, app.timeline.encode(entry))
    if outputs.state is not None:
        # conversation-state is a compacted snapshot topic: the newest per commit.
        task.pending.setdefault(SNAPSHOTS, {})[key] = outputs.state
    for derived in outputs.derived:
        # Same-conversation derived events were applied already; they still go to
        # the log so that it holds every fact (and come back as duplicates).
        task.send(app.topics.conversation_events, keys.of_event(derived),
                  app.events.encode(derived), _event_headers(derived))  # fmt: skip


def on_due(task: Task[ConversationApp], store_name: str, due: Due) -> None:
    """A timer is due: fire it (once: the mark and the event commit together)."""
    app = task.app
    store = task.store(MEMORY)
    memory = store.get(due.key)
    if memory is None:
        return
    now = task.now()
    fired, event = fire_timer(memory, due.tag, _datetime(now), app.options.timer_policy)
    if event is None:
        # The index entry is stale (the policy changed): re-index the conversation.
        store.put(due.key, memory)
        return
    store.put(due.key, fired)
    task.send(app.topics.conversation_events, keys.of_event(event), app.events.encode(event),
              _event_headers(event))  # fmt: skip
    TIMERS_FIRED.labels(event.type.value).inc()
    late = max(0.0, (now - due.due) / 1000)
    if not app.options.replay:
        TIMER_LATENESS.observe(late)
    if log.isEnabledFor(logging.INFO):  # --verbose: one line per timer fired
        log.info("timer %s fired %.3fs after its due time: %s", due.tag, late, event.type.value,
                 extra=record_fields(partition=task.partition, account=event.account_id,
                                     conversation=event.conversation_id))  # fmt: skip


def before_commit(task: Task[ConversationApp]) -> None:
    """Send each changed conversation's newest snapshot; the memory reuses its encoding."""
    app = task.app
    counts = task.pending.pop(COUNTS, None)
    if counts is not None:
        for outcome, count in zip(OUTCOMES, counts, strict=True):
            if count:
                labelled(EVENTS_IN, outcome).inc(count)
    store = task.store(MEMORY)
    snapshots: dict[bytes, ConversationState] = task.pending.pop(SNAPSHOTS, {})
    for key, state in snapshots.items():
        body = state_body(state)
        task.send(app.topics.conversation_state, key, app.states.header + body)
        memory = store.get(key)
        if memory is not None and memory.state is state:
            store.put(key, memory, encoded=encode_memory(memory, body))


def replay_clock(task: Task[ConversationApp]) -> int:
    """Replay mode: a partition's clock is the latest event time read from it."""
    watermark: int = task.scratch.get(WATERMARK, 0)
    return watermark


def policy_fingerprint(policy: TimerPolicy) -> str:
    """Changes when the timer policy does: the store re-indexes its timers then."""

    def seconds(value: Any) -> float | None:
        return None if value is None else value.total_seconds()

    described = {
        "channels": sorted((c.value, seconds(t.waiting_on_customer), seconds(t.waiting_on_staff))
                           for c, t in policy.channels.items()),
        "accounts": sorted((a, c.value, seconds(t.waiting_on_customer), seconds(t.waiting_on_staff))
                           for (a, c), t in policy.accounts.items()),
        "resolved": policy.reminders_when_resolved,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


def create_app(
    settings: Settings, options: ConversationOptions, registry: Registry | None = None
) -> ConversationApp:
    serde = AvroSerde(registry or clients.registry(settings))
    names = settings.topics
    return ConversationApp(
        topics=names,
        options=options,
        events=ModelCodec(serde, names.conversation_events, ConversationEvent),
        states=ModelCodec(serde, names.conversation_state, ConversationState),
        timeline=ModelCodec(serde, names.conversation_timeline, TimelineEntry),
    )


def topology(
    settings: Settings,
    options: ConversationOptions | None = None,
    registry: Registry | None = None,
) -> Topology[ConversationApp]:
    options = options or ConversationOptions()
    app = create_app(settings, options, registry)
    names = settings.topics
    policy = options.timer_policy
    memory = StoreSpec(
        MEMORY,
        MemoryCodec(),
        schedule=partial(schedule, policy=policy) if options.timers else None,
        schedule_version=policy_fingerprint(policy) if options.timers else "",
        scheduled_gauge=TIMERS_PENDING if options.timers else None,
    )
    return Topology(
        app_id=f"{names.prefix}{options.app_id}",
        app=app,
        handlers={names.conversation_events: on_event},
        dead_letters={names.conversation_events: names.conversation_events_dlq},
        stores=(memory,),
        on_due=on_due if options.timers else None,
        before_commit=before_commit,
        clock=replay_clock if options.replay else None,
        outputs=(names.conversation_state, names.conversation_timeline),
    )
