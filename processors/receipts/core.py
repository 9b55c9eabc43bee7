"""Read receipts and delivery status of one message: a pure fold over its events.

One `Track` per message (the table `message-tracks`, keyed by account and message_id, fed
from conversation-events). `track(previous, event, rule)` returns the new track
and what changed: the receipts of the viewers this event touched and the delivery
statuses of the recipients it touched. No I/O, no clock.

Read receipts (one per message and viewer):
- duplicates are folded: a view whose event_id was applied before, or that repeats
  an applied view's exact time and source, changes nothing;
- a human view moves first_viewed_at earlier and last_viewed_at later and adds one
  to view_count; an automated one (scanner.py) only adds to automated_view_count.
  Nothing ever moves a receipt backwards: min, max and counts only grow, and a
  late delivery report does not re-judge views already counted;
- arrival order does not matter for the times and counts: min and max commute.

Delivery status (one per message and recipient): the furthest state wins, by rank
SENT < DELIVERED = FAILED = BOUNCED < COMPLAINED, and within a rank the latest in
event time (ties by event_id); sent_at and delivered_at are the earliest reported.
So a late SENT never undoes DELIVERED, and any arrival order of the same facts
gives the same status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from processors.receipts.scanner import ScannerRule
from schemas import model as m
from schemas.records import replace

# Event ids remembered per viewer for folding duplicates. A duplicate of a view
# older than the last SEEN_CAP views of the same viewer would be counted again.
SEEN_CAP = 256

TRACKED = frozenset(
    {
        m.EventType.MESSAGE_ADDED,
        m.EventType.MESSAGE_SENT,
        m.EventType.MESSAGE_DELIVERED,
        m.EventType.DELIVERY_FAILED,
        m.EventType.BOUNCE_DETECTED,
        m.EventType.CUSTOMER_MARKED_SPAM,
        m.EventType.MESSAGE_VIEWED,
    }
)

_RANK = {
    m.DeliveryState.SENT: 0,
    m.DeliveryState.DELIVERED: 1,
    m.DeliveryState.FAILED: 1,
    m.DeliveryState.BOUNCED: 1,
    m.DeliveryState.COMPLAINED: 2,
}


@dataclass(frozen=True, slots=True)
class Viewer:
    receipt: m.ReadReceipt
    seen: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Track:
    message_id: str
    conversation_id: str
    account_id: str
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    statuses: tuple[m.DeliveryStatus, ...] = ()
    viewers: tuple[Viewer, ...] = ()


@dataclass(frozen=True, slots=True)
class Changes:
    receipts: tuple[m.ReadReceipt, ...] = ()
    statuses: tuple[m.DeliveryStatus, ...] = ()


def message_id_of(event: m.ConversationEvent) -> str | None:
    """The message a tracked event is about; None for events this processor ignores."""
    if event.type not in TRACKED:
        return None
    message_id: str = getattr(event.payload, "message_id", "")
    return message_id or None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _status_of(event: m.ConversationEvent) -> tuple[m.DeliveryState, dict[str, object]] | None:
    p = event.payload
    if isinstance(p, m.MessageSent):
        return m.DeliveryState.SENT, {"sent_at": event.occurred_at}
    if isinstance(p, m.MessageDelivered):
        return m.DeliveryState.DELIVERED, {"delivered_at": event.occurred_at}
    if isinstance(p, m.BounceDetected):
        return m.DeliveryState.BOUNCED, {
            "bounce_class": p.bounce_class,
            "smtp_status": p.smtp_status,
            "diagnostic": p.diagnostic,
        }
    if isinstance(p, m.DeliveryFailed):
        return m.DeliveryState.FAILED, {"smtp_status": p.smtp_status, "diagnostic": p.reason}
    if isinstance(p, m.CustomerMarkedSpam):
        return m.DeliveryState.COMPLAINED, {}
    return None


def _apply_status(
    current: m.DeliveryStatus | None, event: m.ConversationEvent
) -> m.DeliveryStatus | None:
    """The recipient's new status, or None when this event changes nothing."""
    found = _status_of(event)
    if found is None:
        return None
    state, details = found
    p = event.payload
    recipient: str = getattr(p, "recipient", "")
    provider: str = getattr(p, "provider", "")
    sent_at = details.get("sent_at")
    delivered_at = details.get("delivered_at")
    assert sent_at is None or isinstance(sent_at, datetime)
    assert delivered_at is None or isinstance(delivered_at, datetime)
    if current is None:
        return m.DeliveryStatus(
            message_id=getattr(p, "message_id", ""),
            conversation_id=event.conversation_id,
            account_id=event.account_id,
            recipient=recipient,
            state=state,
            provider=provider,
            bounce_class=details.get("bounce_class"),  # type: ignore[arg-type]
            smtp_status=details.get("smtp_status"),  # type: ignore[arg-type]
            diagnostic=details.get("diagnostic"),  # type: ignore[arg-type]
            sent_at=sent_at,
            delivered_at=delivered_at,
            updated_at=event.occurred_at,
            last_event_id=event.event_id,
        )
    times = replace(
        current,
        sent_at=_earliest(current.sent_at, sent_at),
        delivered_at=_earliest(current.delivered_at, delivered_at),
    )
    newer = (_RANK[state], event.occurred_at, event.event_id) > (
        _RANK[current.state],
        current.updated_at,
        current.last_event_id,
    )
    if newer:
        updated = replace(
            times,
            state=state,
            provider=provider,
            bounce_class=details.get("bounce_class"),
            smtp_status=details.get("smtp_status"),
            diagnostic=details.get("diagnostic"),
            updated_at=event.occurred_at,
            last_event_id=event.event_id,
        )
    else:
        updated = times
    return updated if updated != current else None


