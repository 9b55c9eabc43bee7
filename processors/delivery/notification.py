"""The normalized delivery notification every provider parser produces.

A provider's webhook body (or a raw bounce email) says something about one outbound
message and one or more recipients. Each parser in `providers/` turns one *unit*
(one message's notification; see `split`) into a list of `Notification`, one per
recipient and fact. Everything downstream (routing to the conversation, soft-bounce
escalation, suppression, the delivery events) works on this shape only.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from schemas.model import BounceClass

# The custom argument / metadata / header under which the platform stamps its own
# message id on an outbound email (SendGrid custom_args, Mailgun user-variables,
# Postmark Metadata, SES message tags or an X-header). When present it is the most
# reliable way back to the message, so parsers put it first in `message_refs`.
MESSAGE_ID_ARG = "convotrail_message_id"
MESSAGE_ID_HEADER = "X-Convotrail-Message-Id"
# The account that sent the message, stamped the same way. Message ids are unique per
# account only, so a ref two accounts use can be routed only by this; without it such
# a notification is dead-lettered (`ambiguous-route`), never guessed.
ACCOUNT_ID_ARG = "convotrail_account_id"
ACCOUNT_ID_HEADER = "X-Convotrail-Account-Id"


class NotificationKind(StrEnum):
    SENT = "SENT"  # the provider accepted the message for delivery
    DELIVERED = "DELIVERED"  # the receiving server accepted it
    BOUNCED = "BOUNCED"  # the receiving side refused it (hard, soft, policy, unknown)
    DEFERRED = "DEFERRED"  # temporary failure, the provider keeps trying (a soft bounce)
    FAILED = "FAILED"  # the provider did not attempt or gave up (dropped, suppressed)
    COMPLAINED = "COMPLAINED"  # the recipient marked it as spam


class NotificationError(ValueError):
    """A body that cannot be understood. `reason` is a short machine-readable slug
    (e.g. 'unparseable', 'unsupported-type', 'no-recipient'); the message says what
    was wrong, naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotificationIgnored(NotificationError):
    """A body that was understood and says nothing about delivery: an auto-reply
    (RFC 3834: vacation, out of office) or a feedback report that the message is not
    spam. Nothing is wrong with it, so the bounce worker counts it (outcome
    `ignored`) and drops it: no dead letter. Reasons: 'auto-reply', 'not-spam',
    'auth-failure-report' (RFC 6591: about the sender's SPF/DKIM/DMARC)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    provider: str  # 'ses' | 'sendgrid' | 'mailgun' | 'postmark' | 'dsn'
    kind: NotificationKind
    # The address, lower-cased, without display name or <>; '' only for a complaint
    # whose feedback report redacted it (facts.to_fact takes the message's only
    # recipient then).
    recipient: str
    # Ids that may name the outbound message, best first: MESSAGE_ID_ARG when the
    # platform stamped it, then the RFC 5322 Message-ID (without <>), then the
    # provider's own message id. Empty when the notification names no message (a
    # bounce email without the original's Message-ID): it is then routed by its
    # recipient (processors/delivery/by_recipient.py), never by the bounce's own id.
    message_refs: tuple[str, ...]
    occurred_at: datetime | None  # when the provider says it happened (UTC, aware)
    # The provider's id for this notification (sg_event_id, Mailgun event id, SNS
    # MessageId, Postmark ID...), used for idempotent event ids; None if it has none.
    provider_event_id: str | None = None
    provider_message_id: str | None = None
    bounce_class: BounceClass | None = None  # set for BOUNCED and DEFERRED
    smtp_status: str | None = None  # enhanced status code, e.g. '5.1.1'
    diagnostic: str | None = None  # the receiving server's or provider's text
    account_id: str | None = None  # ACCOUNT_ID_ARG when the platform stamped it


def normalize_message_id(value: str) -> str:
    """'<abc@example.com>' and ' abc@example.com ' name the same message."""
    return value.strip().strip("<>").strip()


def normalize_address(value: str) -> str:
    """'Jo <JO@Example.com>' -> 'jo@example.com'; 'rfc822; a@b' -> 'a@b'."""
    text = value.strip()
    if ";" in text and text.split(";", 1)[0].strip().lower() in {"rfc822", "x400", "utf-8"}:
        text = text.split(";", 1)[1].strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.rindex(">")]
    return text.strip().strip("<>").lower()
