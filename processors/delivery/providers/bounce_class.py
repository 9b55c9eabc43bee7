"""The class and kind of a bounce: HARD, SOFT, POLICY or UNKNOWN; BOUNCED, DEFERRED
or DELIVERED, from a recipient's Action, status codes and diagnostic text.

The rules are the table in docs/delivery.md, "Classifying a bounce". In order of
evidence: the remote server's RFC 3463 enhanced status code, then its SMTP reply
code, then known phrases (bounce_phrases.py). What they protect: a HARD bounce
suppresses the address at once (processors/delivery/recipients.py), so HARD needs
strong evidence that the address itself is bad (x.1.1 unknown user, x.1.2 unknown
host, x.1.3 bad syntax, x.1.6 moved, x.1.10 null MX, or an unambiguous phrase
behind a generic code). Everything the recipient is not shown guilty of is SOFT
(transient: counted, escalated after repeats), POLICY (the sender or the content
was refused: suppresses nothing) or UNKNOWN (suppresses nothing).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import re
from datetime import datetime

from processors.delivery.notification import NotificationKind
from processors.delivery.providers.bounce_phrases import Family, family_of
from processors.delivery.providers.bounce_stage import Stage, refusal_stage
from processors.delivery.providers.mailparts import Outcome
from schemas.model import BounceClass

# Diagnostics are free text from a remote server; keep what a person needs to read.
MAX_DIAGNOSTIC = 1000

# RFC 3463 enhanced status code. Unlike status.ENHANCED_STATUS it may end a sentence
# ('... (#5.1.1).') but not be followed by another number (an IP address's next
# octet), and it must not follow a letter or a dot, because here it is searched for
# in free report text.
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
# An enhanced code right after a reply code: the remote server's own reply as it
# wrote it ('550 5.2.2', '550-5.1.1', '501: 5.1.8', SES's quoted "550-'5.2.2").
# A relay that wraps the reply puts its own code in front ('5.1.0 - Unknown address
# error 550-...'); that code is a summary, the remote's is the evidence.
_REMOTE_ENHANCED = re.compile(
    r"(?<![\w.:/#-])[245]\d\d(?:[ -]|:\s?)['\"]?#?"
    r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)"
)
# A failure reply code as a server writes it: '550 ...', '550-...', 'said: 450'. Not
# after a digit, dot, colon, slash, '#' or '-' (IP octets, times, paths, ids); 2xx
# is left out so a transcript's '250 OK' does not stand in for the refusal after it.
_REPLY_CODE = re.compile(r"(?<![\w.:/#-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)
# The diagnostic-type of a Diagnostic-Code ('smtp; ', 'X-Postfix; ', 'X-Notes; ').
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[A-Za-z][\w.-]*\s*;\s*")
_WHITESPACE = re.compile(r"\s+")

# -- the code table (docs/delivery.md) ---------------------------------------------

# Permanent codes that say the address itself is bad: unknown mailbox (x.1.1),
# unknown host (x.1.2), bad syntax (x.1.3), moved without forwarding (x.1.6), null
# MX (x.1.10, RFC 7505), mailbox or domain owner changed (x.7.17, x.7.18, RFC 7293).
_HARD_CODES = frozenset({(1, 1), (1, 2), (1, 3), (1, 6), (1, 10), (7, 17), (7, 18)})
# Codes about the SENDER's address (x.1.7 syntax, x.1.8 its domain): a refusal of
# the sender is policy, never the recipient's fault.
_SENDER_CODES = frozenset({(1, 7), (1, 8)})
# The default class of the other permanent subjects, when no phrase says more:
# x.2 mailbox (disabled, too big for it: it exists), x.3 mail system, x.4 network
# and routing, x.5 protocol: transient or not about the address. x.0 (undefined)
# and the rest of x.1 (x.1.0 other address status, x.1.4 ambiguous) say nothing.
_SUBJECT_DEFAULT = {
    0: BounceClass.UNKNOWN,
    1: BounceClass.UNKNOWN,
    2: BounceClass.SOFT,
    3: BounceClass.SOFT,
    4: BounceClass.SOFT,
    5: BounceClass.SOFT,
}
# x.7.x is policy, but RFC 3463 puts a disabled account there too (x.7.13), and
# servers say 'mailbox disabled/suspended' or 'mailbox full' behind a 5.7.1: those
# are the mailbox's state, which may change, so soft.
_SOFT_UNDER_POLICY = frozenset({"suspended", "mailbox full", "greylisted"})
# Causes that are not the sender's identity whichever step they answer: a busy or
# slow server, its full disk ('452 Insufficient system storage'), a SIZE= too big.
_NOT_THE_SENDER = frozenset(
    {"rate limited", "greylisted", "network", "system", "expired", "mailbox full", "too big"}
)


def _code(status: str) -> tuple[int, int, int]:
    klass, subject, detail = (int(part) for part in status.split("."))
    return klass, subject, detail


def is_generic(status: str | None) -> bool:
    """No code, or RFC 3463's 'other undefined status' (x.0.0): only the class."""
    return status is None or status.endswith(".0.0")


