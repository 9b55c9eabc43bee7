"""Postmark webhooks: Delivery, Bounce and SpamComplaint records.

Postmark POSTs one record per request, its kind in `RecordType`. A Bounce record's
`Type` is one of Postmark's bounce types, several of which are not delivery failures
at all (auto-replies, subscribe requests); each documented type is mapped below.
See https://postmarkapp.com/developer/webhooks/webhooks-overview and the bounce types
at https://postmarkapp.com/developer/api/bounce-api#bounce-types

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
)
from processors.delivery.providers.fields import iso_time, unique
from processors.delivery.providers.fields import text as _text
from processors.delivery.providers.status import BASIC_CODE, classify, find_enhanced_status
from schemas.model import BounceClass

PROVIDER = "postmark"

_BOUNCED = NotificationKind.BOUNCED

# Postmark bounce Type -> (kind, class). A class of None means "classify from the
# Details text" (Postmark could not tell either).
BOUNCE_TYPES: dict[str, tuple[NotificationKind, BounceClass | None]] = {
    # The address does not exist or is unusable.
    "HardBounce": (_BOUNCED, BounceClass.HARD),
    "BadEmailAddress": (_BOUNCED, BounceClass.HARD),
    "ManuallyDeactivated": (_BOUNCED, BounceClass.HARD),
    # Temporary trouble at the receiving side (delay, full mailbox, DNS): the address
    # may work later. Postmark reports these after giving up on the message, hence
    # BOUNCED rather than DEFERRED.
    "Transient": (_BOUNCED, BounceClass.SOFT),
    "SoftBounce": (_BOUNCED, BounceClass.SOFT),
    "DnsError": (_BOUNCED, BounceClass.SOFT),
    # The receiver's filters refused the sender or the content, not the address.
    "SpamNotification": (_BOUNCED, BounceClass.POLICY),
    "Blocked": (_BOUNCED, BounceClass.POLICY),
    "DMARCPolicy": (_BOUNCED, BounceClass.POLICY),
    "VirusNotification": (_BOUNCED, BounceClass.POLICY),
    # Challenge-response spam filters (Spam Arrest, MailFrontier Matador) hold the
    # message until the sender proves itself: a filter's decision about the sender.
    "ChallengeVerification": (_BOUNCED, BounceClass.POLICY),
    # Could not be classified by Postmark: let the diagnostic text decide.
    "Unknown": (_BOUNCED, None),
    "Unconfirmed": (_BOUNCED, None),
    # Postmark failed before any delivery attempt (our side): nothing was refused.
    "SMTPApiError": (NotificationKind.FAILED, None),
    "TemplateRenderingFailed": (NotificationKind.FAILED, None),
}

# Bounce types that are not delivery failures: the message arrived (an auto-reply or
# a reply asking to (un)subscribe or noting a new address), the "bounce" is a relay
# probe, or it concerns inbound mail. Reporting them as bounces would be wrong.
NOT_DELIVERY_FAILURES = frozenset(
    {"AutoResponder", "AddressChange", "Subscribe", "Unsubscribe", "OpenRelayTest", "InboundError"}
)


def split(body: bytes) -> list[bytes]:
    """Postmark posts one record per request: the body is one unit."""
    return [body]


def parse(unit: bytes) -> list[Notification]:
    """The notification of one Postmark webhook record."""
    try:
        record = json.loads(unit)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise NotificationError("unparseable", f"postmark webhook body is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise NotificationError("unparseable", "postmark webhook body is not a JSON object")

    record_type = _text(record, "RecordType")
    if record_type is None and "BouncedAt" in record and "Type" in record:
        # Bounce webhooks created before Postmark's modular webhooks carry no
        # RecordType; the bounce fields say what they are.
        record_type = "Bounce"
    if record_type is None:
        raise NotificationError("no-type", "postmark webhook has no 'RecordType' field")

    details = _text(record, "Details")
    diagnostic = details or _text(record, "Description")
    smtp_status = find_enhanced_status(details)
    bounce_class: BounceClass | None = None
    if record_type == "Delivery":
        kind = NotificationKind.DELIVERED
        occurred_at = _time(record, "DeliveredAt")
    elif record_type in {"Bounce", "SpamComplaint"}:
        occurred_at = _time(record, "BouncedAt")
        bounce_type = _text(record, "Type")
        if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
            kind = NotificationKind.COMPLAINED
        elif bounce_type in NOT_DELIVERY_FAILURES:
            raise NotificationError(
                "unsupported-type",
                f"postmark bounce Type {bounce_type!r} is not a delivery failure",
            )
        else:
            # An undocumented (newer) type is a bounce Postmark has not explained to us.
            kind, bounce_class = BOUNCE_TYPES.get(bounce_type or "", (_BOUNCED, None))
            if kind is _BOUNCED and bounce_class is None:
                match = BASIC_CODE.search(details) if details else None
                code = int(match.group(1)) if match else None
                bounce_class = classify(smtp_status, code, details)
    else:
        # Open, Click, SubscriptionChange, Inbound...
        raise NotificationError(
            "unsupported-type", f"postmark RecordType {record_type!r} is not a delivery fact"
        )

    address = normalize_address(_text(record, "Recipient") or _text(record, "Email") or "")
    if not address:
        raise NotificationError(
            "no-recipient", "postmark webhook has no 'Recipient' or 'Email' field"
        )
    provider_message_id = _text(record, "MessageID")
    metadata = record.get("Metadata")
    stamped = _text(metadata, MESSAGE_ID_ARG) if isinstance(metadata, dict) else None
    refs = unique([stamped, provider_message_id])
    account_id = _text(metadata, ACCOUNT_ID_ARG) if isinstance(metadata, dict) else None
    if not refs:
        raise NotificationError("no-message-ref", "postmark webhook has no 'MessageID' field")

    event_id = record.get("ID")  # bounce and complaint records only; a number
    return [
        Notification(
            provider=PROVIDER,
            kind=kind,
            recipient=address,
            message_refs=refs,
            occurred_at=occurred_at,
            provider_event_id=(
                str(event_id)
                if isinstance(event_id, int | str) and not isinstance(event_id, bool)
                else None
            ),
            provider_message_id=provider_message_id,
            bounce_class=bounce_class,
            account_id=account_id,
            smtp_status=smtp_status,
            diagnostic=diagnostic,
        )
    ]


def _time(record: Mapping[str, object], key: str) -> datetime | None:
    # Postmark writes 7 fractional digits and a local offset
    # ('2014-08-01T13:28:10.2735393-04:00'); fromisoformat takes both.
    return iso_time(record.get(key), f"postmark webhook field '{key}'")
