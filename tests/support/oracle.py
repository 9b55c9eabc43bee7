"""The expected outcome of a history, computed by the pure core as the log delivers it.

End-to-end tests compare what the distributed pipeline stored with this oracle:
events in publish order, derived events for other conversations appended to the
log after everything published (true when the worker starts after publishing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from processors.conversation.core import Memory, Rejection, evolve
from schemas.model import ConversationEvent, ConversationState, TimelineEntry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Expected:
    states: dict[str, ConversationState] = field(default_factory=dict)
    timeline: dict[str, TimelineEntry] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    derived: list[ConversationEvent] = field(default_factory=list)


def expected_outcome(events: list[ConversationEvent]) -> Expected:
    memories: dict[str, Memory] = {}
    expected = Expected()
    pending = list(events)
    while pending:
        event = pending.pop(0)
        memory, out = evolve(memories.get(event.conversation_id), event, NOW)
        memories[event.conversation_id] = memory
        expected.timeline.update({entry.event_id: entry for entry in out.timeline})
        expected.rejections += out.rejections
        expected.derived += out.derived
        pending += [d for d in out.derived if d.conversation_id != event.conversation_id]
    expected.states = {k: v.state for k, v in memories.items() if v.state is not None}
    return expected


def outcome_of_log(partitions: list[list[ConversationEvent]]) -> Expected:
    """The expected outcome of the log as it actually is: each partition's events
    (published and derived, duplicates included) in offset order.

    When workers run while events are published, a derived event for another
    conversation (merge received) lands among that partition's events at a place
    that depends on timing; what must hold is that the stored result is what the
    core makes of the log, as one uninterrupted run over it would store.
    """
    memories: dict[str, Memory] = {}
    expected = Expected()
    for events in partitions:
        for event in events:
            memory, out = evolve(memories.get(event.conversation_id), event, NOW)
            memories[event.conversation_id] = memory
            expected.timeline.update({entry.event_id: entry for entry in out.timeline})
            expected.rejections += out.rejections
            expected.derived += out.derived
    expected.states = {k: v.state for k, v in memories.items() if v.state is not None}
    return expected
