"""Builders of the sink's input records (TimelineEntry, ConversationState) for tests.

Times are whole milliseconds in UTC, as Avro timestamp-millis carries them, so
a record survives the wire and the database unchanged and compares equal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.model import (
    Actor,
    ActorKind,
    Channel,
    ConversationState,
    ConversationStatus,
    EventType,
    FieldChange,
    InboxRef,
    PendingReminder,
    StaffRef,
    TimelineEntry,
)

T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
DANA = StaffRef(id="stf-dana", name="Dana")
LEE = StaffRef(id="stf-lee", name="Lee")
SAM = StaffRef(id="stf-sam", name="Sam")
BILLING = InboxRef(id="inb-billing", name="Billing")


def at(sequence: int) -> datetime:
    return T0 + timedelta(minutes=sequence, milliseconds=sequence * 7)


def timeline_entry(
    conversation_id: str,
    sequence: int,
    *,
    account_id: str = "acc-1",
    event_id: str | None = None,
    text: str | None = None,
) -> TimelineEntry:
    return TimelineEntry(
        event_id=event_id or f"evt-{conversation_id}-{sequence}",
        conversation_id=conversation_id,
        account_id=account_id,
        sequence=sequence,
        type=EventType.REASSIGNED,
        occurred_at=at(sequence),
        actor=Actor(kind=ActorKind.STAFF, id=DANA.id, name=DANA.name),
        text=text or f"Dana reassigned this conversation from Lee to Sam (#{sequence})",
        changes=(FieldChange(field="assignee", before=LEE.id, after=SAM.id),),
        correlation_id=f"cor-{conversation_id}",
        causation_id=None,
    )


def conversation_state(
    conversation_id: str,
    version: int,
    *,
    account_id: str = "acc-1",
    subject: str | None = None,
) -> ConversationState:
    return ConversationState(
        conversation_id=conversation_id,
        account_id=account_id,
        version=version,
        status=ConversationStatus.RESOLVED if version % 3 == 0 else ConversationStatus.OPEN,
        archived=version % 5 == 0,
        spam=False,
        assignee=SAM if version % 2 else LEE,
        inbox=BILLING,
        brand="Acme",
        channel=Channel.EMAIL,
        customer_id=f"cus-{conversation_id}",
        customer_email=f"{conversation_id}@example.com",
        tags=tuple(sorted({"billing", f"v{version}"})),
        pinned_note_ids=("note-1",) if version > 1 else (),
        subject=subject or f"Invoice question ({conversation_id})",
        pending_reminders=(
            PendingReminder(
                reminder_id=f"rem-{conversation_id}",
                due_at=at(version + 60),
                for_staff=DANA,
                note="call back",
                added_event_id=f"evt-{conversation_id}-1",
            ),
        ),
        last_customer_activity_at=at(version),
        last_staff_activity_at=None,
        inbound_messages=version,
        outbound_replies=version // 2,
        reopen_count=version // 4,
        created_at=T0,
        last_event_id=f"evt-{conversation_id}-{version}",
        last_event_at=at(version),
    )
