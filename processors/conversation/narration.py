"""Timeline text: how the support app narrates each event, naming the actor.

Pure functions of the event and the state before it (for "from Lee to Sam").
They never decide anything: whether an event is accepted is the core's job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from schemas import model as m


def actor_name(actor: m.Actor) -> str:
    """The actor as the support app shows them."""
    if actor.kind is m.ActorKind.WORKFLOW:
        return f"Workflow '{actor.name}'" if actor.name else "A workflow"
    if actor.kind is m.ActorKind.ASSISTANT:
        return "The assistant"
    if actor.name:
        return actor.name
    return {
        m.ActorKind.STAFF: "A teammate",
        m.ActorKind.CUSTOMER: "The customer",
        m.ActorKind.BOT: "A chatbot",
        m.ActorKind.SYSTEM: "The system",
    }.get(actor.kind, "Someone")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _staff(ref: m.StaffRef | None) -> str:
    return ref.name if ref is not None else "the team"


def _reason(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


Narrator = Callable[[str, m.ConversationEvent, m.ConversationState | None], str]


def _created(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.ConversationCreated)
    return f"{who} started this conversation by {p.channel.value.lower()} in {p.inbox.name}"


def _message(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.MessageAdded)
    if p.visibility is m.MessageVisibility.NOTE:
        return f"{who} added an internal note"
    if p.direction is m.MessageDirection.INBOUND:
        return f"{who} wrote a message"
    return f"{who} replied"


def _reassigned(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.Reassigned)
    if p.to_assignee is None:
        return f"{who} unassigned this conversation from {_staff(p.from_assignee)}"
    if p.from_assignee is None:
        return f"{who} assigned this conversation to {p.to_assignee.name}"
    return f"{who} reassigned this conversation from {p.from_assignee.name} to {p.to_assignee.name}"


def _moved(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.Moved)
    return f"{who} moved this conversation from {p.from_inbox.name} to {p.to_inbox.name}"


def _workflow(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.WorkflowRan)
    if p.trigger is m.WorkflowTrigger.AUTOMATED or e.actor.kind is m.ActorKind.WORKFLOW:
        return f"Workflow '{p.workflow_name}' ran ({p.trigger.value.lower()})"
    return f"{who} ran the workflow '{p.workflow_name}' (manual)"


def _hold(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.PutOnHold)
    until = f" until {_when(p.until)}" if p.until else ""
    return f"{who} put this conversation on hold{until}{_reason(p.reason)}"


def _merged(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.Merged)
    return f"{who} merged this conversation into {p.into_conversation_id}"


def _merge_received(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.MergeReceived)
    moved = len(p.moved_reminders)
    reminders = f" with {moved} pending reminder{'s' if moved != 1 else ''}" if moved else ""
    return f"Conversation {p.from_conversation_id} was merged into this conversation{reminders}"


def _auto_resolved(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.AutoResolved)
    minutes = f"{p.idle_minutes} minute{'s' if p.idle_minutes != 1 else ''}"
    return f"Conversation auto-resolved by the assistant after {minutes} without activity"


def _attachment(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.AttachmentDeleted)
    return f"{who} deleted the attachment {p.file_name}"


def _delivery_failed(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.DeliveryFailed)
    status = f"{p.smtp_status} " if p.smtp_status else ""
    return f"Delivery to {p.recipient} failed ({status}{p.reason})"


def _bounce(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.BounceDetected)
    detail = " ".join(part for part in (p.smtp_status, p.diagnostic) if part)
    escalated = ", escalated after repeated soft bounces" if p.escalated else ""
    detail = f": {detail}" if detail else ""
    if p.delayed:  # the server still retries: not a bounce yet
        return f"Delivery to {p.recipient} delayed, still retrying{detail}"
    return f"Bounce detected for {p.recipient} ({p.bounce_class.value.lower()}{detail}{escalated})"


def _handed_over(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.ChatbotHandedOver)
    to = f" to {p.to_inbox.name}" if p.to_inbox else " to the team"
    return f"{p.bot_name} handed this conversation over{to}{_reason(p.reason)}"


def _bot_resolved(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.ChatbotResolved)
    return f"{p.bot_name} resolved this conversation"


def _subject(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.SubjectEdited)
    if p.from_subject:
        return f"{who} changed the subject from '{p.from_subject}' to '{p.to_subject}'"
    return f"{who} set the subject to '{p.to_subject}'"


def _reminder_added(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.ReminderAdded)
    note = f": {p.note}" if p.note else ""
    return f"{who} added a reminder for {_staff(p.for_staff)} at {_when(p.due_at)}{note}"


def _reminder_triggered(
    who: str, e: m.ConversationEvent, before: m.ConversationState | None
) -> str:
    p = e.payload
    assert isinstance(p, m.ReminderTriggered)
    note = f": {p.note}" if p.note else ""
    late = " (late)" if p.late else ""
    return f"Reminder for {_staff(p.for_staff)} triggered{late}{note}"


def _customer_spam(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.CustomerMarkedSpam)
    return f"The customer ({p.recipient}) marked a message as spam"


def _sent(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.MessageSent)
    return f"Message sent to {p.recipient} via {p.provider}"


def _delivered(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.MessageDelivered)
    return f"Message delivered to {p.recipient}"


def _viewed(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
    p = e.payload
    assert isinstance(p, m.MessageViewed)
    if p.viewer_kind is m.ViewerKind.CUSTOMER:
        return f"{who} viewed a reply"
    return f"{who} viewed the customer's message"


def _fixed(text: str) -> Narrator:
    def narrate(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
        return text.format(who=who, reason=_reason(getattr(e.payload, "reason", None)))

    return narrate


def _tag(verb: str) -> Narrator:
    def narrate(who: str, e: m.ConversationEvent, before: m.ConversationState | None) -> str:
        return f"{who} {verb} the tag '{getattr(e.payload, 'tag', '')}'"

    return narrate


NARRATORS: dict[m.EventType, Narrator] = {
    m.EventType.CONVERSATION_CREATED: _created,
    m.EventType.MESSAGE_ADDED: _message,
    m.EventType.REASSIGNED: _reassigned,
    m.EventType.MOVED: _moved,
    m.EventType.TAG_ADDED: _tag("added"),
    m.EventType.TAG_REMOVED: _tag("removed"),
    m.EventType.RESOLVED: _fixed("{who} resolved this conversation{reason}"),
    m.EventType.REOPENED: _fixed("{who} reopened this conversation{reason}"),
    m.EventType.ARCHIVED: _fixed("{who} archived this conversation{reason}"),
    m.EventType.UNARCHIVED: _fixed("{who} unarchived this conversation{reason}"),
    m.EventType.MARKED_SPAM: _fixed("{who} marked this conversation as spam{reason}"),
    m.EventType.UNMARKED_SPAM: _fixed("{who} unmarked this conversation as spam{reason}"),
    m.EventType.CHAT_ENDED: _fixed("{who} ended the chat{reason}"),
    m.EventType.REPLIED_AND_ARCHIVED: _fixed("{who} replied and archived this conversation"),
    m.EventType.REPLIED_AND_REOPENED: _fixed("{who} replied and reopened this conversation"),
    m.EventType.WORKFLOW_RAN: _workflow,
    m.EventType.PUT_ON_HOLD: _hold,
    m.EventType.NOTE_PINNED: _fixed("{who} pinned an internal note"),
    m.EventType.NOTE_UNPINNED: _fixed("{who} unpinned an internal note"),
    m.EventType.MERGED: _merged,
    m.EventType.MERGE_RECEIVED: _merge_received,
    m.EventType.AUTO_RESOLVED: _auto_resolved,
    m.EventType.ATTACHMENT_DELETED: _attachment,
    m.EventType.DELIVERY_FAILED: _delivery_failed,
    m.EventType.BOUNCE_DETECTED: _bounce,
    m.EventType.CHATBOT_HANDED_OVER: _handed_over,
    m.EventType.CHATBOT_RESOLVED: _bot_resolved,
    m.EventType.SUBJECT_EDITED: _subject,
    m.EventType.REMINDER_ADDED: _reminder_added,
    m.EventType.REMINDER_CANCELLED: _fixed("{who} cancelled a reminder"),
    m.EventType.REMINDER_TRIGGERED: _reminder_triggered,
    m.EventType.CUSTOMER_MARKED_SPAM: _customer_spam,
    m.EventType.CSAT_SURVEY_SENT: _fixed("Customer satisfaction survey sent"),
    m.EventType.MESSAGE_SENT: _sent,
    m.EventType.MESSAGE_DELIVERED: _delivered,
    m.EventType.MESSAGE_VIEWED: _viewed,
}


def narrate(event: m.ConversationEvent, before: m.ConversationState | None) -> str:
    return NARRATORS[event.type](actor_name(event.actor), event, before)
