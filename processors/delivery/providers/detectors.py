"""flufl.bounce's heuristic detectors, for the non-standard formats no reader in
plaintext.py recognizes (old Exim, GroupWise, Sina, Yale, SMTP32, AOL...).

The detectors name the permanent and temporary failures; the status code and
diagnostic come from the report text around each address (plaintext.near). Some
detectors take any address they find in the text, so addresses that cannot be
failed recipients (plaintext.not_recipients: the sender's own, Message-ID tokens)
are dropped.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import copy
from email.message import Message
from email.utils import getaddresses

import flufl.bounce

from processors.delivery.notification import NotificationKind
from processors.delivery.providers import plaintext
from processors.delivery.providers.bounce_class import classified_outcome, is_warning
from processors.delivery.providers.mailparts import Outcome, address, clean, header, report_text


def outcomes(msg: Message, root: Message) -> list[Outcome]:
    """The failures flufl.bounce detects in `msg` (whose bounce is `root`)."""
    temporary, permanent = flufl.bounce.all_failures(_detectable(msg))
    report = plaintext.head(report_text(root))
    excluded = plaintext.not_recipients(msg, root)
    # A delay warning names its recipients as failures too; its words say it is not.
    warning = is_warning(header(msg, "Subject"), report)
    # Sorted: frozensets of bytes iterate in hash order, which varies between runs.
    detected = [(raw, True) for raw in sorted(permanent)]
    detected += [(raw, False) for raw in sorted(temporary)]
    recipients = {address(raw.decode("ascii", "replace")) for raw, _ in detected} - excluded
    found: list[Outcome] = []
    for raw, failed in detected:
        recipient = address(raw.decode("ascii", "replace"))
        if recipient is None or recipient in excluded:
            continue
        status, code, diagnostic = plaintext.near(report, recipient)
        kind = NotificationKind.BOUNCED if failed and not warning else NotificationKind.DEFERRED
        found.append(
            classified_outcome(
                recipient,
                kind,
                status,
                code,
                diagnostic,
                report=report,
                alone=len(recipients) == 1,
            )
        )
    return found


def _detectable(msg: Message) -> Message:
    """`msg`, or a copy flufl.bounce 6.0's detectors can read without crashing (which
    would abort the whole scan, every later detector included):

    - several detectors call str methods on header values, but for a value with raw
      non-ASCII bytes (an 8-bit Subject or display name, common in real bounces)
      compat32 returns an email.header.Header; the copy holds cleaned text instead;
    - the Yale detector indexes the parsed From addresses without checking there is
      one; the copy gets a null From, which reads as 'not Yale's'.
    """
    walked = list(msg.walk())
    dirty = any(_has_surrogates(value) for part in walked for _, value in part.raw_items())
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
                part[name] = clean(value)
    if no_from:
        del clone["From"]
        clone["From"] = "<>"
    return clone


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and any("\udc80" <= c <= "\udcff" for c in value)
