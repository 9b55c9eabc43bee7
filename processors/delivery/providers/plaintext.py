"""Plain-text bounces: who failed, in the report's own words.

Many servers send no RFC 3464 part at all (DragonFly, qmail, OpenSMTPD, sendmail V5,
Yahoo, Lotus Notes, Exchange 2003, m-FILTER, EZweb/KDDI, Zoho...). Their texts differ
in wording but share a few shapes, and each reader here recognizes one shape, not one
server:

- an address leading its line in the report: a list of failed recipients under a
  heading ('<a@b>:' then the remote host's reply: qmail, Yahoo; 'a@b: 550 ...':
  OpenSMTPD; 'a@b [User unknown]'; 'a@b on 4/29/01' then the reason: Exchange 2003;
  an address alone on its line: Lotus Notes, m-FILTER, WorkMail; '554 <a@b>... Host
  unknown' in a sendmail transcript; '<<< 550 <a@b>...' in an SMTP transcript);
- an address named by the sentence that reports the failure ('There was an error
  delivering your mail to <a@b>', 'Could not be delivered to: <a@b>', 'rejected
  recipient <a@b>', 'Recipient: <a@b>', 'Address: <a@b>', or the 'RCPT TO:<a@b>'
  of the failed SMTP session in a transcript).

`near` then gives the status, reply code and diagnostic from the paragraph that
names the address (and the paragraph after it when that one holds the reason, as
DragonFly and qmail write it), for bounce_class to classify.

Only the report counts: the text is cut where the returned message starts, text
parts that are only a header block are skipped (mailparts.report_text), a bounce
forwarded with '> ' quoting is read unquoted, and `not_recipients` names the
addresses that cannot be failed recipients (the sender's own, Message-ID tokens).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import email.policy
import re
from email.message import Message
from email.parser import Parser
from typing import NamedTuple

from processors.delivery.notification import NotificationKind
from processors.delivery.providers.bounce_class import (
    classified_outcome,
    clip,
    collapse,
    find_status,
    is_warning,
    reply_code,
)
from processors.delivery.providers.mailparts import (
    Outcome,
    addresses_in,
    all_headers,
    decoded,
    header,
    parts,
    report_text,
    returned_originals,
)

# An address as report text writes it: a dotted domain (a bare 'postmaster' or
# 'MAILER-DAEMON@localhost' names no mailbox that was written to).
_ADDR = r"[\w.+=!#$%&*/?^{|}~-]+@(?:[\w-]+\.)+[\w-]{2,}"
# Where a plain-text bounce starts quoting the returned message: below it, the
# recipient's address shows up again in To:/Received: lines that say nothing about
# the failure. A column-0 Received:/Return-Path: line is the same boundary when a
# server appends the original without announcing it (Zoho).
_RETURNED_MARKER = re.compile(
    r"^[ \t]*(?:[-=*_|]{2,}[ \t]*)?(?:"
    r"below this line is a copy of the message|this is a copy of the message|"
    r"(?:below is )?a copy of the original message|original mail (?:headers|info)|"
    r"original message|returned message|unsent message|undelivered message|"
    r"header of the source mail|rejected message|the header of the original message|"
    r"message headers? follows?|message text follows"
    r")|^(?:received|return-path)[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)
# Header lines of a quoted original: an address there is not a failure report.
_HEADERISH = re.compile(
    r"^\s*(?:to|cc|bcc|from|sender|reply-to|delivered-to|x-original-to|envelope-to|"
    r"return-path|received|for|by|x-failed-recipients)\s*:|^\s*(?:for|by)\s",
    re.IGNORECASE,
)
# Shape 1: an address leading its line, possibly after an SMTP reply code (sendmail
# transcripts) or a transcript's '<<<' marker, and followed by the end of the line,
# a separator or the reason.
_LEADING = re.compile(
    r"^[ \t]*(?:<<<[ \t]*)?(?:[45]\d\d[ -]+(?:[45]\.\d{1,3}\.\d{1,3}[ \t]+)?)?"
    r"<?(" + _ADDR + r")>?(?=$|[\s:;,.\[(>])",
    re.MULTILINE,
)
# A line whose sentence goes on to the next ('... e.g., if\n mike@x fails, try ...'):
# an address opening that next line is an example in prose, not a list entry. SMTP
# transcript lines ('<<< 550 Relaying denied', '550 host... Host unknown') end
# without punctuation and are no prose.
_PROSE_GOES_ON = re.compile(r"^(?![ \t]*(?:<<<|>>>|[245]\d\d[ -])).*[A-Za-z,;][ \t]*\r?\n?$")
# Shape 2: an address named by the words that report its failure.
_NAMED = re.compile(
    r"(?:"
    # 'error delivering your mail to', 'could not be delivered to:' (a failure word
    # first: 'was delivered to' is a success)
    r"\b(?:error|fail\w*|could\s*n[o']?t|cannot|can't|unable|not[ \t]+be|not[ \t]+able)"
    r"\b[^\n.<>@]{0,40}?\bdeliver(?:ing|ed|y)?\b[^\n<>@:]{0,40}?\bto|"
    r"\b(?:your|the)[ \t]+(?:message|mail|e-?mail)[ \t]+(?:to|for)|"
    r"\b(?:rejected|unknown|invalid|failed|undeliverable|bad)[ \t]+"
    r"(?:recipient|address|user|mailbox)(?:[ \t]+address)?|"
    r"(?<![\w-])(?:recipient|address)[ \t]*:"
    r")[ \t]*:?[ \t]*(?:\n[ \t]*)?<?(" + _ADDR + r")>?",
    re.IGNORECASE,
)
# An SMTP transcript's RCPT TO, and the reply code of the line after it.
_RCPT = re.compile(
    r"rcpt[ \t]+to[ \t]*:[ \t]*<?(" + _ADDR + r")>?[^\n]*"
    r"(?:\n[ \t]*(?:<<<|[<>]|out:|in:|s:)?[ \t]*([2-5]\d\d)\b)?",
    re.IGNORECASE,
)
# A whole email pasted into the report's text, from its mbox 'From ' line on (a
# relay forwarding the bounce it received as its own text): read as a bounce itself.
_EMBEDDED = re.compile(
    r"^From \S+ +\w{3} \w{3} +\d{1,2} \d\d:\d\d(?::\d\d)? \d{4}[ \t]*\n(?=[\w-]+:)",
    re.MULTILINE,
)
# A success status ('250 2.1.5 Ok' in a transcript) says nothing about the failure.
_SUCCESS_STATUS = re.compile(r"(?<![\w.])2\.\d{1,3}\.\d{1,3}(?![\d.])")
# One level of '> ' quoting, as a mail client forwards a bounce inline.
_QUOTE = re.compile(r"^>[ \t]?", re.MULTILINE)
# The fields of the bounce itself that name the original's sender (it is addressed
# to them) or its own mailboxes, and those of the returned original naming its sender.
_BOUNCE_FIELDS = ("From", "Sender", "Reply-To", "Return-Path", "To", "Delivered-To", "Envelope-To")
_SENDER_FIELDS = ("From", "Sender", "Reply-To", "Return-Path")
_ID_FIELDS = ("Message-ID", "In-Reply-To", "References", "Resent-Message-ID")
# Sender and id lines of an original quoted inline, in any part's text.
_SENDER_LINE = re.compile(r"^[ \t>]*(?:from|sender|reply-to|return-path)[ \t]*:(.*)$", re.I | re.M)
_ID_LINE = re.compile(r"message-id[ \t]*:[ \t]*(?:\n[ \t]+)?<?([^\s<>]+)>?", re.IGNORECASE)


class Near(NamedTuple):
    """What the report says next to an address."""

    status: str | None  # enhanced status code
    code: int | None  # SMTP reply code
    diagnostic: str | None  # the paragraph, on one line


def read(msg: Message, root: Message) -> list[Outcome]:
    """The failed recipients a plain-text bounce names (`root` is the bounce, `msg`
    the email that carried it), with what its text says about each."""
    report = report_text(root)
    excluded = not_recipients(msg, root, senders=False)
    found = [a for a in failed_addresses(report) if a not in excluded]
    if not found and _QUOTE.search(report):
        report = _QUOTE.sub("", report)  # a bounce forwarded inline
        found = [a for a in failed_addresses(report) if a not in excluded]
    # A delay warning names its recipients like a failure; its words say it is not.
    warning = is_warning(header(root, "Subject"), head(report))
    kind = NotificationKind.DEFERRED if warning else NotificationKind.BOUNCED
    outcomes = []
    for recipient in found:
        status, code, diagnostic = near(report, recipient)
        outcomes.append(
            classified_outcome(
                recipient,
                kind,
                status,
                code,
                diagnostic,
                report=head(report),
                alone=len(found) == 1,
            )
        )
    return outcomes


def embedded_email(root: Message) -> Message | None:
    """An email pasted whole into the text of `root`, None if there is none."""
    text = report_text(root)
    found = _EMBEDDED.search(text)
    if found is None:
        return None
    return Parser(policy=email.policy.compat32).parsestr(text[found.end() :])


def failed_addresses(report: str) -> list[str]:
    """The addresses the report part of `report` names as failed, in order."""
    text = head(report)
    found: list[tuple[int, str]] = []
    offset = 0
    # The indentation of the paragraph's recipient line: an address leading a line
    # indented below it is in that recipient's diagnostic ('a@b\n    550 5.2.0 <c@d>
    # From: Domain is invalid' names the sender c@d, not another recipient).
    indent: int | None = None
    previous = ""
    for line in text.splitlines(keepends=True):
        if not line.strip():
            indent, previous = None, ""
        leading = _LEADING.match(line)
        depth = _indent(line)
        if (
            leading
            and not _HEADERISH.match(line)
            and (indent is None or depth <= indent)
            and not _PROSE_GOES_ON.search(previous)
        ):
            found.append((offset + leading.start(1), leading.group(1)))
            indent = depth
        elif line.strip():
            previous = line
        offset += len(line)
    found.extend((match.start(1), match.group(1)) for match in _NAMED.finditer(text))
    found.extend(_refused_rcpts(text))
    ordered: list[str] = []
    for _, raw in sorted(found):
        for address in addresses_in(raw):
            if address not in ordered:
                ordered.append(address)
    return ordered


def _refused_rcpts(text: str) -> list[tuple[int, str]]:
    """The recipients of a failed SMTP session's transcript: those whose RCPT TO got
    a 4xx/5xx reply, or, when each was accepted (the session failed later, at DATA),
    all of them."""
    commands = [(m.start(1), m.group(1), m.group(2) or "") for m in _RCPT.finditer(text)]
    refused = [(at, address) for at, address, reply in commands if reply[:1] in ("4", "5")]
    return refused or [(at, address) for at, address, _ in commands]


def head(report: str) -> str:
    """The report without the returned message quoted below it."""
    marker = _RETURNED_MARKER.search(report)
    return report if marker is None else report[: marker.start()]


def near(report: str, address: str) -> Near:
    """Status, reply code and diagnostic from the report paragraph that names
    `address`; Nones when the report does not mention it."""
    lines = head(report).splitlines()
    needle = address.lower()
    for index, line in enumerate(lines):
        if needle not in line.lower() or _HEADERISH.match(line):
            continue
        text = collapse(" ".join(_paragraph(lines, index, needle)))
        # A success code ('250 2.1.5 Ok' in a transcript) says nothing about the failure.
        status = find_status(_SUCCESS_STATUS.sub(" ", text))
        # The address alone (a qmail '<a@b>:' with nothing under it) is no diagnostic.
        rest = re.sub(re.escape(needle), "", text, flags=re.IGNORECASE)
        diagnostic = clip(text) if len(re.findall(r"\w", rest)) >= 3 else None
        return Near(status, reply_code(text), diagnostic)
    return Near(None, None, None)


def _paragraph(lines: list[str], index: int, needle: str) -> list[str]:
    paragraph = [lines[index]]
    own = _indent(lines[index])
    extended = 0
    # An address alone on its line (Gmail's '     a@b' under 'Delivery to the
    # following recipient failed permanently:') may be followed by two paragraphs
    # before the reply ('Technical details of permanent failure: ...', then 'The
    # error that the other server returned was: 550 5.2.2 ...').
    alone = len(re.findall(r"\w", lines[index].lower().replace(needle, ""))) < 3
    for following in lines[index + 1 : index + 12]:
        if not following.strip():
            if paragraph[-1].strip() == "":
                continue
            # The reason may come in the next paragraph: announced by a ':' ('... for
            # the following reason:', qmail's '<a@b>:'), or the recipient's line says
            # no more than who (DragonFly's 'error delivering your mail to <a@b>.',
            # m-FILTER's address alone before its '----server message').
            said = " ".join(paragraph)
            if paragraph[-1].rstrip().endswith(":") or (
                extended < (2 if alone else 1)
                and find_status(said) is None
                and reply_code(said) is None
            ):
                extended += 1
                paragraph.append("")
                continue
            break
        leading = _LEADING.match(following)
        if leading and leading.group(1).lower() != needle and _indent(following) <= own:
            break  # the next recipient's paragraph (deeper, it is part of this one)
        paragraph.append(following)
    return paragraph


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def not_recipients(msg: Message, root: Message, *, senders: bool = True) -> set[str]:
    """Addresses a bounce mentions that are not failed recipients: Message-ID tokens
    ('<id@host>' reads like an address) and the bounce's own sender; with `senders`,
    also the bounce's addressee and the returned original's sender (the same person),
    which some flufl.bounce detectors pick up from the quoted headers. The report's
    own recipient lines are read without `senders`: a sender can write to themselves."""
    excluded: set[str] = set()
    bounces = [msg] if msg is root else [msg, root]
    own: tuple[str, ...] = (*_BOUNCE_FIELDS, *_ID_FIELDS) if senders else ("From", *_ID_FIELDS)
    for bounce in bounces:
        for name in own:
            for value in all_headers(bounce, name):
                excluded.update(addresses_in(value))
    original_fields = (*_SENDER_FIELDS, *_ID_FIELDS) if senders else _ID_FIELDS
    for original in (o for bounce in bounces for o in returned_originals(bounce)):
        for name in original_fields:
            for value in all_headers(original, name):
                excluded.update(addresses_in(value))
    for part in parts(root):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = decoded(part)
        lines = [*_ID_LINE.finditer(text), *(_SENDER_LINE.finditer(text) if senders else ())]
        for match in lines:
            excluded.update(addresses_in(match.group(1))[:1])
    return excluded
