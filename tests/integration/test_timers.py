"""Timers through the real broker, registry and worker process: reminders fire,
stale chats auto-resolve, a worker killed before the due time still fires exactly
one event, timers that fell due while nothing ran fire late on recovery, and
replay mode fires in event time."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.publisher import EventPublisher
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.keys import conversation, partition_of
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.metrics import scrape
from tests.support.ports import free_ports
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, start_worker, stop_worker

pytestmark = pytest.mark.integration

ACCOUNT = "acct-1"

DANA = m.Actor(kind=m.ActorKind.STAFF, id="stf-dana", name="Dana")
JO = m.Actor(kind=m.ActorKind.CUSTOMER, id="cus-jo", name="Jo Park")
SUPPORT = m.InboxRef(id="inb-support", name="Support")


class History:
    """Events of several conversations, with ids in order."""

    def __init__(self) -> None:
        self.number = 0

    def __call__(self, conversation_id: str, payload: m.Payload, at: datetime,
                 actor: m.Actor = DANA) -> m.ConversationEvent:  # fmt: skip
        self.number += 1
        return m.ConversationEvent(
            event_id=f"evt-{self.number:04d}", conversation_id=conversation_id,
            account_id=ACCOUNT, type=m.TYPE_BY_PAYLOAD[type(payload)], occurred_at=at,
            actor=actor, payload=payload,
        )  # fmt: skip

    def created(
        self, conversation_id: str, channel: m.Channel, at: datetime
    ) -> m.ConversationEvent:
        payload = m.ConversationCreated(channel=channel, inbox=SUPPORT, customer_id="cus-jo")
        return self(conversation_id, payload, at, JO)

    def staff_reply(self, conversation_id: str, at: datetime) -> m.ConversationEvent:
        return self(conversation_id, m.MessageAdded(
            message_id=f"msg-{self.number}", direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY, channel=m.Channel.CHAT), at)  # fmt: skip


def _publish(settings: Settings, events: list[m.ConversationEvent]) -> None:
    register_contract(Registry(settings.registry_url), settings.topics)
    with EventPublisher(settings) as publisher:
        for event in events:
            publisher.publish(event)


def _decoder(settings: Settings, topic: str, model: type) -> Callable[[bytes], object]:
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)), topic, model)
    return codec.decode


def _events(settings: Settings) -> list[m.ConversationEvent]:
    decode = _decoder(settings, settings.topics.conversation_events, m.ConversationEvent)
    messages = consume(settings, settings.topics.conversation_events, 10**6, timeout=4)
    return [
        e for e in (decode(msg.value()) for msg in messages) if isinstance(e, m.ConversationEvent)
    ]


def _timeline(settings: Settings) -> list[m.TimelineEntry]:
    decode = _decoder(settings, settings.topics.conversation_timeline, m.TimelineEntry)
    messages = consume(settings, settings.topics.conversation_timeline, 10**6, timeout=4)
    return [e for e in (decode(msg.value()) for msg in messages) if isinstance(e, m.TimelineEntry)]


def _fired(settings: Settings, event_type: m.EventType) -> list[m.ConversationEvent]:
    return [e for e in _events(settings) if e.type is event_type]


def _wait_for(
    settings: Settings, event_type: m.EventType, count: int, timeout: float
) -> list[m.ConversationEvent]:
    return wait_until(
        lambda: (found := _fired(settings, event_type)) and len(found) >= count and found,
        timeout=timeout, interval=0.5, what=f"{count} {event_type.value} event(s)",
    )  # fmt: skip


def test_a_reminder_fires_at_its_due_time_and_shows_on_the_timeline(
    topics: Settings, tmp_path: Path
) -> None:
    h = History()
    now = datetime.now(UTC)
    with running_worker(topics, tmp_path / "worker", timers=True):
        due = datetime.now(UTC) + timedelta(seconds=15)
        added = h("cnv-1", m.ReminderAdded(reminder_id="r1", due_at=due, note="Call Jo"), now)
        _publish(topics, [h.created("cnv-1", m.Channel.EMAIL, now), added])
        (fired,) = _wait_for(topics, m.EventType.REMINDER_TRIGGERED, 1, timeout=90)
        entries = wait_until(
            lambda: [e for e in _timeline(topics) if e.event_id == fired.event_id],
            timeout=30, what="the reminder's timeline entry",
        )  # fmt: skip
    assert fired.causation_id == added.event_id and fired.actor.kind is m.ActorKind.SYSTEM
    assert fired.occurred_at == due.replace(microsecond=due.microsecond // 1000 * 1000)
    assert entries[0].text == "Reminder for the team triggered: Call Jo"
    assert len(_fired(topics, m.EventType.REMINDER_TRIGGERED)) == 1  # once, not retried


def test_a_stale_chat_is_auto_resolved_by_the_assistant(topics: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "timers.json"
    chat = {"waiting_on_customer_seconds": 6, "waiting_on_staff_seconds": None}
    policy.write_text(json.dumps({"channels": {"CHAT": chat}}))
    h = History()
    port = free_ports(1)[0]
    with running_worker(topics, tmp_path / "worker", timers=True, timer_policy=policy,
                        metrics_port=port):  # fmt: skip
        now = datetime.now(UTC)
        idle = h.staff_reply("cnv-idle", now)  # waiting on the customer: 6 s
        waiting = [h.created("cnv-waits", m.Channel.CHAT, now)]  # waiting on staff: never
        _publish(topics, [h.created("cnv-idle", m.Channel.CHAT, now), idle, *waiting])
        (resolved,) = _wait_for(topics, m.EventType.AUTO_RESOLVED, 1, timeout=90)
        wait_until(lambda: any(e.event_id == resolved.event_id for e in _timeline(topics)),
                   timeout=30, what="the auto-resolve timeline entry")  # fmt: skip
        # Ops see it: the timer counters and the lateness histogram on /metrics.
        metrics = scrape(port)
        assert metrics['convotrail_timers_fired_total{kind="AUTO_RESOLVED"}'] == 1
        assert metrics["convotrail_timer_lateness_seconds_count"] == 1
        assert metrics["convotrail_timers_pending"] == 0  # resolved: nothing armed
    assert resolved.conversation_id == "cnv-idle"
    assert resolved.actor.kind is m.ActorKind.ASSISTANT
    assert isinstance(resolved.payload, m.AutoResolved) and resolved.payload.idle_minutes == 1
    assert resolved.occurred_at >= idle.occurred_at + timedelta(seconds=6) - timedelta(
        milliseconds=1
    )
    assert len(_fired(topics, m.EventType.AUTO_RESOLVED)) == 1


def test_a_worker_killed_before_the_due_time_still_fires_exactly_once(
    topics: Settings, tmp_path: Path
) -> None:
    h = History()
    home = tmp_path / "worker"
    worker = start_worker(topics, home, timers=True)
    try:
        now = datetime.now(UTC)
        while_down = now + timedelta(seconds=15)  # falls due while no worker runs
        after_restart = now + timedelta(seconds=45)
        events = [
            h.created("cnv-1", m.Channel.EMAIL, now),
            h("cnv-1", m.ReminderAdded(reminder_id="down", due_at=while_down), now),
            h("cnv-1", m.ReminderAdded(reminder_id="later", due_at=after_restart), now),
        ]
        _publish(topics, events)
        wait_until(lambda: len(_timeline(topics)) >= 3, timeout=90,
                   what="the reminders taken in by the worker")  # fmt: skip
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        stop_worker(worker)
    wait_until(lambda: datetime.now(UTC) > while_down + timedelta(seconds=6), timeout=60)
    assert _fired(topics, m.EventType.REMINDER_TRIGGERED) == []
    with running_worker(topics, home, timers=True):  # same state directory, as a pod restart
        fired = _wait_for(topics, m.EventType.REMINDER_TRIGGERED, 2, timeout=150)
    by_id = {e.payload.reminder_id: e for e in fired if isinstance(e.payload, m.ReminderTriggered)}
    assert len(fired) == 2 and set(by_id) == {"down", "later"}
    late = by_id["down"].payload
    assert isinstance(late, m.ReminderTriggered) and late.late  # fired on recovery, marked late
    on_time = by_id["later"].payload
    assert isinstance(on_time, m.ReminderTriggered) and not on_time.late
    triggered = [e for e in _timeline(topics) if "triggered" in e.text]
    assert len(triggered) == 2  # each once on the timeline topic, too


def _same_partition(conversation_id: str, partitions: int) -> str:
    wanted = partition_of(conversation(ACCOUNT, conversation_id), partitions)
    return next(
        other for n in range(1000)
        if partition_of(conversation(ACCOUNT, other := f"cnv-other-{n}"), partitions) == wanted
    )  # fmt: skip


def test_replay_mode_fires_timers_in_event_time(topics: Settings, tmp_path: Path) -> None:
    """History from last week: in replay mode a timer fires once its partition's
    event time passes its due time, however long ago that was on the wall clock."""
    h = History()
    past = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    neighbour = _same_partition("cnv-chat", topics.partitions)
    events = [
        h.created("cnv-chat", m.Channel.CHAT, past),
        h.staff_reply("cnv-chat", past + timedelta(minutes=1)),  # due at 09:31
        h.created(neighbour, m.Channel.EMAIL, past + timedelta(minutes=10)),
        # the partition's event time reaches 09:45: the chat's timer fires at 09:31
        h(neighbour, m.TagAdded(tag="vip"), past + timedelta(minutes=45)),
        # a chat whose due time (10:31) its partition never reaches: no timer fires
        h.created("cnv-late-chat", m.Channel.CHAT, past + timedelta(minutes=50)),
        h.staff_reply("cnv-late-chat", past + timedelta(minutes=61)),
    ]
    _publish(topics, events)
    with running_worker(topics, tmp_path / "worker", timers=True, replay=True):
        (resolved,) = _wait_for(topics, m.EventType.AUTO_RESOLVED, 1, timeout=90)
        wait_until(lambda: len(_timeline(topics)) >= 7, timeout=30, what="every entry")
    assert resolved.conversation_id == "cnv-chat"
    assert resolved.occurred_at == past + timedelta(minutes=31)
    assert [e.conversation_id for e in _fired(topics, m.EventType.AUTO_RESOLVED)] == ["cnv-chat"]
