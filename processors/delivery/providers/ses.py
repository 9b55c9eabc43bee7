"""Amazon SES delivery notifications.

SES publishes to an SNS topic; an HTTPS subscription receives the SNS envelope
({"Type": "Notification", "MessageId": ..., "Message": "<SES JSON as a string>"}),
a raw-delivery subscription (or SQS/Lambda relaying it) the SES JSON itself. Both are
accepted.

Two SES formats exist and differ mostly in the name of the type field:
- notifications (identity feedback forwarding): `notificationType` Bounce, Complaint,
  Delivery;
- event publishing (configuration sets): `eventType` Send, Delivery, Bounce,
  Complaint, Reject, DeliveryDelay, Rendering Failure (and Open, Click, Subscription,
  which say nothing about delivery and are refused as unsupported).

One notification may name several recipients; each gets its own `Notification`.
See https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html and
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from processors.delivery.notification import (
    ACCOUNT_ID_ARG,
    ACCOUNT_ID_HEADER,
    MESSAGE_ID_ARG,
    MESSAGE_ID_HEADER,
    Notification,
    NotificationError,
    NotificationKind,
    normalize_address,
    normalize_message_id,
)
from processors.delivery.providers.fields import iso_time, load_object, unique
from processors.delivery.providers.fields import obj as _object
from processors.delivery.providers.fields import text as _text
from processors.delivery.providers.status import BASIC_CODE, classify, find_enhanced_status
from schemas.model import BounceClass

PROVIDER = "ses"

_KINDS: dict[str, NotificationKind] = {
    "Send": NotificationKind.SENT,
    "Delivery": NotificationKind.DELIVERED,
    "Bounce": NotificationKind.BOUNCED,
    "Complaint": NotificationKind.COMPLAINED,
    "Reject": NotificationKind.FAILED,
    # The template could not be rendered, so SES never sent the message: for the
    # conversation that is a failure exactly like a Reject.
    "Rendering Failure": NotificationKind.FAILED,
    "DeliveryDelay": NotificationKind.DEFERRED,
}

# The key of the type-specific object next to `mail`, per type.
_DETAIL_KEYS: dict[str, str] = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Rendering Failure": "failure",
    "DeliveryDelay": "deliveryDelay",
}

# Transient bounces SES attributes to the message's content rather than to the
# mailbox: the address is fine, a different message would get through.
_POLICY_SUBTYPES = frozenset({"ContentRejected", "AttachmentRejected"})


class _Recipient(NamedTuple):
    address: str
    status: str | None  # the DSN Status field, when SES had a DSN
    diagnostic: str | None  # the DSN Diagnostic-Code field


def split(body: bytes) -> list[bytes]:
    """SNS delivers one notification per request: the body is one unit."""
    return [body]


def parse(unit: bytes) -> list[Notification]:
    """The notifications of one SES notification, bare or in its SNS envelope."""
    document = load_object(unit, "ses notification body")
    sns_message_id: str | None = None
    if "Type" in document:
        document, sns_message_id = _unwrap_sns(document)

    event_type = _text(document, "notificationType") or _text(document, "eventType")
    if event_type is None:
        raise NotificationError(
            "no-type", "ses notification has no 'notificationType' or 'eventType' field"
        )
    kind = _KINDS.get(event_type)
    if kind is None:
        raise NotificationError(
            "unsupported-type", f"ses notification type {event_type!r} is not a delivery fact"
        )
    mail = _object(document, "mail")
    if mail is None:
        raise NotificationError("unparseable", "ses notification has no 'mail' object")
    refs = _message_refs(mail)
    if not refs:
        raise NotificationError("no-message-ref", "ses notification has no 'mail.messageId' field")

    detail_key = _DETAIL_KEYS[event_type]
    detail = _object(document, detail_key) or {}
    occurred_at = _time(detail, "timestamp", f"{detail_key}.timestamp") or _time(
        mail, "timestamp", "mail.timestamp"
    )
    # feedbackId names the bounce or complaint itself and survives SNS redelivery; the
    # other types have none, and the SNS MessageId is the only stable id left.
    event_id = _text(detail, "feedbackId") or sns_message_id

    notifications = []
    for recipient in _recipients(event_type, detail, detail_key, mail):
        smtp_status = find_enhanced_status(recipient.status) or find_enhanced_status(
            recipient.diagnostic
        )
        diagnostic = recipient.diagnostic or _detail_diagnostic(event_type, detail)
        notifications.append(
            Notification(
                provider=PROVIDER,
                kind=kind,
                recipient=recipient.address,
                message_refs=refs,
                occurred_at=occurred_at,
                provider_event_id=event_id,
                provider_message_id=_text(mail, "messageId"),
                bounce_class=_bounce_class(event_type, detail, smtp_status, diagnostic),
                smtp_status=smtp_status,
                diagnostic=diagnostic,
                account_id=_tag(mail, ACCOUNT_ID_ARG)
                or _headers(mail).get(ACCOUNT_ID_HEADER.lower()),
            )
        )
    return notifications


def _unwrap_sns(envelope: Mapping[str, object]) -> tuple[dict[str, object], str | None]:
    """The SES document inside an SNS envelope, and the SNS MessageId."""
    sns_type = _text(envelope, "Type")
    if sns_type != "Notification":
        # SubscriptionConfirmation / UnsubscribeConfirmation: the HTTP endpoint has to
        # answer those (visit SubscribeURL); they carry no delivery fact.
        raise NotificationError(
            "unsupported-type", f"sns message of Type {sns_type!r} is not a notification"
        )
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise NotificationError("unparseable", "sns notification has no 'Message' string")
    # SES publishes a plain-text "Successfully validated SNS topic..." message when a
    # topic is attached; it fails here as not JSON, which is what it is.
    return load_object(message.encode(), "sns 'Message' field"), _text(envelope, "MessageId")


def _recipients(
    event_type: str, detail: Mapping[str, object], detail_key: str, mail: Mapping[str, object]
) -> list[_Recipient]:
    if event_type == "Bounce":
        return _listed(detail, "bouncedRecipients", f"{detail_key}.bouncedRecipients")
    if event_type == "Complaint":
        return _listed(detail, "complainedRecipients", f"{detail_key}.complainedRecipients")
    if event_type == "DeliveryDelay":
        return _listed(detail, "delayedRecipients", f"{detail_key}.delayedRecipients")
    if event_type == "Delivery":
        return _listed(detail, "recipients", f"{detail_key}.recipients")
    # Send, Reject, Rendering Failure concern the whole message: every destination.
    return _listed(mail, "destination", "mail.destination")


def _listed(container: Mapping[str, object], key: str, path: str) -> list[_Recipient]:
    """Recipients from a list of addresses or of {emailAddress, status, diagnosticCode}."""
    entries = container.get(key)
    if not isinstance(entries, list) or not entries:
        raise NotificationError("no-recipient", f"ses notification has no '{path}' field")
    recipients = []
    for entry in entries:
        if isinstance(entry, str):
            address, status, diagnostic = entry, None, None
        elif isinstance(entry, dict):
            address = _text(entry, "emailAddress") or ""
            status, diagnostic = _text(entry, "status"), _text(entry, "diagnosticCode")
        else:
            address, status, diagnostic = "", None, None
        normalized = normalize_address(address)
        if not normalized:
            raise NotificationError(
                "no-recipient", f"ses notification has a '{path}' entry without 'emailAddress'"
            )
        recipients.append(_Recipient(normalized, status, diagnostic))
    return recipients


def _bounce_class(
    event_type: str, detail: Mapping[str, object], smtp_status: str | None, diagnostic: str | None
) -> BounceClass | None:
    if event_type == "DeliveryDelay":
        return BounceClass.SOFT  # SES is still retrying: transient by definition
    if event_type != "Bounce":
        return None
    bounce_type = _text(detail, "bounceType")
    if bounce_type == "Permanent":
        return BounceClass.HARD
    if bounce_type == "Transient":
        if _text(detail, "bounceSubType") in _POLICY_SUBTYPES:
            return BounceClass.POLICY
        return BounceClass.SOFT
    if bounce_type == "Undetermined":
        return BounceClass.UNKNOWN
    # A bounce type SES has not documented: fall back to what the receiver said.
    return classify(smtp_status, _basic_code(diagnostic), diagnostic)


def _detail_diagnostic(event_type: str, detail: Mapping[str, object]) -> str | None:
    """The provider's text for the whole notification, when no recipient has one."""
    if event_type == "Delivery":
        return _text(detail, "smtpResponse")
    if event_type == "Complaint":
        return _text(detail, "complaintFeedbackType")
    if event_type == "Reject":
        return _text(detail, "reason")
    if event_type == "Rendering Failure":
        return _text(detail, "errorMessage")
    if event_type == "DeliveryDelay":
        return _text(detail, "delayType")
    return None


