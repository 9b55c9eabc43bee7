"""Typed model of the event contract. GENERATED from schemas/avro by
`python -m schemas.codegen`: do not edit; change the .avsc files instead.
"""

# ruff: noqa: E501
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias


class EventType(StrEnum):
    """What happened. Each type has exactly one payload record."""

    CONVERSATION_CREATED = "CONVERSATION_CREATED"
    MESSAGE_ADDED = "MESSAGE_ADDED"
    REASSIGNED = "REASSIGNED"
    MOVED = "MOVED"
    TAG_ADDED = "TAG_ADDED"
    TAG_REMOVED = "TAG_REMOVED"
    RESOLVED = "RESOLVED"
    REOPENED = "REOPENED"
    ARCHIVED = "ARCHIVED"
    UNARCHIVED = "UNARCHIVED"
    MARKED_SPAM = "MARKED_SPAM"
    UNMARKED_SPAM = "UNMARKED_SPAM"
    CHAT_ENDED = "CHAT_ENDED"
    REPLIED_AND_ARCHIVED = "REPLIED_AND_ARCHIVED"
    REPLIED_AND_REOPENED = "REPLIED_AND_REOPENED"
    WORKFLOW_RAN = "WORKFLOW_RAN"
    PUT_ON_HOLD = "PUT_ON_HOLD"
    NOTE_PINNED = "NOTE_PINNED"
    NOTE_UNPINNED = "NOTE_UNPINNED"
    MERGED = "MERGED"
    MERGE_RECEIVED = "MERGE_RECEIVED"
    AUTO_RESOLVED = "AUTO_RESOLVED"
    ATTACHMENT_DELETED = "ATTACHMENT_DELETED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    BOUNCE_DETECTED = "BOUNCE_DETECTED"
    CHATBOT_HANDED_OVER = "CHATBOT_HANDED_OVER"
    CHATBOT_RESOLVED = "CHATBOT_RESOLVED"
    SUBJECT_EDITED = "SUBJECT_EDITED"
    REMINDER_ADDED = "REMINDER_ADDED"
    REMINDER_CANCELLED = "REMINDER_CANCELLED"
    REMINDER_TRIGGERED = "REMINDER_TRIGGERED"
    CUSTOMER_MARKED_SPAM = "CUSTOMER_MARKED_SPAM"
    CSAT_SURVEY_SENT = "CSAT_SURVEY_SENT"
    MESSAGE_SENT = "MESSAGE_SENT"
    MESSAGE_DELIVERED = "MESSAGE_DELIVERED"
    MESSAGE_VIEWED = "MESSAGE_VIEWED"


class ActorKind(StrEnum):
    """Who performed an action."""

    STAFF = "STAFF"
    CUSTOMER = "CUSTOMER"
    BOT = "BOT"
    ASSISTANT = "ASSISTANT"
    WORKFLOW = "WORKFLOW"
    SYSTEM = "SYSTEM"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who performed the action an event records."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Actor"
    kind: ActorKind
    id: str | None = None
    name: str | None = None
    on_behalf_of: str | None = None
    rule_id: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "on_behalf_of": self.on_behalf_of,
            "rule_id": self.rule_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Actor:
        return cls(
            kind=ActorKind(d["kind"]),
            id=d["id"],
            name=d["name"],
            on_behalf_of=d["on_behalf_of"],
            rule_id=d["rule_id"],
        )


class Channel(StrEnum):
    """The medium a conversation or message travels on."""

    EMAIL = "EMAIL"
    CHAT = "CHAT"
    SMS = "SMS"
    SOCIAL = "SOCIAL"
    VOICE = "VOICE"
    API = "API"


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxRef:
    """An inbox (mailbox) as the support app shows it."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.InboxRef"
    id: str
    name: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> InboxRef:
        return cls(
            id=d["id"],
            name=d["name"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationCreated:
    """A conversation was started by a customer message, a staff outreach, a bot or the API."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ConversationCreated"
    channel: Channel
    inbox: InboxRef
    brand: str | None = None
    subject: str | None = None
    customer_id: str
    customer_email: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "inbox": self.inbox.to_avro(),
            "brand": self.brand,
            "subject": self.subject,
            "customer_id": self.customer_id,
            "customer_email": self.customer_email,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ConversationCreated:
        return cls(
            channel=Channel(d["channel"]),
            inbox=InboxRef.from_avro(d["inbox"]),
            brand=d["brand"],
            subject=d["subject"],
            customer_id=d["customer_id"],
            customer_email=d["customer_email"],
        )


