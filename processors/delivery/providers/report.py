"""RFC 3464 per-recipient report fields: in a message/delivery-status part, or
written out inside a text part.

A standard DSN's delivery-status part holds one header block per recipient
(Final-Recipient, Action, Status, Diagnostic-Code, Last-Attempt-Date). Some servers
write the same fields into the human-readable text instead (Amazon WorkMail puts its
"Technical report" in a quoted-printable text/plain part), and a person forwarding a
bounce quotes them with '> '. Both shapes are read here, block by block.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser

from processors.delivery.notification import NotificationKind
from processors.delivery.providers import plaintext
from processors.delivery.providers.bounce_class import (
    action_kind,
    block_status,
    classified_outcome,
    clip,
    diagnostic_code,
    find_status,
    reply_code,
)
from processors.delivery.providers.mailparts import (
    Outcome,
    address,
    addresses_in,
    all_headers,
    clean,
    date,
    decoded,
    header,
    report_text,
    returned_originals,
)

_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
# A header field line, or the folded continuation of one.
_FIELD_LINE = re.compile(r"^(?:[A-Za-z][\w-]*[ \t]*:|[ \t]+\S)")
_RECIPIENT_FIELD = re.compile(r"^[ \t]*(?:final|original)-recipient[ \t]*:", re.IGNORECASE)
_ANY_RECIPIENT_FIELD = re.compile(
    r"^[ \t>]*(?:final|original)-recipient[ \t]*:", re.IGNORECASE | re.MULTILINE
)
# One level of '> ' quoting, as a mail client forwards a bounce inline.
_QUOTE = re.compile(r"^>[ \t]?", re.MULTILINE)


def dsn_outcomes(msg: Message, part: Message) -> list[Outcome]:
    """The outcomes of a message/delivery-status (or global) part of `msg`."""
    return _outcomes(msg, status_blocks(part))


def text_outcomes(msg: Message) -> list[Outcome]:
    """The outcomes of report fields written inside the text of `msg` (no
    delivery-status part): a recipient field with at least an Action, Status or
    Diagnostic-Code in the same block, so a sentence naming the field is not one."""
    text = report_text(msg)
    if not _ANY_RECIPIENT_FIELD.search(text):
        return []
    blocks = [
        block
        for candidate in (text, _QUOTE.sub("", text))
        for block in _field_blocks(candidate)
        if any(header(block, f) for f in ("Action", "Status", "Diagnostic-Code"))
    ]
    return _outcomes(msg, blocks)


def status_blocks(part: Message) -> list[Message]:
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
        text = decoded(part)
    parser = HeaderParser(policy=email.policy.compat32)
    return [
        parser.parsestr(chunk.strip() + "\n") for chunk in _BLANK_LINE.split(text) if chunk.strip()
    ]


def _field_blocks(text: str) -> list[Message]:
    """Runs of header-field lines in free text that hold a recipient field."""
    parser = HeaderParser(policy=email.policy.compat32)
    blocks: list[Message] = []
    run: list[str] = []
    for line in [*text.splitlines(), ""]:
        if _FIELD_LINE.match(line) and (run or not line[:1].isspace()):
            run.append(line)
            continue
        if any(_RECIPIENT_FIELD.match(field) for field in run):
            blocks.append(parser.parsestr("\n".join(run) + "\n"))
        run = []
    return blocks


def _outcomes(msg: Message, blocks: list[Message]) -> list[Outcome]:
    per_message = [block for block in blocks if not _has_recipient_field(block)]
    arrived_at = next(
        (d for d in (date(header(b, "Arrival-Date")) for b in per_message) if d), None
    )
    sent_to = _sent_to(msg)
    alone = sum(1 for block in blocks if _has_recipient_field(block)) == 1
    outcomes: list[Outcome] = []
    for block in blocks:
        recipient = _block_recipient(block, sent_to) if _has_recipient_field(block) else None
        if recipient is None:
            continue
        outcome = _block_outcome(msg, block, recipient, arrived_at, alone=alone)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _block_outcome(
    msg: Message, block: Message, recipient: str, arrived_at: datetime | None, *, alone: bool
) -> Outcome | None:
    diagnostic = diagnostic_code(header(block, "Diagnostic-Code"))
    status_field = header(block, "Status")
    status = block_status(status_field, diagnostic)
    # Without an Action, the reporting server's Status says whether it gave up.
    kind = action_kind(header(block, "Action"), find_status(status_field) or status)
    if kind is None:
        return None
    report = plaintext.head(report_text(msg))
    paragraph = plaintext.near(report, recipient).diagnostic
    if diagnostic is None and kind is not NotificationKind.DELIVERED:
        # No Diagnostic-Code: a Status that is not a status code is often the reply
        # itself ('553 Exceeded maximum inbound message size'); failing that, the
        # human-readable part may say why.
        if status_field and find_status(status_field) is None:
            diagnostic = clip(status_field)
        else:
            diagnostic = paragraph
        status = block_status(status_field, diagnostic)  # the remote's code may be there
    code = reply_code(diagnostic) or reply_code(status_field)
    # The report's paragraph about the recipient (or its whole prose, when it is about
    # this recipient only) may say why in words.
    return classified_outcome(
        recipient, kind, status, code, diagnostic,
        report=report, paragraph=paragraph, alone=alone,
        attempted_at=date(header(block, "Last-Attempt-Date")), arrived_at=arrived_at,
    )  # fmt: skip


def _message_text(msg: Message) -> str:
    head = clean("".join(f"{name}: {value}\n" for name, value in msg.raw_items()))
    # decode=True gives the raw bytes; without it compat32 has already replaced every
    # non-ASCII byte, valid UTF-8 included.
    body = msg.get_payload(decode=True)
    return head + "\n" + (body.decode("utf-8", "replace") if isinstance(body, bytes) else "")


def _has_recipient_field(block: Message) -> bool:
    return header(block, "Final-Recipient") is not None or (
        header(block, "Original-Recipient") is not None
    )


def _sent_to(msg: Message) -> set[str]:
    """The addresses the returned original was sent to (its To and Cc)."""
    found: set[str] = set()
    for original in returned_originals(msg):
        for name in ("To", "Cc"):
            for value in all_headers(original, name):
                found.update(addresses_in(value))
    return found


def _block_recipient(block: Message, sent_to: set[str]) -> str | None:
    """Original-Recipient is the address the message was sent to before forwarding
    or aliasing, which is what suppression must name; Final-Recipient otherwise.
    Servers fill Original-Recipient from whatever the previous hop passed (sometimes
    an internal alias), so when only the Final-Recipient is among the returned
    original's To/Cc, that one is the address the sender used."""
    original = address(header(block, "Original-Recipient") or "")
    final = address(header(block, "Final-Recipient") or "")
    if original and final and final in sent_to and original not in sent_to:
        return final
    return original or final