def classify_bounce(
    status: str | None,
    code: int | None,
    text: str | None,
    *,
    context: str | None = None,
    stage: Stage | None = None,
) -> BounceClass:
    """The class of a refused recipient from the remote's enhanced status code, its
    reply code and its diagnostic `text`, in that order of trust. `context` is more
    text about the failure that is not the recipient's own diagnostic (the report
    paragraph, the report): it may name a transient or policy cause, never make a
    bounce HARD. `stage`: the SMTP step the refusal answered (bounce_stage.py)."""
    family = _family(text, context)
    klass = _by_code(status, code, family, stage)
    if stage is Stage.DATA and klass is BounceClass.HARD:
        # The server took the address at RCPT TO and refused the message: content
        # filters word that 'user unknown' too. Soft, so that a refusal that keeps
        # coming still ends in suppression (escalation), but one does not.
        return BounceClass.SOFT
    if stage is Stage.SENDER and (family is None or family.name not in _NOT_THE_SENDER):
        # Refused before any recipient was named: the sending server or the
        # sender's address, whatever the words ('... does not exist' is the sender).
        return BounceClass.POLICY
    return klass


def _family(text: str | None, context: str | None) -> Family | None:
    return family_of(text) or family_of(context, hard=False)


def _by_code(
    status: str | None, code: int | None, family: Family | None, stage: Stage | None
) -> BounceClass:
    transient = (status is not None and status[0] == "4") or (
        status is None and code is not None and code < 500
    )
    if status is not None and not is_generic(status) and status[0] in "45":
        klass, subject, detail = _code(status)
        if subject == 7 and (subject, detail) not in _HARD_CODES:
            # Policy (x.7.x, transient or not): the refusal of the sender or the
            # content. x.7.13 is RFC 3463's 'user account disabled'.
            if detail == 13 or (family is not None and family.name in _SOFT_UNDER_POLICY):
                return BounceClass.SOFT
            return BounceClass.POLICY
        if (subject, detail) in _SENDER_CODES or subject == 6:
            return BounceClass.POLICY  # the sender's address, or the content (x.6)
        if (subject, detail) == (2, 2):
            return BounceClass.SOFT  # mailbox full: RFC 3463 calls it transient
        if klass == 4:
            # Transient, whatever it is about; a policy phrase says more.
            if family is not None and family.bounce_class is BounceClass.POLICY:
                return BounceClass.POLICY
            return BounceClass.SOFT
        if (subject, detail) in _HARD_CODES:
            # Strong evidence, unless the words contradict it ('over quota (#5.1.1)',
            # 'temporarily locked'): then the words are the better witness.
            if family is not None and family.bounce_class is not BounceClass.HARD:
                return family.bounce_class
            return BounceClass.HARD
        # Other permanent codes: the phrase decides, else the subject's default. A
        # mailbox code (x.2.x: the mailbox exists, disabled or unable to take this
        # message) contradicts 'user unknown' in words: not strong enough for HARD.
        # The exception: the server said so in answer to RCPT TO, the step where it
        # judges that very address.
        if family is not None:
            if subject == 2 and family.bounce_class is BounceClass.HARD:
                return BounceClass.HARD if stage is Stage.RCPT else BounceClass.SOFT
            return family.bounce_class
        return _SUBJECT_DEFAULT.get(subject, BounceClass.UNKNOWN)
    # A generic code or none: the words decide; a transient code keeps it soft.
    if family is not None:
        if transient and family.bounce_class is BounceClass.HARD:
            return BounceClass.SOFT
        return family.bounce_class
    if transient or code == 552:  # 552: 'exceeded storage allocation' (RFC 5321)
        return BounceClass.SOFT
    if code is not None and 500 <= code <= 504:
        return BounceClass.SOFT  # a command or syntax error: our side, not the address
    return BounceClass.UNKNOWN


def outcome_class(
    kind: NotificationKind,
    status: str | None,
    code: int | None,
    text: str | None,
    *,
    context: str | None = None,
    stage: Stage | None = None,
) -> BounceClass | None:
    """The class of one outcome: None for a delivery; a delay (the reporting server
    is still retrying) is never HARD, and SOFT unless a policy refusal is its cause."""
    if kind is NotificationKind.DELIVERED:
        return None
    klass = classify_bounce(status, code, text, context=context, stage=stage)
    if kind is NotificationKind.DEFERRED and klass is not BounceClass.POLICY:
        return BounceClass.SOFT
    return klass


