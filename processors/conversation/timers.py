"""Durable timers, pure: which timers a conversation's state arms, and what fires.

Two kinds of timer, both functions of the ConversationState alone (so they live
in the changelog-backed memory table and survive crashes and rebalances with it):

- a **reminder** per pending reminder, due at its due time; it fires a
  REMINDER_TRIGGERED event (actor SYSTEM, causation_id the REMINDER_ADDED event,
  or the MERGED event for a reminder that followed a merge);
- an **auto-resolve** timer for an open conversation on a channel with an
  inactivity timeout (chat by default), due `timeout` after the last activity;
  it fires an AUTO_RESOLVED event (actor ASSISTANT).

A timer's identity (`timer_id`) names what armed it: the reminder and the event
that added it, or the instant of the activity the idle time counts from. The
derived event's id comes from that identity, so a timer fired twice (around a
crash, or by two workers during a rebalance) is one event in effect: the core
drops the second as a duplicate. A derived event whose timer is no longer armed
when it is applied (the reminder was cancelled, activity arrived first) is a
no-op in the core, never a change. No clock is read here: `now` is a parameter
(the wall clock in production, the event time in replay mode).

The rules, written down in docs/state-machine.md ("Timers"):

- activity = any message (customer or staff) or any staff action; the idle
  time counts from the latest of created_at, last customer activity and last
  staff activity;
- waiting on the customer (staff acted last) and waiting on staff (the
  customer wrote last) have separate timeouts, per account and channel, with a
  default per channel; a timeout of None never auto-resolves;
- resolving (by staff, by the chatbot), putting on hold, archiving, marking as
  spam and merging disarm it; reopening re-arms it from the latest activity;
- ending a chat (CHAT_ENDED) has no rule of its own: ended by a staff member it
  is a staff action, hence activity; ended by the customer or a bot it is not;
  it is never a resolution, so an ended chat resolves once idle long enough;
- reminders fire while the conversation is open or on hold; while it is
  archived or spam they are held (not fired, not dropped) and fire at once,
  late, when it comes back; on a resolved conversation they fire by default
  (a follow-up reminder is often set on a resolved conversation) or are held
  until it reopens (`reminders_when_resolved="hold"`); a merged conversation's
  reminders move to the target (core.py) and fire there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from schemas import model as m

AUTO_RESOLVE = "auto-resolve"
REMINDER = "reminder"
ASSISTANT = m.Actor(kind=m.ActorKind.ASSISTANT, name="the assistant")
SYSTEM = m.Actor(kind=m.ActorKind.SYSTEM)

# A timer fired this much after its due time is marked late (a recovery after a
# crash or a stop; a live timer loop fires well within it).
LATE_AFTER = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class IdleTimeouts:
    """Inactivity timeouts of one account and channel; None: never auto-resolve."""

    waiting_on_customer: timedelta | None = timedelta(minutes=30)
    waiting_on_staff: timedelta | None = timedelta(minutes=30)


NEVER = IdleTimeouts(None, None)


@dataclass(frozen=True)
class TimerPolicy:
    """How timers behave; loaded from a JSON file by `policy_from_json`."""

    # Per channel: chat conversations auto-resolve after 30 idle minutes by default.
    channels: Mapping[m.Channel, IdleTimeouts] = field(
        default_factory=lambda: {m.Channel.CHAT: IdleTimeouts()}
    )
    # Per (account, channel), overriding the channel's default.
    accounts: Mapping[tuple[str, m.Channel], IdleTimeouts] = field(default_factory=dict)
    reminders_when_resolved: Literal["fire", "hold"] = "fire"

    def idle_timeouts(self, account_id: str, channel: m.Channel | None) -> IdleTimeouts:
        if channel is None:
            return NEVER
        return self.accounts.get((account_id, channel), self.channels.get(channel, NEVER))


@dataclass(frozen=True, slots=True, order=True)
class Timer:
    due_at: datetime
    conversation_id: str
    timer_id: str


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def idle_since(state: m.ConversationState) -> datetime:
    moments = [state.last_event_at if state.created_at is None else state.created_at]
    moments += [t for t in (state.last_customer_activity_at, state.last_staff_activity_at) if t]
    return max(moments)


def waiting_on_customer(state: m.ConversationState) -> bool:
    staff, customer = state.last_staff_activity_at, state.last_customer_activity_at
    return staff is not None and (customer is None or staff >= customer)


def auto_resolve_timer_id(state: m.ConversationState) -> str:
    return f"{AUTO_RESOLVE}:{_ms(idle_since(state))}"


def _reminder_timer_id(reminder: m.PendingReminder) -> str:
    return f"{REMINDER}:{reminder.reminder_id}:{reminder.added_event_id}"


def _auto_resolve_due(state: m.ConversationState, policy: TimerPolicy) -> datetime | None:
    if (
        state.status is not m.ConversationStatus.OPEN
        or state.archived
        or state.spam
        or state.merged_into is not None
    ):
        return None
    timeouts = policy.idle_timeouts(state.account_id, state.channel)
    if waiting_on_customer(state):
        timeout = timeouts.waiting_on_customer
    else:
        timeout = timeouts.waiting_on_staff
    return None if timeout is None else idle_since(state) + timeout


def _reminders_armed(state: m.ConversationState, policy: TimerPolicy) -> bool:
    if state.archived or state.spam or state.merged_into is not None:
        return False
    resolved = state.status is m.ConversationStatus.RESOLVED
    return not (resolved and policy.reminders_when_resolved == "hold")


def pending_timers(state: m.ConversationState | None, policy: TimerPolicy) -> tuple[Timer, ...]:
    """Every timer the state arms, earliest first."""
    if state is None:
        return ()
    timers = []
    if _reminders_armed(state, policy):
        timers += [
            Timer(r.due_at, state.conversation_id, _reminder_timer_id(r))
            for r in state.pending_reminders
        ]
    due = _auto_resolve_due(state, policy)
    if due is not None:
        timers.append(Timer(due, state.conversation_id, auto_resolve_timer_id(state)))
    return tuple(sorted(timers))


def fire(
    state: m.ConversationState | None, timer: Timer, now: datetime, policy: TimerPolicy
) -> m.ConversationEvent | None:
    """The event `timer` fires at `now`, or None when the state no longer arms it
    (or it is not due yet)."""
    if timer.due_at > now or timer not in pending_timers(state, policy):
        return None
    assert state is not None
    late = now - timer.due_at > LATE_AFTER
    payload: m.Payload
    if timer.timer_id.startswith(AUTO_RESOLVE):
        idle = timer.due_at - idle_since(state)
        payload = m.AutoResolved(idle_minutes=max(1, round(idle / timedelta(minutes=1))),
                                 timer_id=timer.timer_id)  # fmt: skip
        actor, causation = ASSISTANT, state.last_event_id
    else:
        reminder = next(
            r for r in state.pending_reminders if _reminder_timer_id(r) == timer.timer_id
        )
        payload = m.ReminderTriggered(reminder_id=reminder.reminder_id, due_at=reminder.due_at,
                                      for_staff=reminder.for_staff, note=reminder.note,
                                      late=late)  # fmt: skip
        actor, causation = SYSTEM, reminder.added_event_id
    return m.ConversationEvent(
        # Deterministic: the conversation and the timer's identity.
        event_id=f"{state.conversation_id}:{timer.timer_id}",
        conversation_id=state.conversation_id,
        account_id=state.account_id,
        type=m.TYPE_BY_PAYLOAD[type(payload)],
        occurred_at=timer.due_at,
        actor=actor,
        correlation_id=None,
        causation_id=causation,
        payload=payload,
    )


def due_events(
    state: m.ConversationState | None, now: datetime, policy: TimerPolicy
) -> tuple[m.ConversationEvent, ...]:
    """Every event the state's timers fire at `now`."""
    fired = (fire(state, timer, now, policy) for timer in pending_timers(state, policy))
    return tuple(event for event in fired if event is not None)


