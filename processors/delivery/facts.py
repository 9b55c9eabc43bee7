"""Notifications to delivery events: the facts the bounce processor appends.

Each `Notification` of a routed message becomes one ConversationEvent of the
message's conversation. Its event_id is a function of the notification alone
(provider, the provider's notification id or a digest of the body, kind and
recipient), so a provider retrying a webhook, a worker reprocessing a batch or a
parked notification released twice all yield the same event, which the
conversation processor drops as a duplicate.

Pure: no I/O; the receipt time is passed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from processors.delivery.notification import Notification, NotificationKind
from schemas import keys
from schemas import model as m

ACTOR_ID = "convotrail-bounces"


class Unroutable(ValueError):
    """A notification whose fact the contract would refuse (e.g. no usable recipient)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:24]


def fact_id(notification: Notification, body: bytes) -> str:
    source = notification.provider_event_id or body_digest(body)
    return (
        f"{notification.provider}:{source}:{notification.kind.value.lower()}:"
        f"{notification.recipient}"
    )


def _payload(
    n: Notification, message_id: str, matched_by: m.MatchedBy
) -> tuple[m.EventType, m.Payload]:
    if n.kind is NotificationKind.SENT:
        return m.EventType.MESSAGE_SENT, m.MessageSent(
            message_id=message_id,
            recipient=n.recipient,
            provider=n.provider,
            provider_message_id=n.provider_message_id,
            matched_by=matched_by,
        )
    if n.kind is NotificationKind.DELIVERED:
        return m.EventType.MESSAGE_DELIVERED, m.MessageDelivered(
            message_id=message_id, recipient=n.recipient, provider=n.provider,
            matched_by=matched_by,
        )  # fmt: skip
    if n.kind in (NotificationKind.BOUNCED, NotificationKind.DEFERRED):
        default = (
            m.BounceClass.SOFT if n.kind is NotificationKind.DEFERRED else m.BounceClass.UNKNOWN
        )
        return m.EventType.BOUNCE_DETECTED, m.BounceDetected(
            message_id=message_id,
            recipient=n.recipient,
            provider=n.provider,
            bounce_class=n.bounce_class or default,
            smtp_status=n.smtp_status,
            diagnostic=n.diagnostic,
            matched_by=matched_by,
            # Still retrying: shown, never counted toward escalation (recipients.py).
            delayed=n.kind is NotificationKind.DEFERRED,
        )
    if n.kind is NotificationKind.FAILED:
        return m.EventType.DELIVERY_FAILED, m.DeliveryFailed(
            message_id=message_id,
            recipient=n.recipient,
            provider=n.provider,
            reason=n.diagnostic or "not delivered",
            smtp_status=n.smtp_status,
            matched_by=matched_by,
        )
    return m.EventType.CUSTOMER_MARKED_SPAM, m.CustomerMarkedSpam(
        message_id=message_id, recipient=n.recipient, provider=n.provider,
        matched_by=matched_by,
    )  # fmt: skip


def _with_recipient(notification: Notification, route: m.MessageRoute) -> Notification:
    """A complaint whose feedback report redacted the recipient (many feedback loops
    do) is about the message's only recipient; with several, it stays unresolved."""
    if notification.recipient or notification.kind is not NotificationKind.COMPLAINED:
        return notification
    recipients = set(route.recipients)
    if len(recipients) != 1:
        return notification
    return replace(notification, recipient=recipients.pop())


def to_fact(
    notification: Notification,
    route: m.MessageRoute,
    body: bytes,
    received_at: datetime,
    matched_by: m.MatchedBy = m.MatchedBy.MESSAGE_REF,
) -> m.ConversationEvent:
    """The delivery event of one notification about a routed message. Event time is the
    provider's time when it gave one, else when the intake received it; `matched_by`
    says how the route was found (RECIPIENT: the notification named no message)."""
    notification = _with_recipient(notification, route)
    if not notification.recipient:
        raise Unroutable(
            "no-recipient",
            f"the complaint names no recipient and message {route.message_id!r} had "
            f"{len(set(route.recipients))}: whose it is stays unknown",
        )
    if "@" not in notification.recipient:
        raise Unroutable(
            "no-recipient", f"recipient {notification.recipient!r} is not an email address"
        )
    event_type, payload = _payload(notification, route.message_id, matched_by)
    return m.ConversationEvent(
        event_id=fact_id(notification, body),
        conversation_id=route.conversation_id,
        account_id=route.account_id,
        type=event_type,
        occurred_at=notification.occurred_at or received_at,
        actor=m.Actor(kind=m.ActorKind.SYSTEM, id=ACTOR_ID, name=notification.provider),
        correlation_id=route.message_id,
        # The event that introduced the message: what this fact is a consequence of.
        causation_id=route.learned_from,
        payload=payload,
    )


def recipient_key(event: m.ConversationEvent) -> bytes:
    """delivery-facts key: suppression and escalation are per account and recipient."""
    return keys.recipient(event.account_id, getattr(event.payload, "recipient", ""))