def _message_refs(mail: Mapping[str, object]) -> tuple[str, ...]:
    """MESSAGE_ID_ARG (tag or X-header), then the original Message-ID, then SES's id."""
    headers = _headers(mail)
    stamped = _tag(mail, MESSAGE_ID_ARG) or headers.get(MESSAGE_ID_HEADER.lower())
    common = _object(mail, "commonHeaders") or {}
    # commonHeaders and headers hold the headers of the message as it was submitted,
    # so this Message-ID is the one the platform chose, not the one SES rewrote.
    rfc_id = _text(common, "messageId") or headers.get("message-id")
    return unique(
        [
            stamped.strip() if stamped else None,
            normalize_message_id(rfc_id) if rfc_id else None,
            _text(mail, "messageId"),
        ]
    )


def _headers(mail: Mapping[str, object]) -> dict[str, str]:
    """mail.headers ([{name, value}]) by lower-cased name, first occurrence."""
    found: dict[str, str] = {}
    entries = mail.get("headers")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            name, value = entry.get("name"), entry.get("value")
            if isinstance(name, str) and isinstance(value, str) and value.strip():
                found.setdefault(name.strip().lower(), value.strip())
    return found


def _tag(mail: Mapping[str, object], name: str) -> str | None:
    """A message tag; event publishing gives tags as {name: [values]}."""
    tags = _object(mail, "tags") or {}
    values = tags.get(name)
    if isinstance(values, str):
        values = [values]
    for value in values if isinstance(values, list) else []:
        if isinstance(value, str) and value.strip():
            return value
    return None


def _basic_code(text: str | None) -> int | None:
    match = BASIC_CODE.search(text) if text else None
    return int(match.group(1)) if match else None


def _time(container: Mapping[str, object], key: str, path: str) -> datetime | None:
    # SES writes UTC ('Z'); a timestamp without an offset is taken as UTC too.
    return iso_time(container.get(key), f"ses notification field '{path}'")
