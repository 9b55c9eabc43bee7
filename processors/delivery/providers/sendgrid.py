"""SendGrid Event Webhook.

SendGrid POSTs a JSON array of events, possibly about many messages; `split` cuts it
into one unit per event so that one bad or unsupported event does not take the rest
of the batch down with it. Custom arguments set at send time appear as top-level keys
of every event of the message.
See https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event

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
from processors.delivery.providers.fields import epoch_time, load_json, text, unique
from processors.delivery.providers.status import BASIC_CODE, classify, find_enhanced_status
from schemas.model import BounceClass

PROVIDER = "sendgrid"

_KINDS: dict[str, NotificationKind] = {
    "processed": NotificationKind.SENT,
    "delivered": NotificationKind.DELIVERED,
    "bounce": NotificationKind.BOUNCED,
    "dropped": NotificationKind.FAILED,
    "deferred": NotificationKind.DEFERRED,
    "spamreport": NotificationKind.COMPLAINED,
}

# SendGrid's own bounce classification, lower-cased. "Unclassified" is deliberately
# absent: SendGrid could not tell, so the event's type and codes decide instead.
_CLASSIFICATIONS: dict[str, BounceClass] = {
    "invalid address": BounceClass.HARD,
    "mailbox unavailable": BounceClass.HARD,
    "content": BounceClass.POLICY,
    "reputation": BounceClass.POLICY,
    # TLS, DNS, connection or receiving-server configuration trouble: nothing wrong
    # with the address nor the message, so a later attempt may well succeed.
    "technical": BounceClass.SOFT,
    # The receiver throttled the sender: transient by nature.
    "frequency or volume too high": BounceClass.SOFT,
}


def split(body: bytes) -> list[bytes]:
    """One unit per event of the posted array, re-serialized as compact JSON."""
    document = _load(body)
    events = document if isinstance(document, list) else [document]
    return [
        json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() for event in events
    ]


def parse(unit: bytes) -> list[Notification]:
    """The notification of one event (or, for convenience, of each event of an array:
    then the first event that cannot be parsed fails the whole array)."""
    document = _load(unit)
    if isinstance(document, list):
        return [_parse_event(event) for event in document]
    return [_parse_event(document)]


def _parse_event(event: object) -> Notification:
    if not isinstance(event, dict):
        raise NotificationError("unparseable", "sendgrid event is not a JSON object")
    event_type = _text(event, "event")
    if event_type is None:
        raise NotificationError("no-type", "sendgrid event has no 'event' field")
    kind = _KINDS.get(event_type)
    if kind is None:
        # open, click, unsubscribe, group_unsubscribe, group_resubscribe,
        # account_status_change: engagement or account facts, not delivery.
        raise NotificationError(
            "unsupported-type", f"sendgrid event type {event_type!r} is not a delivery fact"
        )
    address = normalize_address(_text(event, "email") or "")
    if not address:
        raise NotificationError("no-recipient", "sendgrid event has no 'email' field")

    provider_message_id = _provider_message_id(_text(event, "sg_message_id"))
    smtp_id = _text(event, "smtp-id")
    refs = unique(
        [
            _text(event, MESSAGE_ID_ARG),
            normalize_message_id(smtp_id) if smtp_id else None,
            provider_message_id,
        ]
    )
    if not refs:
        raise NotificationError("no-message-ref", "sendgrid event has no 'sg_message_id' field")

    status, reason, response = (_text(event, key) for key in ("status", "reason", "response"))
    smtp_status = (
        find_enhanced_status(status)
        or find_enhanced_status(reason)
        or find_enhanced_status(response)
    )
    bounce_class: BounceClass | None = None
    if kind is NotificationKind.BOUNCED:
        bounce_class = _bounce_class(event, smtp_status, reason)
    elif kind is NotificationKind.DEFERRED:
        bounce_class = BounceClass.SOFT  # SendGrid keeps retrying (for up to 72 hours)

    return Notification(
        provider=PROVIDER,
        kind=kind,
        recipient=address,
        message_refs=refs,
        occurred_at=_time(event.get("timestamp")),
        provider_event_id=_text(event, "sg_event_id"),
        provider_message_id=provider_message_id,
        bounce_class=bounce_class,
        smtp_status=smtp_status,
        # reason: bounce and dropped; response: delivered and deferred.
        diagnostic=reason or response,
        account_id=_text(event, ACCOUNT_ID_ARG),
    )


def _provider_message_id(sg_message_id: str | None) -> str | None:
    """The id SendGrid returned at send time (X-Message-Id) from an sg_message_id.

    Events carry that id with a routing suffix appended by the server that handled
    them ('<id>.filterdrecv-...', '<id>.recvd-...'), which differs between events of
    the same message; the part before the first '.' is the stable id. (Ids of the
    legacy format, like the documentation's '14c5d75ce93.dfd.64b469', predate this and
    lose their tail too: the smtp-id ref still names those messages.)
    """
    if not sg_message_id:
        return None
    return sg_message_id.split(".", 1)[0] or None


def _bounce_class(
    event: Mapping[str, object], smtp_status: str | None, reason: str | None
) -> BounceClass:
    match = BASIC_CODE.search(reason) if reason else None
    derived = classify(smtp_status, int(match.group(1)) if match else None, reason)
    classification = (_text(event, "bounce_classification") or "").lower()
    if classification == "mailbox unavailable" and derived is BounceClass.SOFT:
        # SendGrid puts full mailboxes (x.2.2) in this class too; those are transient.
        return BounceClass.SOFT
    if classification in _CLASSIFICATIONS:
        return _CLASSIFICATIONS[classification]
    if _text(event, "type") == "blocked":
        # A block is the receiver refusing the sender or the content (blocklist, spam
        # filter), not the address; only a temporary code makes it a soft bounce.
        return BounceClass.SOFT if derived is BounceClass.SOFT else BounceClass.POLICY
    # type "bounce": a refusal of the recipient, permanent unless the codes say otherwise.
    return BounceClass.HARD if derived is BounceClass.UNKNOWN else derived


def _time(value: object) -> datetime | None:
    """`timestamp` is the unix time in seconds."""
    return epoch_time(value, "sendgrid event field 'timestamp'")


def _load(body: bytes) -> object:
    return load_json(body, "sendgrid webhook body")


def _text(container: Mapping[str, object], key: str) -> str | None:
    # custom args are strings, but be lenient with numbers
    return text(container, key, numbers=True)
