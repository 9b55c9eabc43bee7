"""The class and kind of a bounce: HARD, SOFT, POLICY or UNKNOWN; BOUNCED, DEFERRED
or DELIVERED, from a recipient's Action, Status and diagnostic text.

Split out of dsn.py (which finds who bounced) so the rules live in one place.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import re

from processors.delivery.notification import NotificationKind
from processors.delivery.providers.status import classify
from schemas.model import BounceClass

# Diagnostics are free text from a remote server; keep what a person needs to read.
MAX_DIAGNOSTIC = 1000

# RFC 3463 enhanced status code. Unlike status.ENHANCED_STATUS it may end a sentence
# ('... (#5.1.1).') but not be followed by another number (an IP address's next
# octet), and it must not follow a letter or a dot, because here it is searched for
# in free report text.
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
# A failure reply code as a server writes it: '550 ...', '550-...', 'said: 450'. Not
# after a digit, dot, colon, slash, '#' or '-' (IP octets, times, paths, ids); 2xx
# is left out so a transcript's '250 OK' does not stand in for the refusal after it.
_REPLY_CODE = re.compile(r"(?<![\w.:/#-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)
# The diagnostic-type of a Diagnostic-Code ('smtp; ', 'X-Postfix; ', 'X-Notes; ').
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[A-Za-z][\w.-]*\s*;\s*")
_WHITESPACE = re.compile(r"\s+")

# A full mailbox is transient whatever the server called it (see status.py); old
# servers say so only in words, or behind a generic x.0.0 code.
_MAILBOX_FULL = re.compile(
    r"quota|mailbox (?:is )?full|mail ?folder is full|mailbox.{0,20}(?:exceed|full)|"
    r"insufficient (?:system )?storage|storage (?:allocation|limit)|out of (?:disk )?space",
    re.IGNORECASE,
)


def action_kind(action: str | None, status: str | None) -> NotificationKind | None:
    word = (action or "").strip().lower()
    # Some servers comment the action ('delayed (will retry)'); opensmtpd says 'error'.
    if word.startswith(("fail", "error")):
        return NotificationKind.BOUNCED
    if word.startswith("delay"):
        return NotificationKind.DEFERRED
    if word.startswith(("deliver", "relay", "expand")):
        return NotificationKind.DELIVERED
    # No (known) action: the status class is the next best thing.
    if status is not None:
        return {
            "5": NotificationKind.BOUNCED,
            "4": NotificationKind.DEFERRED,
            "2": NotificationKind.DELIVERED,
        }[status[0]]
    return None


def dsn_class(
    kind: NotificationKind, status: str | None, code: int | None, diagnostic: str | None
) -> BounceClass | None:
    if kind is NotificationKind.DELIVERED:
        return None
    if kind is NotificationKind.DEFERRED:
        return BounceClass.SOFT
    return classify_bounce(status, code, diagnostic)


def classify_bounce(status: str | None, code: int | None, text: str | None) -> BounceClass:
    if (status is None or status.endswith(".0.0")) and text and _MAILBOX_FULL.search(text):
        return BounceClass.SOFT
    return classify(status, code, text)


def block_status(field: str | None, diagnostic: str | None) -> str | None:
    """The enhanced status of a recipient block, e.g. '5.1.1'."""
    status = find_status(field)
    detailed = find_status(diagnostic)
    if status is None:
        return detailed
    # Many relays report a generic x.0.0 and pass the remote server's precise code in
    # the diagnostic ('Status: 5.0.0' over '550 5.7.1 ... blocked'); the precise one
    # is what classification needs, as long as it is the same class of outcome.
    if (
        status.endswith(".0.0")
        and detailed is not None
        and detailed[0] == status[0]
        and not detailed.endswith(".0.0")
    ):
        return detailed
    return status


def find_status(text: str | None) -> str | None:
    """The first RFC 3463 enhanced status code in a text, normalized ('5.01.001' and
    '#5.1.1' both give '5.1.1')."""
    if not text:
        return None
    match = _ENHANCED.search(text)
    if match is None:
        return None
    return ".".join(str(int(part)) for part in match.groups())


def reply_code(text: str | None) -> int | None:
    if not text:
        return None
    match = _REPLY_CODE.search(text)
    return int(match.group(1)) if match else None


def diagnostic_code(value: str | None) -> str | None:
    """Diagnostic-Code text without its type, on one line."""
    if not value:
        return None
    text = collapse(_DIAGNOSTIC_TYPE.sub("", value, count=1))
    # A multi-line SMTP reply repeats its code on every line ('550-5.1.1 ... 550-5.1.1
    # ... 550 5.1.1 ...'); that is framing, not text, after the first line.
    lead = re.match(r"([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\s)?", text)
    if lead:
        repeat = re.escape(lead.group(1)) + r"[ -]"
        if lead.group(2):
            repeat += r"(?:" + re.escape(lead.group(2)) + r"\s+)?"
        head, tail = text[: lead.end()], text[lead.end() :]
        text = head + re.sub(r"(?<=\s)" + repeat, "", tail)
    return clip(text)


def collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def clip(text: str) -> str | None:
    text = collapse(text)
    if not text:
        return None
    return text if len(text) <= MAX_DIAGNOSTIC else text[: MAX_DIAGNOSTIC - 1] + "\u2026"
