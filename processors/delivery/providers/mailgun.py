"""Mailgun webhooks (the current JSON format).

Mailgun POSTs one event per request as {"signature": {...}, "event-data": {...}}; the
event-data has the shape of an Events API item. The documentation's payload samples
show the event-data alone, so a body that is itself an event (has "event") is accepted
too. The legacy form-encoded webhooks (retired in 2023) are not supported. Checking the
signature is the HTTP endpoint's business, not the parser's.
See https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from processors.delivery.notification import (
    ACCOUNT_ID_ARG,
    MESSAGE_ID_ARG,
    Notification,
    NotificationError,
    NotificationKind,
    normalize_address,
    normalize_message_id,
)
from processors.delivery.providers.fields import epoch_time, unique
from processors.delivery.providers.fields import obj as _object
from processors.delivery.providers.fields import text as _text
from processors.delivery.providers.status import classify, find_enhanced_status
from schemas.model import BounceClass

PROVIDER = "mailgun"

# Permanent failures where Mailgun did not attempt delivery (the address is on one of
# its suppression lists) or gave up retrying ('old'): nothing was refused this time,
# so they are FAILED rather than BOUNCED, and must not feed bounce counting again.
_NOT_ATTEMPTED = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint", "old"})


def split(body: bytes) -> list[bytes]:
    """Mailgun posts one event per request: the body is one unit."""
    return [body]


def parse(unit: bytes) -> list[Notification]:
    """The notification of one Mailgun webhook event."""
    try:
        document = json.loads(unit)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise NotificationError("unparseable", f"mailgun webhook body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise NotificationError("unparseable", "mailgun webhook body is not a JSON object")
    data = document.get("event-data")
    if data is None and "event" in document:
        data = document
    if not isinstance(data, dict):
        raise NotificationError("unparseable", "mailgun webhook has no 'event-data' object")

    event = _text(data, "event")
    if event is None:
        raise NotificationError("no-type", "mailgun event-data has no 'event' field")
    status = _object(data, "delivery-status") or {}
    message = _text(status, "message")
    description = _text(status, "description")
    enhanced = (
        # Mailgun sends "" or null when it has no enhanced code; validate the shape
        # too, since classify() relies on it.
        find_enhanced_status(_text(status, "enhanced-code"))
        or find_enhanced_status(message)
        or find_enhanced_status(description)
    )
    diagnostic = message or description
    bounce_class: BounceClass | None = None

    if event == "accepted":
        kind = NotificationKind.SENT
    elif event == "delivered":
        kind = NotificationKind.DELIVERED
    elif event == "complained":
        kind = NotificationKind.COMPLAINED
    elif event == "rejected":
        # Mailgun refused the send request itself: the message never left.
        kind = NotificationKind.FAILED
        reject = _object(data, "reject") or {}
        diagnostic = _text(reject, "description") or _text(reject, "reason") or diagnostic
    elif event == "failed" and _text(data, "severity") == "temporary":
        kind, bounce_class = NotificationKind.DEFERRED, BounceClass.SOFT  # Mailgun retries
    elif event == "failed":
        # severity 'permanent'; a failed event without severity is taken as permanent
        # too, since only 'temporary' promises another attempt.
        if _text(data, "reason") in _NOT_ATTEMPTED:
            kind = NotificationKind.FAILED
        else:
            kind = NotificationKind.BOUNCED
            code = status.get("code")
            smtp_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            derived = classify(enhanced, smtp_code, diagnostic)
            # Mailgun calls it permanent: without a better clue, the address is bad.
            bounce_class = BounceClass.HARD if derived is BounceClass.UNKNOWN else derived
    else:
        # opened, clicked, unsubscribed, stored, list_member_uploaded...
        raise NotificationError(
            "unsupported-type", f"mailgun event {event!r} is not a delivery fact"
        )

    address = normalize_address(_text(data, "recipient") or "")
    if not address:
        raise NotificationError("no-recipient", "mailgun event-data has no 'recipient' field")

    headers = _object(_object(data, "message") or {}, "headers") or {}
    rfc_id = _text(headers, "message-id")
    # Mailgun's message id *is* the Message-ID header it generated (or kept).
    provider_message_id = normalize_message_id(rfc_id) if rfc_id else None
    refs = unique([_user_variable(data, MESSAGE_ID_ARG), provider_message_id])
    if not refs:
        raise NotificationError(
            "no-message-ref", "mailgun event-data has no 'message.headers.message-id' field"
        )

    return [
        Notification(
            provider=PROVIDER,
            kind=kind,
            recipient=address,
            message_refs=refs,
            occurred_at=_time(data.get("timestamp")),
            provider_event_id=_text(data, "id"),
            provider_message_id=provider_message_id,
            bounce_class=bounce_class,
            smtp_status=enhanced,
            diagnostic=diagnostic,
            account_id=_user_variable(data, ACCOUNT_ID_ARG),
        )
    ]


def _user_variable(data: Mapping[str, object], name: str) -> str | None:
    # An empty "user-variables" is sometimes serialized as [] rather than {}.
    variables = _object(data, "user-variables") or {}
    return _text(variables, name)


def _time(value: object) -> datetime | None:
    """`timestamp` is the unix time in seconds, with a fraction."""
    return epoch_time(value, "mailgun event-data field 'timestamp'")
