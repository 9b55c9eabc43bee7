"""At which step of the SMTP session a recipient was refused.

Recipients are accepted or refused one by one at RCPT TO (RFC 5321 3.3); what is
refused before it (the greeting, HELO/EHLO, MAIL FROM) is the sending server or the
sender's address, and what is refused after DATA is the message, once the server
had taken the address. So the step weighs the evidence of the words: 'User
unknown' at RCPT TO is the server speaking about the address; at DATA, content
filters say it too; at MAIL FROM it is about the sender.

Servers say the step in their own ways: Postfix '(in reply to RCPT TO command)',
Exim 'SMTP error from remote mail server after RCPT TO:<...>', qmail '... does not
like recipient' / '... failed after I sent the message' / 'Connected to ... but my
name was rejected', and sendmail and Courier print the session transcript
('>>> RCPT To:<a@b>' then '<<< 550 ...').

Pure: no I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Stage(StrEnum):
    SENDER = "sender"  # the greeting, HELO/EHLO or MAIL FROM
    RCPT = "rcpt"
    DATA = "data"


_SAID = (
    (
        Stage.DATA,
        re.compile(
            r"in reply to (?:end of )?data command|after (?:end of )?data\b|"
            r"failed after i sent the message|"
            # A Postfix-style reply whose address slot is empty ('550 : User
            # unknown'): no recipient is in context any more, so it came after DATA.
            r"(?<![\w.])[45]\d\d:? : ",
            re.IGNORECASE,
        ),
    ),
    (
        Stage.RCPT,
        re.compile(
            r"in reply to rcpt to command|after rcpt(?: to)?\b|does not like recipient|"
            r"\[rcpt_to\]",
            re.IGNORECASE,
        ),
    ),
    (
        Stage.SENDER,
        re.compile(
            r"in reply to (?:mail from|helo|ehlo) command|after (?:mail from|helo|ehlo)\b|"
            r"after (?:the )?initial connection|(?:my name|sender|greeting) was rejected|"
            r"greeting failed|refused to talk to me",
            re.IGNORECASE,
        ),
    ),
)
# One command of a transcript and the reply lines under it.
_TRANSCRIPT = re.compile(
    r"^[ \t]*>>> ?(MAIL|RCPT|DATA|EHLO|HELO)\b([^\r\n]*)\r?\n((?:[ \t]*[^\s>][^\r\n]*\r?\n?)*)",
    re.MULTILINE | re.IGNORECASE,
)
_FAILURE_REPLY = re.compile(r"^[ \t]*<<< ?[45]\d\d\b[^\r\n]*", re.MULTILINE)
# With pipelining (RFC 2920) the RCPT replies come after '>>> DATA' in a transcript,
# and DATA's own reply says no recipient was accepted: those refusals were at RCPT.
_PIPELINED = re.compile(r"need rcpt|no valid recipients?|no recipients", re.IGNORECASE)


def refusal_stage(recipient: str, texts: tuple[str | None, ...], report: str) -> Stage | None:
    """The step at which `recipient` was refused: from what its diagnostic or report
    paragraph (`texts`) says, else from the report's session transcript."""
    for text in texts:
        if text:
            for stage, pattern in _SAID:
                if pattern.search(text):
                    return stage
    return _from_transcript(recipient.lower(), report)


def _from_transcript(recipient: str, report: str) -> Stage | None:
    if ">>>" not in report:
        return None
    for match in _TRANSCRIPT.finditer(report):
        command, argument, replies = match.group(1).upper(), match.group(2), match.group(3)
        failures = _FAILURE_REPLY.findall(replies)
        if not failures:
            continue
        if command == "RCPT":
            if recipient in argument.lower():
                return Stage.RCPT
        elif command == "DATA":
            if _PIPELINED.search(replies):
                continue
            # The refusal names this recipient, or names nobody (one recipient).
            first = failures[0].lower()
            if recipient in first or "@" not in first:
                return Stage.DATA
        elif command in ("MAIL", "EHLO", "HELO"):
            return Stage.SENDER
    return None