def _timeouts_from_json(raw: Mapping[str, object]) -> IdleTimeouts:
    def seconds(name: str) -> timedelta | None:
        value = raw.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}: a positive number of seconds or null, not {value!r}")
        return timedelta(seconds=value)

    unknown = set(raw) - {"waiting_on_customer_seconds", "waiting_on_staff_seconds"}
    if unknown:
        raise ValueError(f"unknown timeout setting(s): {', '.join(sorted(unknown))}")
    return IdleTimeouts(seconds("waiting_on_customer_seconds"), seconds("waiting_on_staff_seconds"))


def _channel(name: str) -> m.Channel:
    try:
        return m.Channel[name]
    except KeyError:
        known = ", ".join(c.name for c in m.Channel)
        raise ValueError(f"unknown channel {name!r} (one of {known})") from None


def policy_from_json(raw: Mapping[str, object]) -> TimerPolicy:
    """A TimerPolicy from its JSON form (docs/state-machine.md, "Timers"):

    {"channels": {"CHAT": {"waiting_on_customer_seconds": 1800,
                           "waiting_on_staff_seconds": 1800}},
     "accounts": {"acct-acme": {"CHAT": {"waiting_on_customer_seconds": 600,
                                         "waiting_on_staff_seconds": null}}},
     "reminders_when_resolved": "fire"}

    Channels left out never auto-resolve; "channels" left out keeps the default
    (chat, 30 minutes either way).
    """
    unknown = set(raw) - {"channels", "accounts", "reminders_when_resolved"}
    if unknown:
        raise ValueError(f"unknown timer policy setting(s): {', '.join(sorted(unknown))}")
    default = TimerPolicy()
    channels = raw.get("channels")
    accounts = raw.get("accounts", {})
    resolved = raw.get("reminders_when_resolved", default.reminders_when_resolved)
    if resolved not in ("fire", "hold"):
        raise ValueError(f'reminders_when_resolved: "fire" or "hold", not {resolved!r}')
    if not isinstance(accounts, dict) or not (channels is None or isinstance(channels, dict)):
        raise ValueError("channels and accounts must be JSON objects")
    return TimerPolicy(
        channels=default.channels if channels is None else {
            _channel(name): _timeouts_from_json(t) for name, t in channels.items()
        },
        accounts={
            (account, _channel(name)): _timeouts_from_json(t)
            for account, per_channel in accounts.items()
            for name, t in per_channel.items()
        },
        reminders_when_resolved="hold" if resolved == "hold" else "fire",
    )  # fmt: skip
