"""Reading a bounce email's parts, headers and text, shared by the bounce readers
(dsn.py, report.py, plaintext.py, detectors.py, feedback.py), and the `Outcome` they
all produce.

Every function takes a compat32 `email.message.Message`: real bounces carry raw
8-bit headers, broken MIME and bogus charsets, which compat32 tolerates; the helpers
here turn what it gives into clean text (no surrogates for undecodable bytes).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import email.policy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser, Parser
from email.utils import parsedate_to_datetime

from processors.delivery.notification import NotificationKind, normalize_address
from schemas.model import BounceClass

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# Parts that carry the returned original (whole, or its headers only).
RETURNED_TYPES = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
# RFC 5965: the machine-readable part of an abuse (ARF) report.
FEEDBACK_TYPE = "message/feedback-report"

_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_HTML_BLOCK = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_BREAK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")
# A MIME boundary line (RFC 2046 5.1.1: up to 70 characters, no trailing space).
_BOUNDARY_LINE = re.compile(r"^--([^\s\"]{1,70})[ \t]*\r?$", re.MULTILINE)
# A text part that opens with the header lines of a message is the returned original
# sent as a plain attachment (some servers attach 'mailheaders.txt' or forget the
# part's Content-Type): its To:/Received: lines say nothing about the failure.
_HEADER_BLOCK = re.compile(
    r"\A\s*(?:received|return-path|message-id|x-[\w-]+|from|to|date|subject|mime-version|"
    r"dkim-signature|delivered-to|content-type)[ \t]*:.*\n(?:[ \t]+.*\n)*"
    r"(?:[\w-]+[ \t]*:.*\n(?:[ \t]+.*\n)*){2}",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a bounce (or feedback) email says about one recipient of the original
    message."""

    recipient: str  # normalized address
    kind: NotificationKind  # BOUNCED, DEFERRED, DELIVERED or COMPLAINED
    bounce_class: BounceClass | None = None  # set for BOUNCED and DEFERRED
    smtp_status: str | None = None  # enhanced status code, e.g. '5.1.1'
    diagnostic: str | None = None
    attempted_at: datetime | None = None  # the DSN's Last-Attempt-Date
    arrived_at: datetime | None = None  # the DSN's Arrival-Date (of the original)


def unique(outcomes: list[Outcome]) -> list[Outcome]:
    # A recipient listed twice (two reports, or Original- and Final-Recipient blocks)
    # is one fact per kind; the first, most specific, wins.
    seen: set[tuple[str, NotificationKind]] = set()
    kept: list[Outcome] = []
    for outcome in outcomes:
        key = (outcome.recipient, outcome.kind)
        if key not in seen:
            seen.add(key)
            kept.append(outcome)
    return kept


# -- parts and text -------------------------------------------------------------------


def repair(msg: Message) -> None:
    """Mend, in place, multipart parts whose boundary the parser could not use: the
    declared boundary never occurs (a relay rewrote it: the body opens with another
    '--boundary' line, which is then used), or the parameter was lost to a broken
    fold (the part is read as its text). Otherwise their parts, the DSN included,
    would be one opaque string."""
    for part in list(msg.walk()):
        if part.get_content_maintype() != "multipart" or part.is_multipart():
            continue
        body = part.get_payload()
        if not isinstance(body, str):
            continue
        found = _BOUNDARY_LINE.search(body)
        if found is None:
            part.set_type("text/plain")
            continue
        boundary = found.group(1)
        wrapper = Parser(policy=email.policy.compat32).parsestr(
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{body}'
        )
        if wrapper.is_multipart():
            part.set_param("boundary", boundary)
            part.set_payload(wrapper.get_payload())


def parts(msg: Message) -> Iterator[Message]:
    """Every part of a message, not descending into the returned original (whose
    own parts are the customer's text, not the report) or the DSN's header blocks."""
    yield msg
    content_type = msg.get_content_type()
    if content_type in RETURNED_TYPES or content_type in DSN_TYPES:
        return
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from parts(sub)


def returned_originals(msg: Message) -> Iterator[Message]:
    """The returned original(s) as messages (their headers at least)."""
    for part in parts(msg):
        if part.get_content_type() not in RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            yield payload[0]
        elif isinstance(payload, str):
            # text/rfc822-headers: the email package leaves it as text.
            yield HeaderParser().parsestr(decoded(part).lstrip())


def decoded(part: Message) -> str:
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


def report_text(msg: Message, *, header_parts: bool = False) -> str:
    """The human-readable text of a bounce: its text parts, outside the returned
    original; with `header_parts`, also text parts that are a header block (the
    returned original's headers, to look for its Message-ID)."""
    texts: list[str] = []
    for part in parts(msg):
        content_type = part.get_content_type()
        if part.is_multipart() or not content_type.startswith("text/"):
            continue
        if content_type == "text/rfc822-headers":
            continue
        text = decoded(part).replace("\r\n", "\n")
        if content_type == "text/html":
            text = html_to_text(text)
        elif not header_parts and part is not msg and _HEADER_BLOCK.match(text):
            continue
        texts.append(text)
    return "\n\n".join(texts)


def html_to_text(text: str) -> str:
    text = _HTML_BLOCK.sub(" ", text)
    text = _HTML_BREAK.sub("\n", text)
    return html.unescape(_HTML_TAG.sub(" ", text))


# -- headers and values ---------------------------------------------------------------


def header(msg: Message, name: str) -> str | None:
    """The first `name` header of `msg` as text, None if absent."""
    values = all_headers(msg, name)
    return values[0] if values else None


def all_headers(msg: Message, name: str) -> list[str]:
    # raw_items, not get(): for a value with non-ASCII bytes compat32's get() returns
    # a Header whose str() has already replaced every such byte, even valid UTF-8.
    wanted = name.lower()
    return [clean(value) for key, value in msg.raw_items() if key.lower() == wanted]


def clean(value: object) -> str:
    """Text without the surrogates the email package uses for undecodable bytes."""
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def address(value: str) -> str | None:
    """The normalized address in a recipient field, None if it is not one."""
    found = normalize_address(clean(value))
    if not _ADDRESS.fullmatch(found) or "\ufffd" in found:
        return None
    return found


def addresses_in(value: str | None) -> list[str]:
    """Every address in a header value or a line of text, normalized."""
    found = []
    for match in _ADDRESS.finditer(clean(value or "")):
        normalized = address(match.group(0).strip(".'\"`"))
        if normalized and normalized not in found:
            found.append(normalized)
    return found


def date(value: str | None) -> datetime | None:
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
