"""A conversation's timers as the runtime's store schedules them, and firing one once.

Pure: no I/O; `now` is passed in (the wall clock, or the partition's event time in
replay mode).

The schedule of a memory is what its state arms (timers.pending_timers) minus the
timers already fired whose events have not come back through the log. Firing a
timer returns its event (appended to conversation-events, where the conversation's
next read applies it like any fact) and a memory that marks the timer fired; the
runtime commits the event and the mark in one transaction, so after a crash a timer
is either fired and marked or neither: it fires once. The core drops the mark when
the event comes back (core._settle_fired).
"""

from __future__ import annotations

from datetime import datetime

from processors.conversation import timers
from processors.conversation.core import Memory
from schemas import model as m


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def schedule(memory: Memory, policy: timers.TimerPolicy) -> list[tuple[int, str]]:
    """(due epoch ms, timer_id) of every timer the memory arms and has not fired."""
    return [
        (_ms(timer.due_at), timer.timer_id)
        for timer in timers.pending_timers(memory.state, policy)
        if timer.timer_id not in memory.fired
    ]


def fire_timer(
    memory: Memory, timer_id: str, now: datetime, policy: timers.TimerPolicy
) -> tuple[Memory, m.ConversationEvent | None]:
    """Fire `timer_id` at `now` if the memory still arms it, has not fired it, and it is
    due; else (a stale index entry) the memory unchanged and None."""
    if timer_id in memory.fired:
        return memory, None
    armed = [t for t in timers.pending_timers(memory.state, policy) if t.timer_id == timer_id]
    if not armed:
        return memory, None
    event = timers.fire(memory.state, armed[0], now, policy)
    if event is None:
        return memory, None
    return Memory(memory.state, memory.seen, (*memory.fired, timer_id)), event
