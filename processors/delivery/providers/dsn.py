"""Raw bounce emails: RFC 3464 delivery status notifications and the rest.

A bounce arrives as a whole email (the platform's bounce mailbox or an inbound-mail
webhook hands us its bytes). Two shapes exist in the wild:

- Standard DSNs (RFC 3464): a multipart/report whose message/delivery-status part
  holds one header block per recipient (Final-Recipient, Action, Status,
  Diagnostic-Code). We read those blocks ourselves, because they carry what a
  notification needs (status, diagnostic, per-recipient action and dates).
- Everything else (old Exim, qmail, Yahoo, Exchange, Postfix before DSNs...):
  flufl.bounce's heuristic detectors name the permanent and temporary failures, and
  the status code and diagnostic come from the report text around each address.

The original message is found through the returned headers (text/rfc822-headers or
message/rfc822 part), or `Message-ID:` lines in a plain-text bounce, or, as a last
resort, the bounce's own In-Reply-To / References. The bounce's own Message-ID names
the bounce, not the original; it becomes the notification's provider_event_id.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import copy
import email
import email.policy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

import flufl.bounce

from processors.delivery.notification import (
    MESSAGE_ID_HEADER,
    Notification,
    NotificationError,
    NotificationKind,
    normalize_address,
    normalize_message_id,
)
from processors.delivery.providers.bounce_class import action_kind as _kind
from processors.delivery.providers.bounce_class import block_status as _status
from processors.delivery.providers.bounce_class import clip as _clip
from processors.delivery.providers.bounce_class import collapse as _collapse
from processors.delivery.providers.bounce_class import diagnostic_code as _diagnostic_code
from processors.delivery.providers.bounce_class import (
    find_status,
    is_warning,
    outcome_class,
    report_prose,
)
from processors.delivery.providers.bounce_class import reply_code as _reply_code
from processors.delivery.providers.bounce_stage import refusal_stage
from schemas.model import BounceClass

PROVIDER = "dsn"

_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# Parts that carry the returned original (whole, or its headers only).
_RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)

_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_ANGLE_IDS = re.compile(r"<([^<>\s]+)>")
# `Message-ID:` / stamp lines in report text (a plain-text bounce quoting the
# original), possibly indented or quoted, the value possibly folded onto the next line.
_ID_LINE = re.compile(
    r"^[ \t>]*(message-id|" + re.escape(MESSAGE_ID_HEADER) + r")[ \t]*:[ \t]*"
    r"(?:\r?\n[ \t]+)?<?([^\s<>]+)>?",
    re.IGNORECASE | re.MULTILINE,
)
# Where a plain-text bounce starts quoting the returned message: below it, the
# recipient's address shows up again in To:/Received: lines that say nothing about
# the failure.
_RETURNED_MARKER = re.compile(
    r"^[ \t]*(?:[-=*_|]{2,}[ \t]*)?(?:"
    r"below this line is a copy of the message|this is a copy of the message|"
    r"original message|returned message|unsent message|undelivered message|"
    r"header of the source mail|rejected message|the header of the original message|"
    r"message headers? follows?|message text follows"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
# Header lines of a quoted original: an address there is not a failure report.
_HEADERISH = re.compile(
    r"^\s*(?:to|cc|bcc|from|sender|reply-to|delivered-to|x-original-to|envelope-to|"
    r"return-path|received|for|by|x-failed-recipients)\s*:|^\s*(?:for|by)\s",
    re.IGNORECASE,
)
# A line that opens another recipient's paragraph ('<b@x>:', '  b@x', 'b@x: host...').
_LEADING_ADDRESS = re.compile(r"^\s*<?([^\s@<>]+@[^\s@<>:]+)>?")
_HTML_BLOCK = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_BREAK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")
# Signs that an email is a bounce even when nothing in it names a recipient.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|fail|notification|problem|report)|returned mail|"
    r"failure notice|mail (?:error|system error|delivery failed)|could not be delivered|"
    r"non.?delivery|delivery has failed|nondeliverable|returned to sender",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a bounce email says about one recipient of the original message."""

    recipient: str  # normalized address
    kind: NotificationKind  # BOUNCED, DEFERRED or DELIVERED
    bounce_class: BounceClass | None = None  # set for BOUNCED and DEFERRED
    smtp_status: str | None = None  # enhanced status code, e.g. '5.1.1'
    diagnostic: str | None = None
    attempted_at: datetime | None = None  # the DSN's Last-Attempt-Date
    arrived_at: datetime | None = None  # the DSN's Arrival-Date (of the original)