class MessageDirection(StrEnum):
    """INBOUND: from the customer; OUTBOUND: from staff, a bot or the assistant."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class MessageVisibility(StrEnum):
    """REPLY: visible to the customer; NOTE: an internal note only staff see."""

    REPLY = "REPLY"
    NOTE = "NOTE"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageAdded:
    """A message was added: a customer message, a staff reply or an internal note."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MessageAdded"
    message_id: str
    direction: MessageDirection
    visibility: MessageVisibility
    channel: Channel
    recipients: tuple[str, ...] = ()
    email_message_id: str | None = None
    preview: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "direction": self.direction,
            "visibility": self.visibility,
            "channel": self.channel,
            "recipients": list(self.recipients),
            "email_message_id": self.email_message_id,
            "preview": self.preview,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MessageAdded:
        return cls(
            message_id=d["message_id"],
            direction=MessageDirection(d["direction"]),
            visibility=MessageVisibility(d["visibility"]),
            channel=Channel(d["channel"]),
            recipients=tuple(d["recipients"]),
            email_message_id=d["email_message_id"],
            preview=d["preview"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffRef:
    """A staff member as the support app shows them."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.StaffRef"
    id: str
    name: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> StaffRef:
        return cls(
            id=d["id"],
            name=d["name"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reassigned:
    """The conversation's assignee changed."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Reassigned"
    from_assignee: StaffRef | None = None
    to_assignee: StaffRef | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "from_assignee": None if self.from_assignee is None else self.from_assignee.to_avro(),
            "to_assignee": None if self.to_assignee is None else self.to_assignee.to_avro(),
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Reassigned:
        return cls(
            from_assignee=None
            if (inner := d["from_assignee"]) is None
            else StaffRef.from_avro(inner),
            to_assignee=None if (inner := d["to_assignee"]) is None else StaffRef.from_avro(inner),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Moved:
    """The conversation moved to another inbox."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Moved"
    from_inbox: InboxRef
    to_inbox: InboxRef

    def to_avro(self) -> dict[str, Any]:
        return {
            "from_inbox": self.from_inbox.to_avro(),
            "to_inbox": self.to_inbox.to_avro(),
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Moved:
        return cls(
            from_inbox=InboxRef.from_avro(d["from_inbox"]),
            to_inbox=InboxRef.from_avro(d["to_inbox"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TagAdded:
    """A tag was added."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.TagAdded"
    tag: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> TagAdded:
        return cls(
            tag=d["tag"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TagRemoved:
    """A tag was removed."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.TagRemoved"
    tag: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> TagRemoved:
        return cls(
            tag=d["tag"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The conversation was resolved."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Resolved"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Resolved:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reopened:
    """The conversation was reopened."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Reopened"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Reopened:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Archived:
    """The conversation was archived."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Archived"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Archived:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Unarchived:
    """The conversation was taken out of the archive."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Unarchived"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Unarchived:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkedSpam:
    """Staff marked the conversation as spam."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MarkedSpam"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MarkedSpam:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnmarkedSpam:
    """Staff took the spam mark off the conversation."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.UnmarkedSpam"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> UnmarkedSpam:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEnded:
    """Staff ended a chat conversation."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ChatEnded"
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ChatEnded:
        return cls(
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RepliedAndArchived:
    """Staff replied and archived in one action (one timeline entry)."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.RepliedAndArchived"
    message_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> RepliedAndArchived:
        return cls(
            message_id=d["message_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RepliedAndReopened:
    """Staff replied and reopened in one action (one timeline entry)."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.RepliedAndReopened"
    message_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> RepliedAndReopened:
        return cls(
            message_id=d["message_id"],
        )


class WorkflowTrigger(StrEnum):
    """MANUAL: a staff member ran it; AUTOMATED: a rule fired it."""

    MANUAL = "MANUAL"
    AUTOMATED = "AUTOMATED"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRan:
    """A workflow ran on the conversation, manually or automatically."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.WorkflowRan"
    workflow_id: str
    workflow_name: str
    trigger: WorkflowTrigger

    def to_avro(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "trigger": self.trigger,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> WorkflowRan:
        return cls(
            workflow_id=d["workflow_id"],
            workflow_name=d["workflow_name"],
            trigger=WorkflowTrigger(d["trigger"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PutOnHold:
    """The conversation was put (back) on hold."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.PutOnHold"
    until: datetime | None = None
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "until": self.until,
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> PutOnHold:
        return cls(
            until=d["until"],
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NotePinned:
    """An internal note was pinned."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.NotePinned"
    note_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "note_id": self.note_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> NotePinned:
        return cls(
            note_id=d["note_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteUnpinned:
    """An internal note was unpinned."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.NoteUnpinned"
    note_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "note_id": self.note_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> NoteUnpinned:
        return cls(
            note_id=d["note_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Merged:
    """This conversation (the source) was merged into another (the target). Keyed by the source."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.Merged"
    into_conversation_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "into_conversation_id": self.into_conversation_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Merged:
        return cls(
            into_conversation_id=d["into_conversation_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MovedReminder:
    """A pending reminder carried from the source to the target."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MovedReminder"
    reminder_id: str
    due_at: datetime
    for_staff: StaffRef | None = None
    note: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
            "due_at": self.due_at,
            "for_staff": None if self.for_staff is None else self.for_staff.to_avro(),
            "note": self.note,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MovedReminder:
        return cls(
            reminder_id=d["reminder_id"],
            due_at=d["due_at"],
            for_staff=None if (inner := d["for_staff"]) is None else StaffRef.from_avro(inner),
            note=d["note"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeReceived:
    """Derived: another conversation was merged into this one (the target). Keyed by the target; causation_id is the MERGED event."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MergeReceived"
    from_conversation_id: str
    moved_reminders: tuple[MovedReminder, ...] = ()

    def to_avro(self) -> dict[str, Any]:
        return {
            "from_conversation_id": self.from_conversation_id,
            "moved_reminders": [item.to_avro() for item in self.moved_reminders],
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MergeReceived:
        return cls(
            from_conversation_id=d["from_conversation_id"],
            moved_reminders=tuple(MovedReminder.from_avro(item) for item in d["moved_reminders"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoResolved:
    """Derived: the assistant resolved a chat that had no activity for the inactivity timeout."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.AutoResolved"
    idle_minutes: int
    timer_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "idle_minutes": self.idle_minutes,
            "timer_id": self.timer_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> AutoResolved:
        return cls(
            idle_minutes=d["idle_minutes"],
            timer_id=d["timer_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentDeleted:
    """An attachment was deleted from a message."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.AttachmentDeleted"
    attachment_id: str
    file_name: str
    message_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "attachment_id": self.attachment_id,
            "file_name": self.file_name,
            "message_id": self.message_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> AttachmentDeleted:
        return cls(
            attachment_id=d["attachment_id"],
            file_name=d["file_name"],
            message_id=d["message_id"],
        )


class MatchedBy(StrEnum):
    """How the bounce processor found the message a delivery notification is about. MESSAGE_REF: the notification named it (the platform's message id, the RFC 5322 Message-ID or the provider's message id). RECIPIENT: it named none (a bounce email without the original's Message-ID), so it was matched to the most recent outbound message to the recipient within the recipient window (docs/delivery.md, "Routing by recipient")."""

    MESSAGE_REF = "MESSAGE_REF"
    RECIPIENT = "RECIPIENT"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFailed:
    """Derived from a provider notification: a message could not be delivered (dropped, rejected, failed)."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.DeliveryFailed"
    message_id: str
    recipient: str
    provider: str
    reason: str
    smtp_status: str | None = None
    matched_by: MatchedBy | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "provider": self.provider,
            "reason": self.reason,
            "smtp_status": self.smtp_status,
            "matched_by": self.matched_by,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> DeliveryFailed:
        return cls(
            message_id=d["message_id"],
            recipient=d["recipient"],
            provider=d["provider"],
            reason=d["reason"],
            smtp_status=d["smtp_status"],
            matched_by=None if (inner := d["matched_by"]) is None else MatchedBy(inner),
        )


class BounceClass(StrEnum):
    """HARD: permanent (address unknown); SOFT: transient (mailbox full, deferred); POLICY: refused by policy (spam filter, blocklist); UNKNOWN: could not be classified."""

    HARD = "HARD"
    SOFT = "SOFT"
    POLICY = "POLICY"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class BounceDetected:
    """Derived from a provider notification or DSN email: a message bounced."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.BounceDetected"
    message_id: str
    recipient: str
    provider: str
    bounce_class: BounceClass
    smtp_status: str | None = None
    diagnostic: str | None = None
    escalated: bool = False
    matched_by: MatchedBy | None = None
    delayed: bool = False

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "provider": self.provider,
            "bounce_class": self.bounce_class,
            "smtp_status": self.smtp_status,
            "diagnostic": self.diagnostic,
            "escalated": self.escalated,
            "matched_by": self.matched_by,
            "delayed": self.delayed,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> BounceDetected:
        return cls(
            message_id=d["message_id"],
            recipient=d["recipient"],
            provider=d["provider"],
            bounce_class=BounceClass(d["bounce_class"]),
            smtp_status=d["smtp_status"],
            diagnostic=d["diagnostic"],
            escalated=d["escalated"],
            matched_by=None if (inner := d["matched_by"]) is None else MatchedBy(inner),
            delayed=d["delayed"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatbotHandedOver:
    """A chatbot handed the conversation over to staff."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ChatbotHandedOver"
    bot_id: str
    bot_name: str
    to_inbox: InboxRef | None = None
    reason: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "bot_name": self.bot_name,
            "to_inbox": None if self.to_inbox is None else self.to_inbox.to_avro(),
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ChatbotHandedOver:
        return cls(
            bot_id=d["bot_id"],
            bot_name=d["bot_name"],
            to_inbox=None if (inner := d["to_inbox"]) is None else InboxRef.from_avro(inner),
            reason=d["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatbotResolved:
    """A chatbot resolved the conversation by itself."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ChatbotResolved"
    bot_id: str
    bot_name: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "bot_name": self.bot_name,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ChatbotResolved:
        return cls(
            bot_id=d["bot_id"],
            bot_name=d["bot_name"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectEdited:
    """The conversation's subject was edited."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.SubjectEdited"
    from_subject: str | None = None
    to_subject: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "from_subject": self.from_subject,
            "to_subject": self.to_subject,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> SubjectEdited:
        return cls(
            from_subject=d["from_subject"],
            to_subject=d["to_subject"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderAdded:
    """A reminder was added; it fires at due_at."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ReminderAdded"
    reminder_id: str
    due_at: datetime
    for_staff: StaffRef | None = None
    note: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
            "due_at": self.due_at,
            "for_staff": None if self.for_staff is None else self.for_staff.to_avro(),
            "note": self.note,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ReminderAdded:
        return cls(
            reminder_id=d["reminder_id"],
            due_at=d["due_at"],
            for_staff=None if (inner := d["for_staff"]) is None else StaffRef.from_avro(inner),
            note=d["note"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderCancelled:
    """A pending reminder was cancelled."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ReminderCancelled"
    reminder_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ReminderCancelled:
        return cls(
            reminder_id=d["reminder_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderTriggered:
    """Derived: a reminder fired at its due time. causation_id is the REMINDER_ADDED event."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ReminderTriggered"
    reminder_id: str
    due_at: datetime
    for_staff: StaffRef | None = None
    note: str | None = None
    late: bool = False

    def to_avro(self) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
            "due_at": self.due_at,
            "for_staff": None if self.for_staff is None else self.for_staff.to_avro(),
            "note": self.note,
            "late": self.late,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ReminderTriggered:
        return cls(
            reminder_id=d["reminder_id"],
            due_at=d["due_at"],
            for_staff=None if (inner := d["for_staff"]) is None else StaffRef.from_avro(inner),
            note=d["note"],
            late=d["late"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerMarkedSpam:
    """Derived from a complaint: the customer marked a message as spam."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.CustomerMarkedSpam"
    message_id: str
    recipient: str
    provider: str
    matched_by: MatchedBy | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "provider": self.provider,
            "matched_by": self.matched_by,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> CustomerMarkedSpam:
        return cls(
            message_id=d["message_id"],
            recipient=d["recipient"],
            provider=d["provider"],
            matched_by=None if (inner := d["matched_by"]) is None else MatchedBy(inner),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CsatSurveySent:
    """A customer satisfaction survey was sent."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.CsatSurveySent"
    survey_id: str
    message_id: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "message_id": self.message_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> CsatSurveySent:
        return cls(
            survey_id=d["survey_id"],
            message_id=d["message_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageSent:
    """The provider accepted an outbound message for delivery."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MessageSent"
    message_id: str
    recipient: str
    provider: str
    provider_message_id: str | None = None
    matched_by: MatchedBy | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "provider": self.provider,
            "provider_message_id": self.provider_message_id,
            "matched_by": self.matched_by,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MessageSent:
        return cls(
            message_id=d["message_id"],
            recipient=d["recipient"],
            provider=d["provider"],
            provider_message_id=d["provider_message_id"],
            matched_by=None if (inner := d["matched_by"]) is None else MatchedBy(inner),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDelivered:
    """The receiving server accepted the message."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MessageDelivered"
    message_id: str
    recipient: str
    provider: str
    matched_by: MatchedBy | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "provider": self.provider,
            "matched_by": self.matched_by,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MessageDelivered:
        return cls(
            message_id=d["message_id"],
            recipient=d["recipient"],
            provider=d["provider"],
            matched_by=None if (inner := d["matched_by"]) is None else MatchedBy(inner),
        )


class ViewerKind(StrEnum):
    """CUSTOMER: the customer viewed a staff reply; STAFF: a teammate viewed a customer message."""

    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"


class ViewSource(StrEnum):
    """How the view was observed."""

    TRACKING_PIXEL = "TRACKING_PIXEL"
    CHAT_WIDGET = "CHAT_WIDGET"
    APP = "APP"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageViewed:
    """A message was viewed: by the customer (a staff reply) or by a teammate (a customer message)."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.MessageViewed"
    message_id: str
    viewer_kind: ViewerKind
    viewer_id: str
    source: ViewSource = ViewSource.UNKNOWN
    user_agent: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "viewer_kind": self.viewer_kind,
            "viewer_id": self.viewer_id,
            "source": self.source,
            "user_agent": self.user_agent,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MessageViewed:
        return cls(
            message_id=d["message_id"],
            viewer_kind=ViewerKind(d["viewer_kind"]),
            viewer_id=d["viewer_id"],
            source=ViewSource(d["source"]),
            user_agent=d["user_agent"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationEvent:
    """One fact about a conversation. Published keyed by conversation_id on conversation-events."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.events.ConversationEvent"
    event_id: str
    conversation_id: str
    account_id: str
    type: EventType
    occurred_at: datetime
    actor: Actor
    correlation_id: str | None = None
    causation_id: str | None = None
    payload: Payload

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "actor": self.actor.to_avro(),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "payload": (self.payload.AVRO_NAME, self.payload.to_avro()),
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ConversationEvent:
        return cls(
            event_id=d["event_id"],
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            type=EventType(d["type"]),
            occurred_at=d["occurred_at"],
            actor=Actor.from_avro(d["actor"]),
            correlation_id=d["correlation_id"],
            causation_id=d["causation_id"],
            payload=_payload_from_avro(d["payload"]),
        )


class ConversationStatus(StrEnum):
    """Where the conversation stands."""

    OPEN = "OPEN"
    ON_HOLD = "ON_HOLD"
    RESOLVED = "RESOLVED"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingReminder:
    """A reminder waiting for its due time."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.PendingReminder"
    reminder_id: str
    due_at: datetime
    for_staff: StaffRef | None = None
    note: str | None = None
    added_event_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "reminder_id": self.reminder_id,
            "due_at": self.due_at,
            "for_staff": None if self.for_staff is None else self.for_staff.to_avro(),
            "note": self.note,
            "added_event_id": self.added_event_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> PendingReminder:
        return cls(
            reminder_id=d["reminder_id"],
            due_at=d["due_at"],
            for_staff=None if (inner := d["for_staff"]) is None else StaffRef.from_avro(inner),
            note=d["note"],
            added_event_id=d["added_event_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationState:
    """Snapshot of one conversation after an accepted event. Compacted topic conversation-state, keyed by conversation_id."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.ConversationState"
    conversation_id: str
    account_id: str
    version: int
    status: ConversationStatus
    archived: bool
    spam: bool
    merged_into: str | None = None
    merged_from: tuple[str, ...] = ()
    assignee: StaffRef | None = None
    inbox: InboxRef | None = None
    brand: str | None = None
    channel: Channel | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    tags: tuple[str, ...] = ()
    pinned_note_ids: tuple[str, ...] = ()
    subject: str | None = None
    chat_ended: bool = False
    pending_reminders: tuple[PendingReminder, ...] = ()
    last_customer_activity_at: datetime | None = None
    last_staff_activity_at: datetime | None = None
    inbound_messages: int = 0
    outbound_replies: int = 0
    internal_notes: int = 0
    reopen_count: int = 0
    created_at: datetime | None = None
    last_event_id: str
    last_event_at: datetime

    def to_avro(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "version": self.version,
            "status": self.status,
            "archived": self.archived,
            "spam": self.spam,
            "merged_into": self.merged_into,
            "merged_from": list(self.merged_from),
            "assignee": None if self.assignee is None else self.assignee.to_avro(),
            "inbox": None if self.inbox is None else self.inbox.to_avro(),
            "brand": self.brand,
            "channel": self.channel,
            "customer_id": self.customer_id,
            "customer_email": self.customer_email,
            "tags": list(self.tags),
            "pinned_note_ids": list(self.pinned_note_ids),
            "subject": self.subject,
            "chat_ended": self.chat_ended,
            "pending_reminders": [item.to_avro() for item in self.pending_reminders],
            "last_customer_activity_at": self.last_customer_activity_at,
            "last_staff_activity_at": self.last_staff_activity_at,
            "inbound_messages": self.inbound_messages,
            "outbound_replies": self.outbound_replies,
            "internal_notes": self.internal_notes,
            "reopen_count": self.reopen_count,
            "created_at": self.created_at,
            "last_event_id": self.last_event_id,
            "last_event_at": self.last_event_at,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ConversationState:
        return cls(
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            version=d["version"],
            status=ConversationStatus(d["status"]),
            archived=d["archived"],
            spam=d["spam"],
            merged_into=d["merged_into"],
            merged_from=tuple(d["merged_from"]),
            assignee=None if (inner := d["assignee"]) is None else StaffRef.from_avro(inner),
            inbox=None if (inner := d["inbox"]) is None else InboxRef.from_avro(inner),
            brand=d["brand"],
            channel=None if (inner := d["channel"]) is None else Channel(inner),
            customer_id=d["customer_id"],
            customer_email=d["customer_email"],
            tags=tuple(d["tags"]),
            pinned_note_ids=tuple(d["pinned_note_ids"]),
            subject=d["subject"],
            chat_ended=d["chat_ended"],
            pending_reminders=tuple(
                PendingReminder.from_avro(item) for item in d["pending_reminders"]
            ),
            last_customer_activity_at=d["last_customer_activity_at"],
            last_staff_activity_at=d["last_staff_activity_at"],
            inbound_messages=d["inbound_messages"],
            outbound_replies=d["outbound_replies"],
            internal_notes=d["internal_notes"],
            reopen_count=d["reopen_count"],
            created_at=d["created_at"],
            last_event_id=d["last_event_id"],
            last_event_at=d["last_event_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One field an event changed, for machines."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.FieldChange"
    field: str
    before: str | None = None
    after: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> FieldChange:
        return cls(
            field=d["field"],
            before=d["before"],
            after=d["after"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One rendered audit-trail entry per accepted event. Topic conversation-timeline, keyed by conversation_id."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.TimelineEntry"
    event_id: str
    conversation_id: str
    account_id: str
    sequence: int
    type: EventType
    occurred_at: datetime
    actor: Actor
    text: str
    changes: tuple[FieldChange, ...] = ()
    correlation_id: str | None = None
    causation_id: str | None = None
    message_id: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "sequence": self.sequence,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "actor": self.actor.to_avro(),
            "text": self.text,
            "changes": [item.to_avro() for item in self.changes],
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "message_id": self.message_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> TimelineEntry:
        return cls(
            event_id=d["event_id"],
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            sequence=d["sequence"],
            type=EventType(d["type"]),
            occurred_at=d["occurred_at"],
            actor=Actor.from_avro(d["actor"]),
            text=d["text"],
            changes=tuple(FieldChange.from_avro(item) for item in d["changes"]),
            correlation_id=d["correlation_id"],
            causation_id=d["causation_id"],
            message_id=d["message_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadReceipt:
    """First and latest view of one message by one viewer. Compacted topic read-receipts, keyed by message_id."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.ReadReceipt"
    message_id: str
    conversation_id: str
    account_id: str
    viewer_kind: ViewerKind
    viewer_id: str
    first_viewed_at: datetime | None = None
    last_viewed_at: datetime | None = None
    view_count: int
    automated_view_count: int = 0
    last_event_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "viewer_kind": self.viewer_kind,
            "viewer_id": self.viewer_id,
            "first_viewed_at": self.first_viewed_at,
            "last_viewed_at": self.last_viewed_at,
            "view_count": self.view_count,
            "automated_view_count": self.automated_view_count,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> ReadReceipt:
        return cls(
            message_id=d["message_id"],
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            viewer_kind=ViewerKind(d["viewer_kind"]),
            viewer_id=d["viewer_id"],
            first_viewed_at=d["first_viewed_at"],
            last_viewed_at=d["last_viewed_at"],
            view_count=d["view_count"],
            automated_view_count=d["automated_view_count"],
            last_event_id=d["last_event_id"],
        )


class DeliveryState(StrEnum):
    """Furthest known delivery state of a message to one recipient."""

    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    BOUNCED = "BOUNCED"
    COMPLAINED = "COMPLAINED"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStatus:
    """Delivery status of one outbound message to one recipient."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.DeliveryStatus"
    message_id: str
    conversation_id: str
    account_id: str
    recipient: str
    state: DeliveryState
    provider: str
    bounce_class: BounceClass | None = None
    smtp_status: str | None = None
    diagnostic: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    updated_at: datetime
    last_event_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "recipient": self.recipient,
            "state": self.state,
            "provider": self.provider,
            "bounce_class": self.bounce_class,
            "smtp_status": self.smtp_status,
            "diagnostic": self.diagnostic,
            "sent_at": self.sent_at,
            "delivered_at": self.delivered_at,
            "updated_at": self.updated_at,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> DeliveryStatus:
        return cls(
            message_id=d["message_id"],
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            recipient=d["recipient"],
            state=DeliveryState(d["state"]),
            provider=d["provider"],
            bounce_class=None if (inner := d["bounce_class"]) is None else BounceClass(inner),
            smtp_status=d["smtp_status"],
            diagnostic=d["diagnostic"],
            sent_at=d["sent_at"],
            delivered_at=d["delivered_at"],
            updated_at=d["updated_at"],
            last_event_id=d["last_event_id"],
        )


class SuppressionReason(StrEnum):
    """Why a recipient is suppressed. HARD_BOUNCE: a permanent bounce; REPEATED_SOFT_BOUNCES: soft bounces on distinct messages inside the window escalated to hard; COMPLAINT: the recipient marked a message as spam."""

    HARD_BOUNCE = "HARD_BOUNCE"
    REPEATED_SOFT_BOUNCES = "REPEATED_SOFT_BOUNCES"
    COMPLAINT = "COMPLAINT"


@dataclass(frozen=True, slots=True, kw_only=True)
class SuppressedRecipient:
    """A recipient senders should not mail. Compacted topic suppressed-recipients, keyed by '<account_id>/<recipient>'; a tombstone (null value) lifts the suppression after a later successful delivery."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.SuppressedRecipient"
    account_id: str
    recipient: str
    reason: SuppressionReason
    bounce_class: BounceClass | None = None
    smtp_status: str | None = None
    diagnostic: str | None = None
    message_id: str
    conversation_id: str
    suppressed_at: datetime
    last_event_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "recipient": self.recipient,
            "reason": self.reason,
            "bounce_class": self.bounce_class,
            "smtp_status": self.smtp_status,
            "diagnostic": self.diagnostic,
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "suppressed_at": self.suppressed_at,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> SuppressedRecipient:
        return cls(
            account_id=d["account_id"],
            recipient=d["recipient"],
            reason=SuppressionReason(d["reason"]),
            bounce_class=None if (inner := d["bounce_class"]) is None else BounceClass(inner),
            smtp_status=d["smtp_status"],
            diagnostic=d["diagnostic"],
            message_id=d["message_id"],
            conversation_id=d["conversation_id"],
            suppressed_at=d["suppressed_at"],
            last_event_id=d["last_event_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRoute:
    """Which conversation an outbound message belongs to, under one of its ids. Compacted internal topic message-routes, keyed by message_ref; learned from outbound MESSAGE_ADDED (message_id, email_message_id) and MESSAGE_SENT (provider_message_id) events so that delivery notifications, keyed by the same ref, find their conversation on the same partition. Each recipient of an outbound message also gets a route under the ref `recipient <address>`: the recipient index, which routes notifications that name no message (processors/delivery/by_recipient.py)."""

    AVRO_NAME: ClassVar[str] = "dev.convotrail.outputs.MessageRoute"
    message_ref: str
    message_id: str
    conversation_id: str
    account_id: str
    recipients: tuple[str, ...] = ()
    learned_from: str
    sent_at: datetime | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "message_ref": self.message_ref,
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "recipients": list(self.recipients),
            "learned_from": self.learned_from,
            "sent_at": self.sent_at,
        }

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> MessageRoute:
        return cls(
            message_ref=d["message_ref"],
            message_id=d["message_id"],
            conversation_id=d["conversation_id"],
            account_id=d["account_id"],
            recipients=tuple(d["recipients"]),
            learned_from=d["learned_from"],
            sent_at=d["sent_at"],
        )


Payload: TypeAlias = (
    ConversationCreated
    | MessageAdded
    | Reassigned
    | Moved
    | TagAdded
    | TagRemoved
    | Resolved
    | Reopened
    | Archived
    | Unarchived
    | MarkedSpam
    | UnmarkedSpam
    | ChatEnded
    | RepliedAndArchived
    | RepliedAndReopened
    | WorkflowRan
    | PutOnHold
    | NotePinned
    | NoteUnpinned
    | Merged
    | MergeReceived
    | AutoResolved
    | AttachmentDeleted
    | DeliveryFailed
    | BounceDetected
    | ChatbotHandedOver
    | ChatbotResolved
    | SubjectEdited
    | ReminderAdded
    | ReminderCancelled
    | ReminderTriggered
    | CustomerMarkedSpam
    | CsatSurveySent
    | MessageSent
    | MessageDelivered
    | MessageViewed
)

PAYLOAD_BY_TYPE: dict[EventType, type[Payload]] = {
    EventType.CONVERSATION_CREATED: ConversationCreated,
    EventType.MESSAGE_ADDED: MessageAdded,
    EventType.REASSIGNED: Reassigned,
    EventType.MOVED: Moved,
    EventType.TAG_ADDED: TagAdded,
    EventType.TAG_REMOVED: TagRemoved,
    EventType.RESOLVED: Resolved,
    EventType.REOPENED: Reopened,
    EventType.ARCHIVED: Archived,
    EventType.UNARCHIVED: Unarchived,
    EventType.MARKED_SPAM: MarkedSpam,
    EventType.UNMARKED_SPAM: UnmarkedSpam,
    EventType.CHAT_ENDED: ChatEnded,
    EventType.REPLIED_AND_ARCHIVED: RepliedAndArchived,
    EventType.REPLIED_AND_REOPENED: RepliedAndReopened,
    EventType.WORKFLOW_RAN: WorkflowRan,
    EventType.PUT_ON_HOLD: PutOnHold,
    EventType.NOTE_PINNED: NotePinned,
    EventType.NOTE_UNPINNED: NoteUnpinned,
    EventType.MERGED: Merged,
    EventType.MERGE_RECEIVED: MergeReceived,
    EventType.AUTO_RESOLVED: AutoResolved,
    EventType.ATTACHMENT_DELETED: AttachmentDeleted,
    EventType.DELIVERY_FAILED: DeliveryFailed,
    EventType.BOUNCE_DETECTED: BounceDetected,
    EventType.CHATBOT_HANDED_OVER: ChatbotHandedOver,
    EventType.CHATBOT_RESOLVED: ChatbotResolved,
    EventType.SUBJECT_EDITED: SubjectEdited,
    EventType.REMINDER_ADDED: ReminderAdded,
    EventType.REMINDER_CANCELLED: ReminderCancelled,
    EventType.REMINDER_TRIGGERED: ReminderTriggered,
    EventType.CUSTOMER_MARKED_SPAM: CustomerMarkedSpam,
    EventType.CSAT_SURVEY_SENT: CsatSurveySent,
    EventType.MESSAGE_SENT: MessageSent,
    EventType.MESSAGE_DELIVERED: MessageDelivered,
    EventType.MESSAGE_VIEWED: MessageViewed,
}
TYPE_BY_PAYLOAD: dict[type[Payload], EventType] = {
    payload: event_type for event_type, payload in PAYLOAD_BY_TYPE.items()
}
_PAYLOAD_BY_AVRO_NAME: dict[str, type[Payload]] = {
    payload.AVRO_NAME: payload for payload in PAYLOAD_BY_TYPE.values()
}


def _payload_from_avro(value: tuple[str, dict[str, Any]]) -> Payload:
    # fastavro returns (record name, fields) for the payload union
    # (decode with return_record_name=True, return_record_name_override=True).
    name, fields = value
    return _PAYLOAD_BY_AVRO_NAME[name].from_avro(fields)
