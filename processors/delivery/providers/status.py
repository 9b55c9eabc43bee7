"""SMTP status codes to bounce classes, shared by every provider parser.

RFC 3463 enhanced status codes are `class.subject.detail`: class 2 success, 4
persistent transient failure, 5 permanent failure. The class alone is not enough:
a 5.7.x is a policy refusal (spam filter, blocklist, authentication), not a bad
address, and suppressing a good address for it would be wrong; mailbox-full
(x.2.2) is transient whatever class the server gave it.
"""

from __future__ import annotations

import re

from schemas.model import BounceClass

ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
BASIC_CODE = re.compile(r"(?<!\d)([45]\d\d)(?!\d)")

# Text that marks a refusal as a policy decision when the code does not say so.
_POLICY_WORDS = re.compile(
    r"spam|blocklist|blacklist|block list|black list|blocked|reputation|policy|"
    r"dmarc|spf|dkim|not authorized|rejected for policy|content rejected",
    re.IGNORECASE,
)


def find_enhanced_status(text: str | None) -> str | None:
    """The first enhanced status code (e.g. '5.1.1') in a diagnostic text."""
    if not text:
        return None
    match = ENHANCED_STATUS.search(text)
    return ".".join(match.groups()) if match else None


def classify(
    enhanced: str | None, smtp_code: int | None = None, text: str | None = None
) -> BounceClass:
    """The bounce class of a refusal from its enhanced code, basic SMTP reply code
    and diagnostic text, in that order of trust."""
    if enhanced:
        klass, subject, detail = (int(part) for part in enhanced.split("."))
        if klass == 4:
            return BounceClass.SOFT
        if klass == 5:
            if subject == 7:
                return BounceClass.POLICY
            if (subject, detail) == (2, 2):  # mailbox full
                return BounceClass.SOFT
            if text and _POLICY_WORDS.search(text):
                return BounceClass.POLICY
            return BounceClass.HARD
    if smtp_code is not None:
        if 400 <= smtp_code < 500:
            return BounceClass.SOFT
        if 500 <= smtp_code < 600:
            if text and _POLICY_WORDS.search(text):
                return BounceClass.POLICY
            return BounceClass.HARD
    if text and _POLICY_WORDS.search(text):
        return BounceClass.POLICY
    return BounceClass.UNKNOWN
