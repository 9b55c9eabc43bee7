"""Records to table rows and back, pure: what each column holds and why."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.sink.batch import STATE_RANK, receipt_progress
from connectors.sink.snapshot import changes_from_json, changes_to_json, state_to_json
from schemas.model import (
    Actor,
    ActorKind,
    BounceClass,
    ConversationState,
    DeliveryState,
    DeliveryStatus,
    EventType,
    ReadReceipt,
    TimelineEntry,
    ViewerKind,
)


def timeline_row(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "event_id": entry.event_id,
        "conversation_id": entry.conversation_id,
        "account_id": entry.account_id,
        "sequence": entry.sequence,
        "type": entry.type.value,
        "occurred_at": entry.occurred_at,
        "actor_kind": entry.actor.kind.value,
        "actor_id": entry.actor.id,
        "actor_name": entry.actor.name,
        "actor_on_behalf_of": entry.actor.on_behalf_of,
        "actor_rule_id": entry.actor.rule_id,
        "text": entry.text,
        "changes": changes_to_json(entry.changes),
        "correlation_id": entry.correlation_id,
        "causation_id": entry.causation_id,
        "message_id": entry.message_id,
    }


def timeline_entry_from_row(row: sa.Row[Any]) -> TimelineEntry:
    return TimelineEntry(
        event_id=row.event_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        sequence=row.sequence,
        type=EventType(row.type),
        occurred_at=row.occurred_at,
        actor=Actor(
            kind=ActorKind(row.actor_kind),
            id=row.actor_id,
            name=row.actor_name,
            on_behalf_of=row.actor_on_behalf_of,
            rule_id=row.actor_rule_id,
        ),
        text=row.text,
        changes=changes_from_json(row.changes),
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        message_id=row.message_id,
    )


def state_row(state: ConversationState, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": state.conversation_id,
        "account_id": state.account_id,
        "version": state.version,
        "status": state.status.value,
        "archived": state.archived,
        "spam": state.spam,
        "assignee_id": state.assignee.id if state.assignee else None,
        "assignee_name": state.assignee.name if state.assignee else None,
        "inbox_id": state.inbox.id if state.inbox else None,
        "inbox_name": state.inbox.name if state.inbox else None,
        "subject": state.subject,
        "channel": state.channel.value if state.channel else None,
        "brand": state.brand,
        "customer_id": state.customer_id,
        "customer_email": state.customer_email,
        "tags": json.dumps(list(state.tags)),
        "merged_into": state.merged_into,
        "created_at": state.created_at,
        "last_event_id": state.last_event_id,
        "last_event_at": state.last_event_at,
        "updated_at": now,
        "snapshot": state_to_json(state),
    }


def receipt_row(receipt: ReadReceipt) -> dict[str, Any]:
    return {
        "message_id": receipt.message_id,
        "viewer_kind": receipt.viewer_kind.value,
        "viewer_id": receipt.viewer_id,
        "conversation_id": receipt.conversation_id,
        "account_id": receipt.account_id,
        "first_viewed_at": receipt.first_viewed_at,
        "last_viewed_at": receipt.last_viewed_at,
        "view_count": receipt.view_count,
        "automated_view_count": receipt.automated_view_count,
        "progress": receipt_progress(receipt),
        "last_event_id": receipt.last_event_id,
    }


def receipt_from_row(row: sa.Row[Any]) -> ReadReceipt:
    return ReadReceipt(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        viewer_kind=ViewerKind(row.viewer_kind),
        viewer_id=row.viewer_id,
        first_viewed_at=row.first_viewed_at,
        last_viewed_at=row.last_viewed_at,
        view_count=row.view_count,
        automated_view_count=row.automated_view_count,
        last_event_id=row.last_event_id,
    )


def status_row(status: DeliveryStatus) -> dict[str, Any]:
    return {
        "message_id": status.message_id,
        "recipient": status.recipient,
        "conversation_id": status.conversation_id,
        "account_id": status.account_id,
        "state": status.state.value,
        "state_rank": STATE_RANK[status.state],
        "provider": status.provider,
        "bounce_class": status.bounce_class.value if status.bounce_class else None,
        "smtp_status": status.smtp_status,
        "diagnostic": status.diagnostic,
        "sent_at": status.sent_at,
        "delivered_at": status.delivered_at,
        "updated_at": status.updated_at,
        "last_event_id": status.last_event_id,
    }


def status_from_row(row: sa.Row[Any]) -> DeliveryStatus:
    return DeliveryStatus(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        recipient=row.recipient,
        state=DeliveryState(row.state),
        provider=row.provider,
        bounce_class=BounceClass(row.bounce_class) if row.bounce_class else None,
        smtp_status=row.smtp_status,
        diagnostic=row.diagnostic,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        updated_at=row.updated_at,
        last_event_id=row.last_event_id,
    )