# -- the provider contract ----------------------------------------------------------


def split(body: bytes) -> list[bytes]:
    """A bounce email is one unit."""
    return [body]


def parse(unit: bytes) -> list[Notification]:
    """The notifications of one bounce email, one per recipient and outcome.

    Raises NotificationError: 'not-a-bounce' (an auto-reply, a person's reply...),
    'no-recipient' (a bounce that names nobody), 'unknown-message' (no Message-ID of
    the original anywhere), 'unparseable' (anything else that went wrong reading it).
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
    outcomes = read_bounce(msg)
    refs = message_refs(msg)
    if not refs:
        raise NotificationError("unknown-message", "bounce email names no original Message-ID")
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


# -- recipients and outcomes ----------------------------------------------------------


def read_bounce(msg: Message) -> list[Outcome]:
    """The per-recipient outcomes of a bounce email (compat32 `Message`).

    Raises NotificationError 'not-a-bounce' or 'no-recipient' when it names nobody.
    """
    root = bounce_root(msg)
    has_report = False
    outcomes: list[Outcome] = []
    for part in _parts(root):
        if part.get_content_type() in _DSN_TYPES:
            has_report = True
            outcomes.extend(_dsn_outcomes(root, part))
    if not outcomes:
        # No usable per-recipient block: a non-standard bounce, or a DSN whose
        # recipient fields are broken (Netscape's carries none at all). The detectors
        # get the whole email: they know where to look in their formats.
        outcomes = _heuristic_outcomes(msg, root)
    if not outcomes:
        if has_report or _looks_like_bounce(msg):
            raise NotificationError("no-recipient", "bounce email names no failed recipient")
        raise NotificationError("not-a-bounce", "email is not a delivery status notification")
    return _unique(outcomes)


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


def _dsn_outcomes(msg: Message, part: Message) -> list[Outcome]:
    blocks = _status_blocks(part)
    per_message = [block for block in blocks if not _has_recipient_field(block)]
    arrived_at = next(
        (d for d in (_date(header(b, "Arrival-Date")) for b in per_message) if d), None
    )
    report = _report_text(msg)
    single = sum(1 for block in blocks if _has_recipient_field(block)) == 1
    outcomes: list[Outcome] = []
    for block in blocks:
        if not _has_recipient_field(block):
            continue
        recipient = _block_recipient(block)
        if recipient is None:
            continue
        diagnostic = _diagnostic_code(header(block, "Diagnostic-Code"))
        status_field = header(block, "Status")
        status = _status(status_field, diagnostic)
        # Without an Action, the reporting server's Status says whether it gave up.
        kind = _kind(header(block, "Action"), find_status(status_field) or status)
        if kind is None:
            continue
        paragraph = _near(report, recipient)[2]
        if diagnostic is None and kind is not NotificationKind.DELIVERED:
            # No Diagnostic-Code: a Status that is not a status code is often the
            # reply itself ('553 Exceeded maximum inbound message size'); failing
            # that, the human-readable part may say why.
            if status_field and find_status(status_field) is None:
                diagnostic = _clip(status_field)
            else:
                diagnostic = paragraph
            status = _status(status_field, diagnostic)  # the remote's code may be there
        code = _reply_code(diagnostic) or _reply_code(status_field)
        outcomes.append(
            Outcome(
                recipient=recipient,
                kind=kind,
                bounce_class=outcome_class(
                    kind,
                    status,
                    code,
                    diagnostic,
                    # The report around the recipient (or the whole report, when it
                    # is about this recipient only) may say why in words.
                    context=_context(
                        paragraph, report_prose(_before_returned(report)) if single else None
                    ),
                    stage=refusal_stage(recipient, (diagnostic, paragraph), report),
                ),
                smtp_status=status,
                diagnostic=diagnostic,
                attempted_at=_date(header(block, "Last-Attempt-Date")),
                arrived_at=arrived_at,
            )
        )
    return outcomes


def _context(*texts: str | None) -> str | None:
    return "\n".join(text for text in texts if text) or None


def _heuristic_outcomes(msg: Message, root: Message) -> list[Outcome]:
    temporary, permanent = flufl.bounce.all_failures(_detectable(msg))
    report = _report_text(root)
    # A delay warning names its recipients as failures too; the report says it is
    # still trying.
    warning = is_warning(header(msg, "Subject"), report)
    single = len(temporary | permanent) == 1
    outcomes: list[Outcome] = []
    # Sorted: frozensets of bytes iterate in hash order, which varies between runs.
    found = [(raw, True) for raw in sorted(permanent)] + [(raw, False) for raw in sorted(temporary)]
    for raw, failed in found:
        recipient = _address(raw.decode("ascii", "replace"))
        if recipient is None:
            continue
        status, code, diagnostic = _near(report, recipient)
        kind = NotificationKind.BOUNCED if failed and not warning else NotificationKind.DEFERRED
        outcomes.append(
            Outcome(
                recipient=recipient,
                kind=kind,
                bounce_class=outcome_class(
                    kind,
                    status,
                    code,
                    diagnostic,
                    context=report_prose(_before_returned(report)) if single else None,
                    stage=refusal_stage(recipient, (diagnostic,), report),
                ),
                smtp_status=status,
                diagnostic=diagnostic,
            )
        )
    return outcomes


def _detectable(msg: Message) -> Message:
    """`msg`, or a copy flufl.bounce 6.0's detectors can read without crashing (which
    would abort the whole scan, every later detector included):

    - several detectors call str methods on header values, but for a value with raw
      non-ASCII bytes (an 8-bit Subject or display name, common in real bounces)
      compat32 returns an email.header.Header; the copy holds cleaned text instead;
    - the Yale detector indexes the parsed From addresses without checking there is
      one; the copy gets a null From, which reads as 'not Yale's'.
    """
    parts = list(msg.walk())
    dirty = any(_has_surrogates(value) for part in parts for _, value in part.raw_items())
    no_from = not getaddresses([header(msg, "From") or ""])
    if not dirty and not no_from:
        return msg
    clone = copy.deepcopy(msg)  # the caller's message stays as it was
    if dirty:
        for part in clone.walk():
            items = list(part.raw_items())
            for name in {name for name, _ in items}:
                del part[name]
            for name, value in items:
                part[name] = _clean(value)
    if no_from:
        del clone["From"]
        clone["From"] = "<>"
    return clone


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and any("\udc80" <= c <= "\udcff" for c in value)


def _unique(outcomes: list[Outcome]) -> list[Outcome]:
    # A recipient listed twice (two reports, or Original- and Final-Recipient blocks)
    # is one fact per kind; the first, most specific, wins.
    seen: set[tuple[str, NotificationKind]] = set()
    unique: list[Outcome] = []
    for outcome in outcomes:
        key = (outcome.recipient, outcome.kind)
        if key not in seen:
            seen.add(key)
            unique.append(outcome)
    return unique


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # The email package splits only message/delivery-status into blocks. It reads the
    # global (UTF-8) variant like a message/rfc822: one "message" whose headers are
    # the first block and whose body is the rest. Split that text ourselves.
    if isinstance(payload, list):
        text = "\n".join(_message_text(sub) for sub in payload if isinstance(sub, Message))
    else:
        text = _decoded(part)
    parser = HeaderParser(policy=email.policy.compat32)
    return [
        parser.parsestr(chunk.strip() + "\n")
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text)
        if chunk.strip()
    ]


def _message_text(msg: Message) -> str:
    head = _clean("".join(f"{name}: {value}\n" for name, value in msg.raw_items()))
    # decode=True gives the raw bytes; without it compat32 has already replaced every
    # non-ASCII byte, valid UTF-8 included.
    body = msg.get_payload(decode=True)
    return head + "\n" + (body.decode("utf-8", "replace") if isinstance(body, bytes) else "")


def _has_recipient_field(block: Message) -> bool:
    return header(block, "Final-Recipient") is not None or (
        header(block, "Original-Recipient") is not None
    )


def _block_recipient(block: Message) -> str | None:
    # Original-Recipient is the address the message was sent to (before forwarding
    # or aliasing), which is what suppression must name; Final-Recipient otherwise.
    for field in ("Original-Recipient", "Final-Recipient"):
        value = header(block, field)
        if value:
            address = _address(value)
            if address:
                return address
    return None


# -- the report text ------------------------------------------------------------------


def _near(report: str, address: str) -> tuple[str | None, int | None, str | None]:
    """(enhanced status, SMTP reply code, diagnostic) from the report paragraph that
    names `address`; Nones when the report does not mention it."""
    lines = _before_returned(report).splitlines()
    needle = address.lower()
    for index, line in enumerate(lines):
        if needle not in line.lower() or _HEADERISH.match(line):
            continue
        paragraph = [line]
        # The address alone on its line (Gmail's '    a@b' under 'Delivery to the
        # following recipient failed permanently:'): the reason is in the paragraphs
        # after it, up to the next recipient.
        alone = len(re.findall(r"\w", line.lower().replace(needle, ""))) < 3
        for following in lines[index + 1 : index + (14 if alone else 10)]:
            if not following.strip():
                # A paragraph ending in ':' announces the reason in the next one
                # ('... to a@b for the following reason:', qmail's '<a@b>:').
                if alone or paragraph[-1].rstrip().endswith(":"):
                    continue
                break
            leading = _LEADING_ADDRESS.match(following)
            if leading and leading.group(1).lower() != needle:
                break  # the next recipient's paragraph
            paragraph.append(following)
        text = _collapse(" ".join(paragraph))
        status = find_status(text)
        if status is not None and status[0] == "2":
            status = None  # a success code says nothing about a failure
        # The address alone (a qmail '<a@b>:' with nothing under it) is no diagnostic.
        rest = re.sub(re.escape(needle), "", text, flags=re.IGNORECASE)
        diagnostic = _clip(text) if len(re.findall(r"\w", rest)) >= 3 else None
        return status, _reply_code(text), diagnostic
    return None, None, None


def _before_returned(report: str) -> str:
    """The report up to where it starts quoting the returned message."""
    marker = _RETURNED_MARKER.search(report)
    return report if marker is None else report[: marker.start()]


def _report_text(msg: Message) -> str:
    """The human-readable text of a bounce: its text parts, outside the returned
    original."""
    texts: list[str] = []
    for part in _parts(msg):
        content_type = part.get_content_type()
        if part.is_multipart() or not content_type.startswith("text/"):
            continue
        if content_type == "text/rfc822-headers":
            continue
        text = _decoded(part)
        if content_type == "text/html":
            text = _html_to_text(text)
        texts.append(text)
    return "\n\n".join(texts)


def _parts(msg: Message) -> Iterator[Message]:
    """Every part of a message, not descending into the returned original (whose
    own parts are the customer's text, not the report) or the DSN's header blocks."""
    yield msg
    content_type = msg.get_content_type()
    if content_type in _RETURNED_TYPES or content_type in _DSN_TYPES:
        return
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _parts(sub)


def _decoded(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except (LookupError, ValueError):
        # Unknown or bogus charset names are common in old bounces.
        return raw.decode("utf-8", "replace")


def _html_to_text(text: str) -> str:
    text = _HTML_BLOCK.sub(" ", text)
    text = _HTML_BREAK.sub("\n", text)
    return html.unescape(_HTML_TAG.sub(" ", text))


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
            for block in _status_blocks(part):
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
    text_stamped, text_ids = _id_lines(_report_text(root), need_at=True)
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


# -- header and value helpers ---------------------------------------------------------


def header(msg: Message, name: str) -> str | None:
    """The first `name` header of `msg` as text, None if absent."""
    values = _all_headers(msg, name)
    return values[0] if values else None


def _all_headers(msg: Message, name: str) -> list[str]:
    # raw_items, not get(): for a value with non-ASCII bytes compat32's get() returns
    # a Header whose str() has already replaced every such byte, even valid UTF-8.
    wanted = name.lower()
    return [_clean(value) for key, value in msg.raw_items() if key.lower() == wanted]


def _clean(value: object) -> str:
    """Text without the surrogates the email package uses for undecodable bytes."""
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _address(value: str) -> str | None:
    """The normalized address in a recipient field, None if it is not one."""
    address = normalize_address(_clean(value))
    if not _ADDRESS.fullmatch(address) or "\ufffd" in address:
        return None
    return address


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # '-0000': UTC, origin unknown (RFC 5322 3.3)
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _looks_like_bounce(msg: Message) -> bool:
    # A null envelope sender is what every MTA uses for a bounce (RFC 5321 4.5.5).
    if (header(msg, "Return-Path") or "").strip().replace(" ", "") == "<>":
        return True
    if _BOUNCE_SENDER.search(header(msg, "From") or ""):
        return True
    return bool(_BOUNCE_SUBJECT.search(header(msg, "Subject") or ""))
