"""Timers, tested in the pure core with a controllable clock: which timers a state
arms, what fires, and how the core takes the fired events back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.traffic import generate
from processors.conversation.core import Memory, evolve
from processors.conversation.firing import fire_timer, schedule
from processors.conversation.timers import (
    LATE_AFTER,
    IdleTimeouts,
    Timer,
    TimerPolicy,
    due_events,
    fire,
    pending_timers,
    policy_from_json,
)
from schemas import model as m
from tests.unit.processors.test_conversation_core import DANA, JO, T0, Script

POLICY = TimerPolicy()
THIRTY = timedelta(minutes=30)


def apply(memory: Memory, *events: m.ConversationEvent) -> tuple[Memory, list[str]]:
    texts = []
    for event in events:
        memory, out = evolve(memory, event, event.occurred_at)
        texts += [entry.text for entry in out.timeline]
    return memory, texts


def reminder(
    s: Script, rid: str, due: datetime, note: str | None = "Call Jo back"
) -> m.ConversationEvent:
    return s(m.ReminderAdded(reminder_id=rid, due_at=due, note=note))


def only(timers: tuple[Timer, ...], prefix: str) -> Timer:
    (timer,) = [t for t in timers if t.timer_id.startswith(prefix)]
    return timer


# -- reminders ---------------------------------------------------------------------------


def test_a_reminder_fires_at_its_due_time_once_in_effect() -> None:
    s = Script()
    due = T0 + timedelta(hours=6)
    added = reminder(s, "r1", due)
    memory, _ = apply(Memory(), s.created(), added)
    timer = only(pending_timers(memory.state, POLICY), "reminder")
    assert timer.due_at == due
    assert fire(memory.state, timer, due - timedelta(milliseconds=1), POLICY) is None
    event = fire(memory.state, timer, due, POLICY)
    assert event is not None and event.type is m.EventType.REMINDER_TRIGGERED
    assert event.actor.kind is m.ActorKind.SYSTEM and event.causation_id == added.event_id
    assert isinstance(event.payload, m.ReminderTriggered) and not event.payload.late
    assert event.occurred_at == due
    # Fired again (a crash, a retry): the same event, which the core drops.
    assert fire(memory.state, timer, due + timedelta(seconds=1), POLICY) == event
    memory, texts = apply(memory, event)
    assert texts == ["Reminder for the team triggered: Call Jo back"]
    assert pending_timers(memory.state, POLICY) == ()
    again, out = evolve(memory, event, due)
    assert out.duplicates == 1 and again == memory


def test_a_reminder_due_in_the_past_when_added_fires_at_once_marked_late() -> None:
    s = Script()
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", T0 - timedelta(days=1)))
    now = T0 + timedelta(minutes=3)
    (event,) = due_events(memory.state, now, POLICY)
    assert isinstance(event.payload, m.ReminderTriggered) and event.payload.late
    _, texts = apply(memory, event)
    assert "(late)" in texts[0]


def test_a_reminder_cancelled_then_re_added_with_the_same_id_is_a_new_timer() -> None:
    s = Script()
    first_due, second_due = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", first_due))
    stale = due_events(memory.state, first_due, POLICY)[0]  # fired by a racing loop
    memory, _ = apply(memory, s(m.ReminderCancelled(reminder_id="r1")),
                      reminder(s, "r1", second_due, note="Second try"))  # fmt: skip
    timer = only(pending_timers(memory.state, POLICY), "reminder")
    assert timer.due_at == second_due
    # The stale trigger arrives after the re-add: it changes nothing, renders nothing.
    memory, texts = apply(memory, stale)
    assert texts == [] and pending_timers(memory.state, POLICY) == (timer,)
    fresh = fire(memory.state, timer, second_due, POLICY)
    assert fresh is not None and fresh.event_id != stale.event_id
    memory, texts = apply(memory, fresh)
    assert len(texts) == 1 and "Second try" in texts[0]
    assert memory.state is not None and memory.state.pending_reminders == ()


def test_archived_and_spam_conversations_hold_their_reminders() -> None:
    s = Script()
    due = T0 + timedelta(hours=1)
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", due), s(m.Archived()))
    assert pending_timers(memory.state, POLICY) == ()
    assert due_events(memory.state, due + timedelta(hours=5), POLICY) == ()
    memory, _ = apply(memory, s(m.Unarchived()))
    (event,) = due_events(memory.state, due + timedelta(hours=5), POLICY)
    assert isinstance(event.payload, m.ReminderTriggered) and event.payload.late
    memory, _ = apply(memory, s(m.MarkedSpam()))
    assert pending_timers(memory.state, POLICY) == ()


@pytest.mark.parametrize(("rule", "fires"), [("fire", True), ("hold", False)])
def test_reminders_on_a_resolved_conversation_follow_the_policy(rule: str, fires: bool) -> None:
    s = Script()
    policy = policy_from_json({"reminders_when_resolved": rule})
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", T0 + THIRTY), s(m.Resolved()))
    assert bool(due_events(memory.state, T0 + THIRTY, policy)) is fires
    memory, _ = apply(memory, s(m.Reopened()))
    assert len(due_events(memory.state, T0 + THIRTY, policy)) == 1


def test_a_merge_moves_pending_reminders_to_the_target_where_they_fire() -> None:
    source, target = Script("cnv-src"), Script("cnv-dst")
    due = T0 + timedelta(hours=3)
    src, _ = apply(Memory(), source.created(), reminder(source, "r1", due))
    dst, _ = apply(Memory(), target.created())
    merged = source(m.Merged(into_conversation_id="cnv-dst"))
    src, out = evolve(src, merged, merged.occurred_at)
    assert pending_timers(src.state, POLICY) == ()  # the source arms nothing any more
    (received,) = out.derived
    dst, _ = apply(dst, received)
    timer = only(pending_timers(dst.state, POLICY), "reminder")
    assert timer.conversation_id == "cnv-dst" and timer.due_at == due
    event = fire(dst.state, timer, due, POLICY)
    assert event is not None and event.causation_id == merged.event_id
    dst, texts = apply(dst, event)
    assert len(texts) == 1 and dst.state is not None and dst.state.pending_reminders == ()


# -- auto-resolve ------------------------------------------------------------------------


def chat_message(message_id: str, direction: m.MessageDirection) -> m.MessageAdded:
    return m.MessageAdded(message_id=message_id, direction=direction,
                          visibility=m.MessageVisibility.REPLY, channel=m.Channel.CHAT)  # fmt: skip


def chat_waiting_on_customer() -> tuple[Script, Memory, datetime]:
    s = Script()
    created = s.created(m.Channel.CHAT)
    reply = s(chat_message("msg-1", m.MessageDirection.OUTBOUND))
    memory, _ = apply(Memory(), created, reply)
    return s, memory, reply.occurred_at


def test_an_idle_chat_is_auto_resolved_by_the_assistant() -> None:
    _, memory, replied = chat_waiting_on_customer()
    timer = only(pending_timers(memory.state, POLICY), "auto-resolve")
    assert timer.due_at == replied + THIRTY
    assert fire(memory.state, timer, replied + THIRTY - timedelta(milliseconds=1), POLICY) is None
    event = fire(memory.state, timer, replied + THIRTY, POLICY)
    assert event is not None and event.actor.kind is m.ActorKind.ASSISTANT
    memory, texts = apply(memory, event)
    assert texts == [
        "Conversation auto-resolved by the assistant after 30 minutes without activity"
    ]
    assert memory.state is not None and memory.state.status is m.ConversationStatus.RESOLVED
    assert pending_timers(memory.state, POLICY) == ()


def test_activity_one_millisecond_before_the_timeout_re_arms_the_timer() -> None:
    s, memory, replied = chat_waiting_on_customer()
    stale = due_events(memory.state, replied + THIRTY, POLICY)[0]  # a racing loop fired it
    just_before = replied + THIRTY - timedelta(milliseconds=1)
    customer = m.ConversationEvent(
        event_id="late-reply", conversation_id=s.conversation_id, account_id=s.account_id,
        type=m.EventType.MESSAGE_ADDED, occurred_at=just_before, actor=JO,
        payload=chat_message("msg-2", m.MessageDirection.INBOUND),
    )  # fmt: skip
    memory, _ = apply(memory, customer)
    timer = only(pending_timers(memory.state, POLICY), "auto-resolve")
    assert timer.due_at == just_before + THIRTY
    memory, texts = apply(memory, stale)  # the stale event lands after the message
    assert texts == [] and memory.state is not None
    assert memory.state.status is m.ConversationStatus.OPEN


@pytest.mark.parametrize(
    "payload",
    [
        m.Resolved(),
        m.PutOnHold(),
        m.Archived(),
        m.MarkedSpam(),
        m.ChatbotResolved(bot_id="bot-1", bot_name="Ava"),
    ],
    ids=["resolved", "on-hold", "archived", "spam", "chatbot-resolved"],
)
def test_what_disarms_the_auto_resolve_timer(payload: m.Payload) -> None:
    s, memory, replied = chat_waiting_on_customer()
    stale = due_events(memory.state, replied + THIRTY, POLICY)[0]
    memory, _ = apply(memory, s(payload))
    assert not [t for t in pending_timers(memory.state, POLICY) if "auto" in t.timer_id]
    before = memory.state
    memory, texts = apply(memory, stale)
    assert texts == [] and memory.state == before


def test_a_merged_chat_arms_nothing() -> None:
    s, memory, _ = chat_waiting_on_customer()
    memory, _ = apply(memory, s(m.Merged(into_conversation_id="cnv-9")))
    assert pending_timers(memory.state, POLICY) == ()


def test_a_resolved_then_reopened_chat_is_re_armed_from_the_reopening() -> None:
    s, memory, _ = chat_waiting_on_customer()
    memory, _ = apply(memory, s(m.Resolved()))
    assert pending_timers(memory.state, POLICY) == ()
    reopened = s(m.Reopened(), DANA)
    memory, _ = apply(memory, reopened)
    timer = only(pending_timers(memory.state, POLICY), "auto-resolve")
    assert timer.due_at == reopened.occurred_at + THIRTY
    (event,) = due_events(memory.state, timer.due_at, POLICY)
    memory, _ = apply(memory, event)
    assert memory.state is not None and memory.state.status is m.ConversationStatus.RESOLVED
    assert memory.state.reopen_count == 1


def test_a_chat_the_customer_ended_keeps_its_timer() -> None:
    # Not a message and not a staff action: not activity, and not a resolution.
    s, memory, replied = chat_waiting_on_customer()
    memory, _ = apply(memory, s(m.ChatEnded(reason="customer left"), JO))
    assert only(pending_timers(memory.state, POLICY), "auto-resolve").due_at == replied + THIRTY


def test_a_chat_a_staff_member_ended_is_activity_and_re_arms_the_timer() -> None:
    # "Ends a chat" is a staff action like any other (the seed's help page), so it
    # is activity: the idle time counts from it. It does not resolve: the chat
    # still auto-resolves once idle long enough.
    s, memory, replied = chat_waiting_on_customer()
    ended = s(m.ChatEnded(reason="done"), DANA)
    assert ended.occurred_at > replied
    memory, _ = apply(memory, ended)
    assert memory.state is not None and memory.state.chat_ended
    timer = only(pending_timers(memory.state, POLICY), "auto-resolve")
    assert timer.due_at == ended.occurred_at + THIRTY
    (event,) = due_events(memory.state, timer.due_at, POLICY)
    memory, _ = apply(memory, event)
    assert memory.state is not None and memory.state.status is m.ConversationStatus.RESOLVED


def test_waiting_on_customer_and_on_staff_have_their_own_timeouts_per_account() -> None:
    policy = policy_from_json({
        "channels": {"CHAT": {"waiting_on_customer_seconds": 1800,
                              "waiting_on_staff_seconds": None}},
        "accounts": {"acct-1": {"CHAT": {"waiting_on_customer_seconds": 600,
                                         "waiting_on_staff_seconds": 7200}}},
    })  # fmt: skip
    s, memory, replied = chat_waiting_on_customer()
    assert only(pending_timers(memory.state, policy), "auto").due_at == replied + timedelta(
        minutes=10
    )
    inbound = s(chat_message("msg-2", m.MessageDirection.INBOUND), JO)
    memory, _ = apply(memory, inbound)
    assert only(
        pending_timers(memory.state, policy), "auto"
    ).due_at == inbound.occurred_at + timedelta(hours=2)
    other = Script(account_id="acct-2")  # the channel default: waiting on staff never resolves
    other_memory, _ = apply(Memory(), other.created(m.Channel.CHAT))
    assert pending_timers(other_memory.state, policy) == ()


def test_email_conversations_do_not_auto_resolve_by_default() -> None:
    s = Script()
    memory, _ = apply(Memory(), s.created(m.Channel.EMAIL))
    assert pending_timers(memory.state, POLICY) == ()
    assert POLICY.idle_timeouts("acct-1", m.Channel.CHAT) == IdleTimeouts()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"channels": {"FAX": {}}}, "unknown channel 'FAX'"),
        (
            {"channels": {"CHAT": {"waiting_on_customer_seconds": -1}}},
            "waiting_on_customer_seconds",
        ),
        ({"channels": {"CHAT": {"idle": 3}}}, "unknown timeout setting(s): idle"),
        ({"reminders_when_resolved": "maybe"}, "reminders_when_resolved"),
        ({"timeouts": {}}, "unknown timer policy setting(s): timeouts"),
    ],
)
def test_a_bad_timer_policy_is_refused_naming_the_setting(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        policy_from_json(raw)


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hours=st.integers(0, 72))
def test_firing_every_due_timer_is_idempotent_and_leaves_nothing_due(seed: int, hours: int) -> None:
    """Over generated histories: at any `now`, firing what is due and applying it
    (repeatedly, as a timer loop would) ends with no timer due, in a few rounds;
    firing twice gives the same events; applying them twice changes nothing more."""
    events = generate(seed, 6, T0)
    memories: dict[str, Memory] = {}
    for event in events:
        memories[event.conversation_id], _ = evolve(memories.get(event.conversation_id), event, T0)
    now = max(e.occurred_at for e in events) + timedelta(hours=hours)
    for conversation_id, memory in memories.items():
        for _round in range(5):
            fired = due_events(memory.state, now, POLICY)
            assert fired == due_events(memory.state, now, POLICY)
            if not fired:
                break
            for event in fired:
                memory, _ = evolve(memory, event, now)
            once = memory
            for event in fired:
                memory, out = evolve(memory, event, now)
                assert out.duplicates == 1
            assert memory == once
        assert not [t for t in pending_timers(memory.state, POLICY) if t.due_at <= now], (
            conversation_id
        )
        memories[conversation_id] = memory


# -- firing from the store's schedule ----------------------------------------------------


def test_a_fired_timer_leaves_the_schedule_until_its_event_comes_back() -> None:
    s = Script()
    due = T0 + timedelta(hours=1)
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", due))
    ((due_ms, timer_id),) = schedule(memory, POLICY)
    assert due_ms == round(due.timestamp() * 1000)
    assert fire_timer(memory, timer_id, due - timedelta(seconds=1), POLICY) == (memory, None)
    fired, event = fire_timer(memory, timer_id, due, POLICY)
    assert event is not None and event.type is m.EventType.REMINDER_TRIGGERED
    assert fired.fired == (timer_id,) and schedule(fired, POLICY) == []
    # Asked again (a second tick before the commit, or a stale index entry): nothing.
    assert fire_timer(fired, timer_id, due, POLICY) == (fired, None)
    # The event comes back through the log: applied, and the mark is gone.
    back, out = evolve(fired, event, due)
    assert out.applied == 1 and back.fired == () and schedule(back, POLICY) == []


def test_a_fired_event_that_finds_its_timer_stale_still_clears_the_mark() -> None:
    s = Script()
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", T0 + timedelta(hours=1)))
    ((_, timer_id),) = schedule(memory, POLICY)
    fired, event = fire_timer(memory, timer_id, T0 + timedelta(hours=2), POLICY)
    assert event is not None
    # The reminder is cancelled before the trigger comes back: the trigger is a no-op.
    cancelled, _ = evolve(fired, s(m.ReminderCancelled(reminder_id="r1")), T0)
    back, out = evolve(cancelled, event, T0 + timedelta(hours=2))
    assert out.applied == 0 and back.fired == ()


def test_a_timer_the_state_no_longer_arms_does_not_fire() -> None:
    s = Script()
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", T0 + timedelta(hours=1)))
    assert fire_timer(memory, "reminder:r9:evt-x", T0 + timedelta(days=1), POLICY) == (memory, None)


def test_late_means_more_than_the_grace_after_the_due_time() -> None:
    s = Script()
    due = T0 + timedelta(hours=1)
    memory, _ = apply(Memory(), s.created(), reminder(s, "r1", due))
    on_time = due_events(memory.state, due + LATE_AFTER, POLICY)[0]
    late = due_events(memory.state, due + LATE_AFTER + timedelta(milliseconds=1), POLICY)[0]
    assert isinstance(on_time.payload, m.ReminderTriggered) and not on_time.payload.late
    assert isinstance(late.payload, m.ReminderTriggered) and late.payload.late
