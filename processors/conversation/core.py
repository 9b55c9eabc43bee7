"""The conversation state machine: `evolve(memory, event, now) -> (memory, outputs)`.

Pure: no I/O, no clock (time comes in as `now`), no randomness. Replaying the
same events gives the same outputs, byte for byte once encoded. The rules are
written down in docs/state-machine.md; in short, each event is

- a duplicate (its event_id was seen): dropped, counted;
- rejected (cannot be accepted: conversation never created, created twice,
  another tenant's conversation, a state change after a merge, a chat action on
  an email conversation): no state change, the reason goes to the DLQ;
- a no-op (it asks for what already is: resolve a resolved conversation, add a
  tag it has): no state change, no timeline entry, counted;
- applied: a new state (version + 1) and one timeline entry, plus derived
  events when it implies more (an inbound message reopens a resolved
  conversation; a merge tells the target).

Derived events for the same conversation are applied at once, in the same call,
and their event_ids recorded as seen, so when they come back through the log
they are duplicates; the log still carries them, so a replay rebuilds everything.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from processors.conversation import timers
from processors.conversation.narration import narrate
from schemas import model as m
from schemas.records import constructor, replacer

# Seen event_ids kept per conversation: every id of a normal conversation, and a
# bound for pathological ones (the oldest are forgotten first).
SEEN_LIMIT = 5000

# Events that report on messages rather than change the conversation: accepted
# even after a merge (a bounce can arrive after its conversation was merged).
PASSIVE = frozenset(
    {
        m.EventType.MESSAGE_SENT,
        m.EventType.MESSAGE_DELIVERED,
        m.EventType.MESSAGE_VIEWED,
        m.EventType.DELIVERY_FAILED,
        m.EventType.BOUNCE_DETECTED,
        m.EventType.CUSTOMER_MARKED_SPAM,
        m.EventType.CSAT_SURVEY_SENT,
        m.EventType.ATTACHMENT_DELETED,
    }
)
CHAT_ONLY = frozenset({m.EventType.CHAT_ENDED})


@dataclass(frozen=True, slots=True)
class Memory:
    """What the processor keeps per conversation: the state, the event_ids seen, and
    the timers fired whose events have not come back through the log yet (so that a
    timer fires once, even across a crash: the mark is committed with the event)."""

    state: m.ConversationState | None = None
    seen: tuple[str, ...] = ()
    fired: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    event: m.ConversationEvent
    reason: str  # a short code: not-created, already-created, wrong-account, merged, not-a-chat
    message: str


@dataclass(frozen=True, slots=True)
class Outputs:
    state: m.ConversationState | None = None  # the new snapshot, when something was applied
    timeline: tuple[m.TimelineEntry, ...] = ()
    derived: tuple[m.ConversationEvent, ...] = ()  # to append to conversation-events
    rejections: tuple[Rejection, ...] = ()
    duplicates: int = 0
    noops: int = 0
    applied: int = 0


@dataclass
class _Collector:
    """Mutable only inside one `evolve` call; frozen into Outputs at the end."""

    timeline: list[m.TimelineEntry] = field(default_factory=list)
    derived: list[m.ConversationEvent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    noops: int = 0
    applied: int = 0


class _NoChange(Exception):
    """A transition found nothing to do."""


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message


State = m.ConversationState
Transition = Callable[[State, m.ConversationEvent], State]


_replace_state = replacer(m.ConversationState)
_timeline_entry = constructor(m.TimelineEntry)


def _replace(state: State, **changes: object) -> State:
    replaced: State = _replace_state(state, **changes)
    return replaced


def _is_staff(actor: m.Actor) -> bool:
    return actor.kind in (m.ActorKind.STAFF, m.ActorKind.WORKFLOW)


# -- transitions -----------------------------------------------------------------------


def _message_added(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.MessageAdded)
    if p.visibility is m.MessageVisibility.NOTE:
        return _replace(state, internal_notes=state.internal_notes + 1,
                        last_staff_activity_at=event.occurred_at)  # fmt: skip
    if p.direction is m.MessageDirection.INBOUND:
        return _replace(state, inbound_messages=state.inbound_messages + 1,
                        last_customer_activity_at=event.occurred_at)  # fmt: skip
    activity = event.occurred_at if _is_staff(event.actor) else state.last_staff_activity_at
    return _replace(state, outbound_replies=state.outbound_replies + 1,
                    last_staff_activity_at=activity)  # fmt: skip


def _reassigned(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.Reassigned)
    current = state.assignee.id if state.assignee else None
    wanted = p.to_assignee.id if p.to_assignee else None
    if current == wanted:
        raise _NoChange
    return _replace(state, assignee=p.to_assignee)


def _moved(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.Moved)
    if state.inbox is not None and state.inbox.id == p.to_inbox.id:
        raise _NoChange
    return _replace(state, inbox=p.to_inbox)


def _tag_added(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.TagAdded)
    if p.tag in state.tags:
        raise _NoChange
    return _replace(state, tags=tuple(sorted((*state.tags, p.tag))))


def _tag_removed(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.TagRemoved)
    if p.tag not in state.tags:
        raise _NoChange
    return _replace(state, tags=tuple(tag for tag in state.tags if tag != p.tag))


def _status(
    target: m.ConversationStatus, allowed_from: frozenset[m.ConversationStatus]
) -> Transition:
    def transition(state: State, event: m.ConversationEvent) -> State:
        if state.status is target or state.status not in allowed_from:
            raise _NoChange
        reopened = target is m.ConversationStatus.OPEN and (
            state.status is m.ConversationStatus.RESOLVED
        )
        return _replace(state, status=target,
                        reopen_count=state.reopen_count + (1 if reopened else 0))  # fmt: skip

    return transition


_ANY = frozenset(m.ConversationStatus)
_resolve = _status(m.ConversationStatus.RESOLVED, _ANY)
_reopen = _status(m.ConversationStatus.OPEN, _ANY)
_hold = _status(m.ConversationStatus.ON_HOLD, _ANY)
# The assistant resolves only chats still open: a hold or a resolution beat it.
_auto_resolve = _status(m.ConversationStatus.RESOLVED, frozenset({m.ConversationStatus.OPEN}))


def _flag(name: str, value: bool) -> Transition:
    def transition(state: State, event: m.ConversationEvent) -> State:
        if getattr(state, name) is value:
            raise _NoChange
        return _replace(state, **{name: value})

    return transition


def _chat_ended(state: State, event: m.ConversationEvent) -> State:
    if state.chat_ended:
        raise _NoChange
    return _replace(state, chat_ended=True)


def _replied_and(archive: bool) -> Transition:
    # One action, one entry. The message itself arrives as a MESSAGE_ADDED with the
    # action's correlation_id (it counts the reply); this event archives or reopens.
    def transition(state: State, event: m.ConversationEvent) -> State:
        if archive:
            return _replace(state, archived=True, last_staff_activity_at=event.occurred_at)
        reopened = state.status is m.ConversationStatus.RESOLVED
        return _replace(state, status=m.ConversationStatus.OPEN,
                        reopen_count=state.reopen_count + (1 if reopened else 0),
                        last_staff_activity_at=event.occurred_at)  # fmt: skip

    return transition


def _touch(state: State, event: m.ConversationEvent) -> State:
    """Accepted with no field of its own to change (workflow ran, attachment deleted...)."""
    return state


def _note_pinned(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.NotePinned)
    if p.note_id in state.pinned_note_ids:
        raise _NoChange
    return _replace(state, pinned_note_ids=(*state.pinned_note_ids, p.note_id))


def _note_unpinned(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.NoteUnpinned)
    if p.note_id not in state.pinned_note_ids:
        raise _NoChange
    return _replace(
        state, pinned_note_ids=tuple(n for n in state.pinned_note_ids if n != p.note_id)
    )


def _merged(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.Merged)
    # The pending reminders move to the target with the merge-received event.
    return _replace(state, merged_into=p.into_conversation_id, pending_reminders=())


def _merge_received(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.MergeReceived)
    if p.from_conversation_id in state.merged_from:
        raise _NoChange
    moved = tuple(
        m.PendingReminder(reminder_id=r.reminder_id, due_at=r.due_at, for_staff=r.for_staff,
                          note=r.note, added_event_id=event.causation_id or event.event_id)
        for r in p.moved_reminders
    )  # fmt: skip
    return _replace(
        state,
        merged_from=(*state.merged_from, p.from_conversation_id),
        pending_reminders=_sorted_reminders(_without(state.pending_reminders, moved) + moved),
    )


def _without(
    reminders: tuple[m.PendingReminder, ...], replacing: tuple[m.PendingReminder, ...]
) -> tuple[m.PendingReminder, ...]:
    ids = {r.reminder_id for r in replacing}
    return tuple(r for r in reminders if r.reminder_id not in ids)


def _sorted_reminders(reminders: tuple[m.PendingReminder, ...]) -> tuple[m.PendingReminder, ...]:
    return tuple(sorted(reminders, key=lambda r: (r.due_at, r.reminder_id)))


def _handed_over(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.ChatbotHandedOver)
    return state if p.to_inbox is None else _replace(state, inbox=p.to_inbox)


def _subject_edited(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.SubjectEdited)
    if state.subject == p.to_subject:
        raise _NoChange
    return _replace(state, subject=p.to_subject)


def _reminder_added(state: State, event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.ReminderAdded)
    reminder = m.PendingReminder(
        reminder_id=p.reminder_id,
        due_at=p.due_at,
        for_staff=p.for_staff,
        note=p.note,
        added_event_id=event.event_id,
    )
    # Re-adding an id replaces the reminder (cancelled then re-added, or rescheduled).
    kept = _without(state.pending_reminders, (reminder,))
    return _replace(state, pending_reminders=_sorted_reminders((*kept, reminder)))


def _reminder_triggered(state: State, event: m.ConversationEvent) -> State:
    # Only the reminder that armed the timer: cancelled (or cancelled and re-added
    # under the same id, which makes a new reminder) before the trigger was applied,
    # the trigger is stale and changes nothing.
    p = event.payload
    assert isinstance(p, m.ReminderTriggered)
    remaining = tuple(
        r for r in state.pending_reminders
        if not (r.reminder_id == p.reminder_id and r.added_event_id == event.causation_id)
    )  # fmt: skip
    if len(remaining) == len(state.pending_reminders):
        raise _NoChange
    return _replace(state, pending_reminders=remaining)


def _auto_resolved(state: State, event: m.ConversationEvent) -> State:
    # The timer that fired must be the one the state arms now: activity after it
    # was armed (even one millisecond before it fired) re-armed another, and a
    # hold, a resolution, an archive... disarmed it. Then the event changes nothing.
    p = event.payload
    assert isinstance(p, m.AutoResolved)
    if p.timer_id.startswith(timers.AUTO_RESOLVE) and (
        p.timer_id != timers.auto_resolve_timer_id(state) or state.archived or state.spam
    ):
        raise _NoChange
    return _auto_resolve(state, event)


def _reminder_removed(state: State, event: m.ConversationEvent) -> State:
    reminder_id = getattr(event.payload, "reminder_id", None)
    remaining = tuple(r for r in state.pending_reminders if r.reminder_id != reminder_id)
    if len(remaining) == len(state.pending_reminders):
        raise _NoChange
    return _replace(state, pending_reminders=remaining)


TRANSITIONS: dict[m.EventType, Transition] = {
    m.EventType.MESSAGE_ADDED: _message_added,
    m.EventType.REASSIGNED: _reassigned,
    m.EventType.MOVED: _moved,
    m.EventType.TAG_ADDED: _tag_added,
    m.EventType.TAG_REMOVED: _tag_removed,
    m.EventType.RESOLVED: _resolve,
    m.EventType.REOPENED: _reopen,
    m.EventType.ARCHIVED: _flag("archived", True),
    m.EventType.UNARCHIVED: _flag("archived", False),
    m.EventType.MARKED_SPAM: _flag("spam", True),
    m.EventType.UNMARKED_SPAM: _flag("spam", False),
    m.EventType.CHAT_ENDED: _chat_ended,
    m.EventType.REPLIED_AND_ARCHIVED: _replied_and(archive=True),
    m.EventType.REPLIED_AND_REOPENED: _replied_and(archive=False),
    m.EventType.WORKFLOW_RAN: _touch,
    m.EventType.PUT_ON_HOLD: _hold,
    m.EventType.NOTE_PINNED: _note_pinned,
    m.EventType.NOTE_UNPINNED: _note_unpinned,
    m.EventType.MERGED: _merged,
    m.EventType.MERGE_RECEIVED: _merge_received,
    m.EventType.AUTO_RESOLVED: _auto_resolved,
    m.EventType.ATTACHMENT_DELETED: _touch,
    m.EventType.DELIVERY_FAILED: _touch,
    m.EventType.BOUNCE_DETECTED: _touch,
    m.EventType.CHATBOT_HANDED_OVER: _handed_over,
    m.EventType.CHATBOT_RESOLVED: _resolve,
    m.EventType.SUBJECT_EDITED: _subject_edited,
    m.EventType.REMINDER_ADDED: _reminder_added,
    m.EventType.REMINDER_CANCELLED: _reminder_removed,
    m.EventType.REMINDER_TRIGGERED: _reminder_triggered,
    m.EventType.CUSTOMER_MARKED_SPAM: _touch,
    m.EventType.CSAT_SURVEY_SENT: _touch,
    m.EventType.MESSAGE_SENT: _touch,
    m.EventType.MESSAGE_DELIVERED: _touch,
    m.EventType.MESSAGE_VIEWED: _touch,
}
# Events rendered even when they change nothing (none at present: a stale timer
# event is a no-op, see _reminder_triggered and _auto_resolved).
_ALWAYS_RENDERED: frozenset[m.EventType] = frozenset()


def _created(event: m.ConversationEvent) -> State:
    p = event.payload
    assert isinstance(p, m.ConversationCreated)
    customer = event.actor.kind is m.ActorKind.CUSTOMER
    return m.ConversationState(
        conversation_id=event.conversation_id,
        account_id=event.account_id,
        version=0,
        status=m.ConversationStatus.OPEN,
        archived=False,
        spam=False,
        inbox=p.inbox,
        brand=p.brand,
        channel=p.channel,
        customer_id=p.customer_id,
        customer_email=p.customer_email,
        subject=p.subject,
        created_at=event.occurred_at,
        last_customer_activity_at=event.occurred_at if customer else None,
        last_staff_activity_at=None if customer else event.occurred_at,
        last_event_id=event.event_id,
        last_event_at=event.occurred_at,
    )


# -- derived events ----------------------------------------------------------------------


def _derived_id(event: m.ConversationEvent, suffix: str) -> str:
    # Deterministic: the same cause always derives the same id, so a replay or a
    # retry is deduplicated downstream.
    return f"{event.event_id}:{suffix}"


def _derive(cause: m.ConversationEvent, conversation_id: str, payload: m.Payload,
            suffix: str, actor: m.Actor) -> m.ConversationEvent:  # fmt: skip
    return m.ConversationEvent(
        event_id=_derived_id(cause, suffix),
        conversation_id=conversation_id,
        account_id=cause.account_id,
        type=m.TYPE_BY_PAYLOAD[type(payload)],
        occurred_at=cause.occurred_at,
        actor=actor,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        payload=payload,
    )


SYSTEM = m.Actor(kind=m.ActorKind.SYSTEM)


def _implied(before: State, after: State, event: m.ConversationEvent) -> list[m.ConversationEvent]:
    """Events this one implies: same-conversation ones are applied at once by `evolve`."""
    implied: list[m.ConversationEvent] = []
    p = event.payload
    if (
        isinstance(p, m.MessageAdded)
        and p.direction is m.MessageDirection.INBOUND
        and p.visibility is m.MessageVisibility.REPLY
        and before.status is m.ConversationStatus.RESOLVED
        and before.merged_into is None
    ):
        implied.append(
            _derive(event, event.conversation_id, m.Reopened(reason="customer replied"),
                    "reopened", SYSTEM)
        )  # fmt: skip
    if isinstance(p, m.Merged):
        moved = tuple(
            m.MovedReminder(reminder_id=r.reminder_id, due_at=r.due_at, for_staff=r.for_staff,
                            note=r.note)
            for r in before.pending_reminders
        )  # fmt: skip
        implied.append(
            _derive(event, p.into_conversation_id,
                    m.MergeReceived(from_conversation_id=event.conversation_id,
                                    moved_reminders=moved),
                    "merge-received", SYSTEM)
        )  # fmt: skip
    return implied


# -- the state machine -------------------------------------------------------------------


_TRACKED_FIELDS = (
    "status", "archived", "spam", "assignee", "inbox", "tags", "subject", "merged_into",
    "merged_from", "pinned_note_ids", "chat_ended", "pending_reminders",
)  # fmt: skip


def _render(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (m.StaffRef, m.InboxRef)):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        if value and isinstance(value[0], m.PendingReminder):
            return ",".join(r.reminder_id for r in value)
        return ",".join(str(item) for item in value)
    return str(value)


_tracked = operator.attrgetter(*_TRACKED_FIELDS)
_NOTHING_TRACKED = (None,) * len(_TRACKED_FIELDS)


def _changes(before: State | None, after: State) -> tuple[m.FieldChange, ...]:
    olds = _tracked(before) if before is not None else _NOTHING_TRACKED
    changes = []
    # Identity first: a transition copies the fields it does not change.
    for name, old, new in zip(_TRACKED_FIELDS, olds, _tracked(after), strict=True):
        if old is not new and old != new:
            changes.append(m.FieldChange(field=name, before=_render(old), after=_render(new)))
    return tuple(changes)


def _check(state: State | None, event: m.ConversationEvent) -> None:
    if event.type is m.EventType.CONVERSATION_CREATED:
        if state is not None:
            raise _Refused(
                "already-created", f"conversation {event.conversation_id} exists already"
            )
        return
    if state is None:
        raise _Refused("not-created", f"conversation {event.conversation_id} was never created")
    if event.account_id != state.account_id:
        raise _Refused(
            "wrong-account",
            f"conversation {event.conversation_id} belongs to another account",
        )
    if state.merged_into is not None and event.type not in PASSIVE:
        raise _Refused(
            "merged",
            f"conversation {event.conversation_id} was merged into {state.merged_into}",
        )
    if event.type in CHAT_ONLY and state.channel is not m.Channel.CHAT:
        raise _Refused("not-a-chat", f"{event.type.value} applies to chat conversations only")


def _apply(memory: Memory, event: m.ConversationEvent, out: _Collector) -> Memory:
    if event.event_id in memory.seen:
        out.duplicates += 1
        return memory
    seen = (*memory.seen, event.event_id)[-SEEN_LIMIT:]
    state = memory.state
    try:
        _check(state, event)
        if event.type is m.EventType.CONVERSATION_CREATED:
            before, after = None, _created(event)
        else:
            assert state is not None
            before = state
            try:
                after = TRANSITIONS[event.type](state, event)
            except _NoChange:
                if event.type not in _ALWAYS_RENDERED:
                    out.noops += 1
                    return Memory(state, seen, memory.fired)
                after = state
    except _Refused as refused:
        out.rejections.append(Rejection(event, refused.reason, refused.message))
        return Memory(state, seen, memory.fired)
    # The latest event by event time, not the last one applied: a derived event from
    # another partition (merge received) lands in this log at a position that depends
    # on timing, and the state must not.
    latest = max((after.last_event_at, after.last_event_id), (event.occurred_at, event.event_id))
    stamp: dict[str, object] = {"version": (before.version if before else 0) + 1,
                                "last_event_at": latest[0], "last_event_id": latest[1]}  # fmt: skip
    # The one activity rule (docs/state-machine.md, "Timers"): every applied action
    # of a staff member or workflow, CHAT_ENDED included; messages set it above.
    if (
        before is not None
        and _is_staff(event.actor)
        and event.type is not m.EventType.MESSAGE_ADDED
    ):
        stamp["last_staff_activity_at"] = event.occurred_at
    after = _replace(after, **stamp)
    out.applied += 1
    # A message that is half of a compound action (reply-and-archive, reply-and-
    # reopen) shares the action's correlation_id: the action renders the one entry.
    compound_half = event.type is m.EventType.MESSAGE_ADDED and event.correlation_id is not None
    if not compound_half:
        out.timeline.append(
            _timeline_entry(
                event_id=event.event_id,
                conversation_id=event.conversation_id,
                account_id=event.account_id,
                sequence=after.version,
                type=event.type,
                occurred_at=event.occurred_at,
                actor=event.actor,
                text=narrate(event, before),
                changes=_changes(before, after),
                correlation_id=event.correlation_id,
                causation_id=event.causation_id,
                message_id=getattr(event.payload, "message_id", None),
            )
        )
    memory = Memory(after, seen, memory.fired)
    if before is not None:
        for implied in _implied(before, after, event):
            out.derived.append(implied)
            if implied.conversation_id == event.conversation_id:
                memory = _apply(memory, implied, out)
    return memory


def fired_event_id(conversation_id: str, timer_id: str) -> str:
    """The event_id a timer's event has (timers.fire): the conversation and the timer."""
    return f"{conversation_id}:{timer_id}"


def _settle_fired(memory: Memory, event: m.ConversationEvent) -> Memory:
    """A fired timer's event is back: its mark has done its job, whatever the event does."""
    if not memory.fired:
        return memory
    prefix = event.conversation_id + ":"
    if not event.event_id.startswith(prefix) or event.event_id[len(prefix) :] not in memory.fired:
        return memory
    timer_id = event.event_id[len(prefix) :]
    return Memory(memory.state, memory.seen, tuple(t for t in memory.fired if t != timer_id))


def evolve(
    memory: Memory | None, event: m.ConversationEvent, now: datetime
) -> tuple[Memory, Outputs]:
    """Apply one event to one conversation's memory; `now` is the processing time.

    `now` does not change what an event does (event time rules), it is part of the
    signature so timers (issue 5) share it; the state machine itself is event-time only.
    """
    out = _Collector()
    before = _settle_fired(memory or Memory(), event)
    after = _apply(before, event, out)
    return after, Outputs(
        state=after.state if out.applied else None,
        timeline=tuple(out.timeline),
        derived=tuple(out.derived),
        rejections=tuple(out.rejections),
        duplicates=out.duplicates,
        noops=out.noops,
        applied=out.applied,
    )
