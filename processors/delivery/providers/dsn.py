"""Raw bounce emails: RFC 3464 delivery status notifications and the rest.

A bounce arrives as a whole email (the platform's bounce mailbox or an inbound-mail
webhook hands us its bytes). What the email is decides how it is read:

- a standard DSN (RFC 3464): a multipart/report whose message/delivery-status part
  holds one header block per recipient (report.py);
- a plain-text bounce (DragonFly, qmail, OpenSMTPD, sendmail V5, Yahoo, Exchange
  2003, Lotus Notes...): the report fields written in its text (report.py), else
  the recipients its text names by the shapes servers share (plaintext.py), else
  flufl.bounce's per-server detectors (detectors.py);
- an abuse report (ARF, RFC 5965) or an automatic unsubscribe: COMPLAINED
  (feedback.py);
- an Amazon SES notification sent by email: read as SES's own (relayed.py);
- an auto-reply (RFC 3834: vacation, out of office): ignored, NotificationIgnored
  (autoreply.py); anything else is refused as 'not-a-bounce'.

The original message is found through the returned headers (text/rfc822-headers or
message/rfc822 part), or `Message-ID:` lines in a plain-text bounce, or, as a last
resort, the bounce's own In-Reply-To / References. The bounce's own Message-ID names
the bounce, not the original; it becomes the notification's provider_event_id.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import Message

from processors.delivery.notification import (
    MESSAGE_ID_HEADER,
    Notification,
    NotificationError,
    NotificationIgnored,
    normalize_message_id,
)
from processors.delivery.providers import (
    autoreply,
    detectors,
    feedback,
    plaintext,
    relayed,
    report,
)
from processors.delivery.providers.mailparts import DSN_TYPES as _DSN_TYPES
from processors.delivery.providers.mailparts import RETURNED_TYPES as _RETURNED_TYPES
from processors.delivery.providers.mailparts import Outcome, header, repair, unique
from processors.delivery.providers.mailparts import all_headers as _all_headers
from processors.delivery.providers.mailparts import date as _date
from processors.delivery.providers.mailparts import decoded as _decoded
from processors.delivery.providers.mailparts import parts as _parts
from processors.delivery.providers.mailparts import report_text as _report_text

__all__ = ["Outcome", "bounce_root", "header", "message_refs", "parse", "read_bounce", "split"]

PROVIDER = "dsn"

_ANGLE_IDS = re.compile(r"<([^<>\s]+)>")
# `Message-ID:` / stamp lines in report text (a plain-text bounce quoting the
# original), possibly indented or quoted, the value possibly folded onto the next line.
_ID_LINE = re.compile(
    r"^[ \t>]*(message-id|" + re.escape(MESSAGE_ID_HEADER) + r")[ \t]*:[ \t]*"
    r"(?:\r?\n[ \t]+)?<?([^\s<>]+)>?",
    re.IGNORECASE | re.MULTILINE,
)
# Signs that an email is a bounce even when nothing in it names a recipient.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|fail|notification|problem|report)|returned mail|"
    r"failure notice|mail (?:error|system error|delivery failed)|could not be delivered|"
    r"non.?delivery|delivery has failed|nondeliverable|returned to sender",
    re.IGNORECASE,
)
# Mail systems' own senders; 'post_master' and 'postmaster' are the same role.
_BOUNCE_SENDER = re.compile(r"mailer-daemon|post[_-]?master|mail delivery", re.IGNORECASE)
# A mailbox export (mbox): a 'From ' separator line with the asctime date, at the
# start of the body and after a blank line before each further email.
_MBOX_FROM = rb"From \S+ +\w{3} \w{3} +\d{1,2} \d\d:\d\d(?::\d\d)? \d{4}[^\n]*\r?\n"
_MBOX_SEPARATOR = re.compile(rb"(?<=\n)\r?\n(?=" + _MBOX_FROM + rb")")


# -- the provider contract ----------------------------------------------------------


def split(body: bytes) -> list[bytes]:
    """A bounce email is one unit; a mailbox export (mbox) of several is one unit per
    email (inside an mbox, body lines starting 'From ' are escaped as '>From ')."""
    if not re.match(_MBOX_FROM, body):
        return [body]
    return [unit for unit in _MBOX_SEPARATOR.split(body) if unit.strip()]


def parse(unit: bytes) -> list[Notification]:
    """The notifications of one bounce email, one per recipient and outcome.

    Raises NotificationIgnored ('auto-reply', 'not-spam': understood, nothing to
    report) or NotificationError: 'not-a-bounce' (a person's mail...), 'no-recipient'
    (a bounce that names nobody), 'unparseable' (anything else that went wrong reading
    it). A bounce that names no Message-ID of the original (or only its own) gives
    notifications without message_refs, routed by recipient.
    """
    try:
        return _parse(bytes(unit))
    except NotificationError:
        raise
    except Exception as exc:
        # Arbitrary bytes from the outside world: whatever the email package or a
        # detector trips on is a bad body, not a crash of the intake.
        raise NotificationError(
            "unparseable", f"bounce email could not be read ({type(exc).__name__})"
        ) from exc


def _parse(unit: bytes) -> list[Notification]:
    msg = email.message_from_bytes(unit, policy=email.policy.compat32)
    repair(msg)
    from_provider = relayed.notifications(msg)
    if from_provider is not None:
        return from_provider
    outcomes = read_bounce(msg)
    # May be empty (no returned headers, or only the bounce's own id, which
    # message_refs leaves out): the bounce processor then routes by recipient.
    refs = message_refs(msg)
    own_id = _own_message_id(msg)
    root = bounce_root(msg)
    sent_at = _date(header(root, "Date")) or _date(header(msg, "Date"))
    return [
        Notification(
            provider=PROVIDER,
            kind=outcome.kind,
            recipient=outcome.recipient,
            message_refs=refs,
            # Last-Attempt-Date is when the failure happened. Arrival-Date is when the
            # original reached the reporting server, hours or days before a delay
            # warning or a final failure, so the report's own Date comes first.
            occurred_at=outcome.attempted_at or sent_at or outcome.arrived_at,
            provider_event_id=own_id,
            provider_message_id=None,
            bounce_class=outcome.bounce_class,
            smtp_status=outcome.smtp_status,
            diagnostic=outcome.diagnostic,
        )
        for outcome in outcomes
    ]


# -- what the email is, and who it names ------------------------------------------------


def read_bounce(msg: Message, *, _depth: int = 0) -> list[Outcome]:
    """The per-recipient outcomes of a bounce or feedback email (compat32 `Message`).

    Raises NotificationIgnored for an auto-reply or a not-spam report, and
    NotificationError 'not-a-bounce' or 'no-recipient' when it names nobody.
    """
    repair(msg)
    if feedback.is_feedback(msg):
        complaints = feedback.complaints(msg)
        if not complaints:
            raise NotificationError("no-recipient", "feedback report names no recipient")
        return complaints
    root = bounce_root(msg)
    has_report = False
    outcomes: list[Outcome] = []
    for part in _parts(root):
        if part.get_content_type() in _DSN_TYPES:
            has_report = True
            outcomes.extend(report.dsn_outcomes(root, part))
    bounce_like = has_report or _looks_like_bounce(msg)
    if not outcomes and not has_report and autoreply.is_auto_reply(msg):
        # Before the text readers: 'I am away, write to jo@example.com' names no
        # failed recipient.
        raise NotificationIgnored("auto-reply", "email is an automatic reply (RFC 3834)")
    inner = plaintext.embedded_email(root) if not outcomes and bounce_like else None
    if inner is not None and _depth < 2:
        # A relay that pasted the bounce it got into its own text: that bounce, with
        # its report and returned original, says best who failed.
        try:
            outcomes = read_bounce(inner, _depth=_depth + 1)
        except NotificationError:
            outcomes = []
    if not outcomes:
        # No usable per-recipient block: a non-standard bounce, or a DSN whose
        # recipient fields are broken (Netscape's carries none at all).
        outcomes = report.text_outcomes(root)
    if not outcomes:
        outcomes = plaintext.read(msg, root) if bounce_like else []
        # The detectors get the whole email: they know where to look in their
        # formats, and may name what the shapes above do not (the alias an address
        # was expanded from, a second address in the reason).
        named = {outcome.recipient for outcome in outcomes}
        outcomes += [o for o in detectors.outcomes(msg, root) if o.recipient not in named]
    if not outcomes:
        if bounce_like:
            raise NotificationError("no-recipient", "bounce email names no failed recipient")
        raise NotificationError("not-a-bounce", "email is not a delivery status notification")
    return unique(outcomes)


def bounce_root(msg: Message, depth: int = 0) -> Message:
    """The bounce itself: `msg`, or the DSN a filter or a forward wrapped in a
    message/rfc822 part (its returned original is then the one inside it)."""
    if depth >= 3 or _has_report(msg):  # bounded: the nesting is the sender's choice
        return msg
    for part in _parts(msg):
        if part.get_content_type() not in ("message/rfc822", "message/global"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            inner = bounce_root(payload[0], depth + 1)
            if _has_report(inner):
                return inner
    return msg


def _has_report(msg: Message) -> bool:
    return any(part.get_content_type() in _DSN_TYPES for part in _parts(msg))


# -- the original message -------------------------------------------------------------


def message_refs(msg: Message) -> tuple[str, ...]:
    """Ids that may name the bounced message, best first: the platform's stamp, then
    the original's Message-ID from its returned headers (or the DSN's
    X-Original-Message-ID), then `Message-ID:` lines in the report text; only when
    none of those exists, the bounce's own In-Reply-To and References (some
    servers, Gmail and Exchange among them, thread the bounce that way)."""
    root = bounce_root(msg)
    stamped: list[str] = []
    ids: list[str] = []
    for part in _parts(root):
        if part.get_content_type() in _DSN_TYPES:
            # Gmail names the original in the per-message block.
            for block in report.status_blocks(part):
                ids.extend(_all_headers(block, "X-Original-Message-ID"))
        if part.get_content_type() not in _RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            original = payload[0]
            stamped.extend(_all_headers(original, MESSAGE_ID_HEADER))
            ids.extend(_all_headers(original, "Message-ID"))
        else:
            found_stamped, found_ids = _id_lines(_decoded(part), need_at=False)
            stamped.extend(found_stamped)
            ids.extend(found_ids)
    # Plain-text bounces quote the original inline, headers and all.
    text_stamped, text_ids = _id_lines(_report_text(root, header_parts=True), need_at=True)
    candidates = stamped + text_stamped + ids + text_ids
    if not candidates:
        for name in ("In-Reply-To", "References"):
            found = _ANGLE_IDS.findall(header(root, name) or "")
            # References runs oldest first; the nearest ancestor is the likelier one.
            candidates.extend(reversed(found) if name == "References" else found)
    own = {_own_message_id(msg), _own_message_id(root)}
    refs: list[str] = []
    for candidate in candidates:
        ref = normalize_message_id(candidate)
        if ref and ref not in own and ref not in refs and _plausible_id(ref):
            refs.append(ref)
    return tuple(refs)


def _id_lines(text: str, *, need_at: bool) -> tuple[list[str], list[str]]:
    stamped: list[str] = []
    ids: list[str] = []
    for match in _ID_LINE.finditer(text):
        name, value = match.group(1).lower(), match.group(2)
        if name == MESSAGE_ID_HEADER.lower():
            stamped.append(value)
        elif not need_at or "@" in value:
            # Free text: 'Message-ID: unknown' is not an id; real ones have an '@'.
            ids.append(value)
    return stamped, ids


def _plausible_id(ref: str) -> bool:
    return len(ref) <= 255 and not any(c.isspace() for c in ref) and "\ufffd" not in ref


def _own_message_id(msg: Message) -> str | None:
    value = header(msg, "Message-ID")
    if not value:
        return None
    return normalize_message_id(value) or None


def _looks_like_bounce(msg: Message) -> bool:
    # A null envelope sender is what every MTA uses for a bounce (RFC 5321 4.5.5).
    if (header(msg, "Return-Path") or "").strip().replace(" ", "") == "<>":
        return True
    if _BOUNCE_SENDER.search(header(msg, "From") or ""):
        return True
    return bool(_BOUNCE_SUBJECT.search(header(msg, "Subject") or ""))