def _apply_view(
    track: Track, viewer: Viewer | None, event: m.ConversationEvent, rule: ScannerRule
) -> Viewer | None:
    view = event.payload
    assert isinstance(view, m.MessageViewed)
    at = event.occurred_at
    moment = f"{int(at.timestamp() * 1000)}:{view.source.value}"
    if viewer is not None and (event.event_id in viewer.seen or moment in viewer.seen):
        return None  # a duplicate: folded
    receipt = (
        viewer.receipt
        if viewer is not None
        else m.ReadReceipt(
            message_id=view.message_id,
            conversation_id=event.conversation_id,
            account_id=event.account_id,
            viewer_kind=view.viewer_kind,
            viewer_id=view.viewer_id,
            view_count=0,
            last_event_id=event.event_id,
        )
    )
    reference = track.delivered_at or track.sent_at
    if rule.is_automated(view, at, reference):
        receipt = replace(
            receipt,
            automated_view_count=receipt.automated_view_count + 1,
            last_event_id=event.event_id,
        )
    else:
        receipt = replace(
            receipt,
            first_viewed_at=_earliest(receipt.first_viewed_at, at),
            last_viewed_at=max(receipt.last_viewed_at or at, at),
            view_count=receipt.view_count + 1,
            last_event_id=event.event_id,
        )
    seen = (*(viewer.seen if viewer is not None else ()), event.event_id, moment)[-SEEN_CAP:]
    return Viewer(receipt=receipt, seen=seen)


def _viewer_key(kind: m.ViewerKind, viewer_id: str) -> tuple[m.ViewerKind, str]:
    return kind, viewer_id


def track(
    previous: Track | None, event: m.ConversationEvent, rule: ScannerRule
) -> tuple[Track, Changes]:
    """Apply one tracked event to its message's track."""
    message_id = message_id_of(event)
    if message_id is None:
        raise ValueError(f"{event.type.value} is not a message event this processor tracks")
    current = previous or Track(
        message_id=message_id,
        conversation_id=event.conversation_id,
        account_id=event.account_id,
    )
    p = event.payload
    if isinstance(p, m.MessageAdded):
        if p.direction is m.MessageDirection.OUTBOUND:
            current = replace(current, sent_at=_earliest(current.sent_at, event.occurred_at))
        return current, Changes()
    if isinstance(p, m.MessageViewed):
        viewers = {
            _viewer_key(v.receipt.viewer_kind, v.receipt.viewer_id): v for v in current.viewers
        }
        key = _viewer_key(p.viewer_kind, p.viewer_id)
        updated = _apply_view(current, viewers.get(key), event, rule)
        if updated is None:
            return current, Changes()
        viewers[key] = updated
        return replace(current, viewers=tuple(viewers.values())), Changes(
            receipts=(updated.receipt,)
        )
    statuses = {s.recipient: s for s in current.statuses}
    recipient: str = getattr(p, "recipient", "")
    status = _apply_status(statuses.get(recipient), event)
    if isinstance(p, m.MessageSent):
        current = replace(current, sent_at=_earliest(current.sent_at, event.occurred_at))
    if isinstance(p, m.MessageDelivered):
        current = replace(current, delivered_at=_earliest(current.delivered_at, event.occurred_at))
    if status is None:
        return current, Changes()
    statuses[recipient] = status
    return replace(current, statuses=tuple(statuses.values())), Changes(statuses=(status,))