# Lines of a report that are not its prose: the session transcript (commands and
# replies, '>>> RCPT To:', '<<< 250-STARTTLS', Postfix's 'In:'/'Out:', where the
# server's capability list would read as causes) and header fields of a quoted
# original ('X-Virus-Scanned:', 'Authentication-Results: ... spf=pass').
_SESSION_LINE = re.compile(
    r"^[ \t]*(?:>>>|<<<|in:|out:|x-[\w-]+:|received:|dkim-signature:|arc-[\w-]+:|"
    r"authentication-results:|received-spf:|return-path:|errors-to:|list-[\w-]+:)"
    r"[^\r\n]*\r?\n?",
    re.IGNORECASE | re.MULTILINE,
)


def report_prose(report: str) -> str:
    """A report without its session transcript: context for `classify_bounce`."""
    return _SESSION_LINE.sub("", report)


def classify_outcome(
    kind: NotificationKind,
    status: str | None,
    code: int | None,
    diagnostic: str | None,
    *,
    recipient: str,
    report: str,
    paragraph: str | None = None,
    alone: bool = False,
) -> BounceClass | None:
    """`outcome_class` for a recipient of a bounce email: `report` is the report's
    text above the returned message, `paragraph` what it says next to the recipient
    (when the diagnostic came from elsewhere), `alone` that the report is about this
    recipient only, so that its prose may say why (never HARD: see classify_bounce)."""
    prose = report_prose(report) if alone else None
    context = "\n".join(text for text in (paragraph, prose) if text) or None
    stage = refusal_stage(recipient, (diagnostic, paragraph), report)
    return outcome_class(kind, status, code, diagnostic, context=context, stage=stage)


# -- the kind --------------------------------------------------------------------------


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


# A delay warning in words: the reporting server is still trying (Postfix's 'THIS IS
# A WARNING ONLY', sendmail's 'Warning: could not send message for past 4 hours' and
# 'THIS IS A WARNING MESSAGE ONLY', Exim's 'has not yet been delivered ... delayed',
# Exchange's 'Delivery Status Notification (Delay)', 'do not need to resend').
_WARNING = re.compile(
    r"this is a warning(?: message)? only|warning message only|"
    r"this is only a (?:temporary|warning)|only a temporary failure|"
    r"warning: (?:could not send|message \S+ delayed)|delayed for more than|"
    r"(?:will|shall) (?:keep|continue) (?:on )?(?:trying|retrying)|"
    r"will (?:continue to )?(?:be )?retr(?:y|ied)|still being retried|"
    r"delivery attempts will continue|has not yet been delivered|not been delivered yet|"
    r"do not need to re-?send|no need to re-?send|"
    r"delivery (?:status notification \(delay\)|delayed|is delayed)|^delayed mail",
    re.IGNORECASE | re.MULTILINE,
)
# ... unless the report says it is final ('This is a permanent error', qmail's "I'm
# not going to try again").
_FINAL = re.compile(
    r"permanent (?:error|failure)|failed permanently|not going to try again|"
    r"giving up|will not be retried|retry timeout exceeded",
    re.IGNORECASE,
)


def is_warning(subject: str | None, report: str) -> bool:
    """A report that says delivery is still being attempted (a DEFERRED outcome)."""
    said = f"{subject or ''}\n{report}"
    return bool(_WARNING.search(said)) and not _FINAL.search(said)


# -- codes and diagnostics ---------------------------------------------------------


def block_status(field: str | None, diagnostic: str | None) -> str | None:
    """The enhanced status of a recipient: the remote server's own code in the
    diagnostic first (the Status field is the reporting server's summary of it),
    a specific code before a generic x.0.0, the Status field last."""
    remote = _codes(_REMOTE_ENHANCED, diagnostic)
    others = _codes(_ENHANCED, diagnostic)
    field_status = find_status(field)
    candidates = [*remote, *others, *([field_status] if field_status else [])]
    failures = [c for c in candidates if c[0] != "2"]
    if field_status is not None and field_status[0] == "2":
        return field_status  # a delivery: nothing in its text overrides that
    for status in failures:
        if not is_generic(status):
            return status
    return failures[0] if failures else field_status


def _codes(pattern: re.Pattern[str], text: str | None) -> list[str]:
    if not text:
        return []
    return [".".join(str(int(p)) for p in m.groups()) for m in pattern.finditer(text)]


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


def classified_outcome(
    recipient: str,
    kind: NotificationKind,
    status: str | None,
    code: int | None,
    diagnostic: str | None,
    *,
    report: str,
    paragraph: str | None = None,
    alone: bool = False,
    attempted_at: datetime | None = None,
    arrived_at: datetime | None = None,
) -> Outcome:
    """The Outcome of one recipient, classified: what every reader of a bounce email
    (RFC 3464 blocks, plain-text shapes, flufl's detectors) ends with."""
    return Outcome(
        recipient=recipient,
        kind=kind,
        bounce_class=classify_outcome(
            kind,
            status,
            code,
            diagnostic,
            recipient=recipient,
            report=report,
            paragraph=paragraph,
            alone=alone,
        ),
        smtp_status=status,
        diagnostic=diagnostic,
        attempted_at=attempted_at,
        arrived_at=arrived_at,
    )
