"""Feedback reports: a recipient complained about, or opted out of, a message.

- ARF (RFC 5965): a multipart/report; report-type=feedback-report whose
  message/feedback-report part names the complaint (Feedback-Type: abuse, fraud,
  virus, other, opt-out, auth-failure...) and usually who received the message
  (Original-Rcpt-To, one per recipient; Removal-Recipient in opt-out reports). Many
  feedback loops redact it; then the returned original's To/Cc name the complainer
  when they name exactly one address (never a guess among several), else the
  complaint names no recipient ('') and the message's route decides: its only
  recipient (facts.to_fact), or a dead letter when it had several.
- An unsubscribe request a mail client sends on its own (a List-Unsubscribe mailto,
  RFC 2369/8058): Apple Mail marks it `X-Apple-Unsubscribe: true`; others send
  'unsubscribe' as an automatically submitted message (RFC 3834 Auto-Submitted).
  The sender is the recipient who opted out.

Both become COMPLAINED: the recipient does not want this mail, and the suppression
list is how that is honoured. A 'not-spam' report says the opposite (the message was
wrongly filed as spam), and an 'auth-failure' report (RFC 6591) is about the sender's
SPF/DKIM/DMARC, not the recipient: both are understood and ignored.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from processors.delivery.notification import NotificationIgnored, NotificationKind
from processors.delivery.providers.mailparts import (
    FEEDBACK_TYPE,
    Outcome,
    addresses_in,
    all_headers,
    decoded,
    header,
    parts,
    returned_originals,
)

_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\b", re.IGNORECASE)


def is_feedback(msg: Message) -> bool:
    """An ARF report or an automatic unsubscribe request."""
    return _feedback_part(msg) is not None or _is_unsubscribe(msg)


def complaints(msg: Message) -> list[Outcome]:
    """The COMPLAINED outcomes of a feedback email ([] for an unsubscribe without a
    sender); an ARF report that names nobody gives one with recipient ''.

    Raises NotificationIgnored for a 'not-spam' report."""
    part = _feedback_part(msg)
    if part is None:
        if not _is_unsubscribe(msg):
            return []
        return _complained(addresses_in(header(msg, "From"))[:1], "opt-out")
    fields = _fields(part)
    feedback_type = (header(fields, "Feedback-Type") or "abuse").strip().lower()
    if feedback_type == "not-spam":
        raise NotificationIgnored("not-spam", "feedback report says the message is not spam")
    if feedback_type == "auth-failure":
        # RFC 6591: the receiving domain reports that the message failed SPF, DKIM or
        # DMARC. That is about our sending set-up, not a recipient's wish: suppressing
        # the recipient would punish the customer for it.
        raise NotificationIgnored(
            "auth-failure-report", "feedback report is about authentication, not a complaint"
        )
    recipients = [
        found
        for name in ("Original-Rcpt-To", "Removal-Recipient")
        for value in all_headers(fields, name)
        for found in addresses_in(value)
    ]
    if not recipients:
        addressed = [
            found
            for original in returned_originals(msg)
            for name in ("To", "Cc")
            for value in all_headers(original, name)
            for found in addresses_in(value)
        ]
        # Still none (or several): a complaint about the message whose recipient the
        # report does not say; '' lets the route's recipients decide (facts.to_fact).
        recipients = addressed if len(set(addressed)) == 1 else [""]
    return _complained(recipients, feedback_type)


def _complained(recipients: list[str], feedback_type: str) -> list[Outcome]:
    return [
        Outcome(recipient=recipient, kind=NotificationKind.COMPLAINED, diagnostic=feedback_type)
        for recipient in dict.fromkeys(recipients)
    ]


def _feedback_part(msg: Message) -> Message | None:
    return next((p for p in parts(msg) if p.get_content_type() == FEEDBACK_TYPE), None)


def _fields(part: Message) -> Message:
    """The feedback-report fields as one header block."""
    payload = part.get_payload()
    # The email package parses a message/* part it does not know as a message: the
    # fields become the headers of its first (only) sub-message.
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return HeaderParser().parsestr(decoded(part).lstrip())


def _is_unsubscribe(msg: Message) -> bool:
    if (header(msg, "X-Apple-Unsubscribe") or "").strip().lower() == "true":
        return True
    automatic = (header(msg, "Auto-Submitted") or "no").strip().lower() != "no"
    return automatic and bool(_UNSUBSCRIBE_SUBJECT.match(header(msg, "Subject") or ""))
