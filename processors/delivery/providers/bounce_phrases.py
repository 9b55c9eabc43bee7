"""Known phrases of bounce diagnostics, by family: what a refusal says in words.

The third kind of evidence about a bounce (docs/delivery.md, "Classifying a
bounce"), after the remote server's enhanced status code and its SMTP reply code:
many servers give only a generic code (x.0.0, a bare 550) or none at all, and say
what went wrong in text. Each family is one reason a real mail server gives, worded
the ways the common servers word it (Postfix, Exim, sendmail, qmail, Exchange and
Microsoft 365, Gmail, Yahoo, Courier, Domino...), and the class it implies.

Families are tried in order and the first match wins, so a phrase that names the
cause precisely comes before a broader one that may appear in the same reply
('Mailbox full' before 'rejected'; 'rate limited ... blocked IP' is rate limiting;
the refusal behind a give-up, 'my name was rejected ... in the queue too long', is
the cause, not the expiry). Addresses and URLs are blanked out first: a local part
or a help link ('.../reason/#userunknown', '?p=NoSuchUser') is not the server
speaking.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.model import BounceClass


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    bounce_class: BounceClass
    pattern: re.Pattern[str]


def _family(name: str, bounce_class: BounceClass, *phrases: str) -> Family:
    return Family(name, bounce_class, re.compile("|".join(phrases), re.IGNORECASE))


_S, _P, _H = BounceClass.SOFT, BounceClass.POLICY, BounceClass.HARD

FAMILIES: tuple[Family, ...] = (
    # The SENDER's address or domain is refused (x.1.7/x.1.8 in words): the recipient
    # is not at fault. First, because these replies also say 'does not exist' or
    # 'domain not found', which would otherwise read as an unknown recipient.
    _family(
        "sender rejected",
        _P,
        r"sender (?:address|domain)[^.;]{0,30}(?:rejected|refused|invalid|not found|"
        r"unknown|does not exist)",
        r"domain of sender address",
        r"sender verif\w* failed",
        r"unverified sender|unroutable sender|sender (?:is )?not (?:allowed|permitted)",
        r"invalid (?:sender|from) (?:domain|address)|\bfrom:? domain (?:is )?invalid",
    ),
    # RFC 3463 x.2.2 in words: the mailbox exists and may empty again.
    _family(
        "mailbox full",
        _S,
        r"quota|mailbox (?:is )?full|mail ?box full|mail ?folder is full",
        r"mailbox.{0,20}(?:exceed|full)|exceeds? (?:the )?(?:allowed|maximum) (?:mailbox )?size",
        r"insufficient (?:system )?storage|storage (?:allocation|limit)",
        r"out of (?:disk )?space|disk (?:is )?full|mailbox size limit",
    ),
    # The mailbox exists but is switched off for now (RFC 3463 x.2.1 and x.7.13 in
    # words): it can come back, so not a hard bounce.
    _family(
        "suspended",
        _S,
        r"(?:account|mailbox|user|recipient|address)[^.;:]{0,40}(?:suspended|disabled|"
        r"deactivated|locked|frozen|discontinued|on hold)",
        r"(?:suspended|disabled|deactivated|locked|frozen)[^.;:]{0,20}(?:account|mailbox|"
        r"user|recipient|address)",
    ),
    # The recipient does not exist (RFC 3463 x.1.1): the usual wordings, each
    # unambiguous about the address (not a bare 'mailbox unavailable', which is RFC
    # 5321's text for any 550 whatever the cause).
    _family(
        "user unknown",
        _H,
        r"user ?unknown|unknown (?:user|recipient|local[- ]part|mailbox|address)",
        r"no such (?:user|recipient|mailbox|account|address)",
        r"(?:user|recipient|mailbox|account|address)[^.;:]{0,30}(?:does not|doesn'?t) exist",
        r"(?:user|recipient|mailbox|address)[^.;:]{0,20}not (?:found|recognized|known)",
        r"recipient ?not ?found|recipnotfound|recipient name is not recognized",
        r"invalid (?:recipient|mailbox|address)|(?:recipient|address) (?:is )?invalid",
        r"doesn'?t have an? [\w.-]+ account|not a valid (?:mailbox|user|recipient)",
        r"no mailbox here by that name|illegal alias|address couldn'?t be found",
        r"no longer on (?:this|the) server|not our customer|mailbox not found",
        r"check if (?:the )?address is correct",
    ),
    # The recipient's domain does not exist or takes no mail (x.1.2, x.1.10, null MX).
    _family(
        "host unknown",
        _H,
        r"host (?:or domain name )?not found|unknown host|host unknown|no such domain",
        r"domain (?:name )?not found|unknown domain|domain (?:does not|doesn'?t) exist",
        r"unrouteable address|couldn'?t find a mail exchanger|nxdomain|\bhost \S+ not found",
        r"(?:host|domain)[^.;]{0,30}(?:does not|doesn'?t) (?:accept|receive) (?:e-?)?mail",
        r"null mx",
    ),
    # The mailbox moved and left no forwarding address (x.1.6).
    _family(
        "moved",
        _H,
        r"(?:mailbox|address|user) has (?:been )?moved|moved permanently",
        r"address (?:has )?changed|no longer (?:valid|in use)",
    ),
    # Too much mail too fast, from us or to the recipient: slow down and retry.
    _family(
        "rate limited",
        _S,
        r"rate.?limit|too many (?:connections|messages|recipients|e-?mails|concurrent)",
        r"frequency limited|receiving mail at a rate|(?:sending|receiving) rate",
        r"throttl|too fast|slow down",
    ),
    # Greylisting: a first refusal by design, the retry is accepted.
    _family(
        "greylisted",
        _S,
        r"gr[ae]y.?list",
    ),
    # Refusals of the sender or the content by policy: spam and virus filters,
    # blocklists and reputation, authentication (SPF, DKIM, DMARC), reverse DNS,
    # relaying, TLS, protocol or RFC compliance, a list's posting rules.
    _family(
        "spam or content",
        _P,
        r"spam|virus|malware|phish|\bUBE\b|junk|bulk mail",
        r"content[^.;]{0,20}(?:rejected|refused|not accepted)|(?:mail|message) rejected",
    ),
    _family(
        "blocked",
        _P,
        r"block(?:ed|list)|black ?list|deny ?list|listed (?:on|in|at) |\brbl\b|dnsbl",
        r"spamhaus|spamcop|barracuda|cloudmark|reputation",
        r"client host rejected|access denied|my name was rejected|refused to talk",
        r"not (?:allowed|permitted) to send|use the smtp server of your isp",
        r"not accepting (?:e-?)?mail from",
        r"invalid ip\b|ip (?:address )?(?:is )?not (?:allowed|authori)",
    ),
    _family(
        "authentication",
        _P,
        r"\bspf\b|\bdkim\b|\bdmarc\b|unauthenticated|not authenticated",
        r"authentication (?:required|failed|checks? failed)",
    ),
    _family(
        "reverse dns",
        _P,
        r"reverse (?:dns|lookup)|\brdns\b|\bptr\b|ip name lookup failed",
        r"mismatch(?:es)? client ip|cannot find your hostname",
    ),
    _family(
        "relaying",
        _P,
        r"relay(?:ing)? (?:access )?(?:denied|not (?:allowed|permitted)|prohibited)",
        r"not permitted to relay|unable to relay|we do not relay",
    ),
    _family(
        "tls",
        _P,
        r"starttls|tls (?:is )?required|encryption required|(?:not )?support tls",
    ),
    _family(
        "protocol",
        _P,
        r"protocol violation|not (?:rfc ?\d+ )?compliant|(?:violates|violation of) rfc",
    ),
    # The reporting server gave up retrying: the address was never shown bad.
    _family(
        "expired",
        _S,
        r"retry time(?:out)? (?:exceeded|not reached)|envelope expired|message expired",
        r"delivery time expired|in (?:the )?queue too long|too long in (?:the )?queue",
        r"could not be delivered (?:with)?in \d|failed (?:after )?\d+ attempts",
        r"(?:could not|unable to) deliver (?:for|within|in) (?:the last )?\d+",
    ),
    # The network or DNS on the way failed: nothing is known about the address.
    _family(
        "network",
        _S,
        r"connection (?:refused|timed out|reset|lost|closed)|lost connection",
        r"no route to host|network (?:is )?unreachable|timed out|time-?out",
        r"name service error|dns (?:error|failure)|temporary lookup failure",
        r"unable to connect|could not connect|socket error|did not accept our requests",
        r"too many hops|mail loop|routing loop|loops back to myself",
    ),
    # The message, not the address, is too big for this mailbox or system.
    _family(
        "too big",
        _S,
        r"message (?:size|length) exceeds|(?:message|mail) (?:is )?too (?:big|large)",
        r"exceed(?:s|ed)? (?:the )?(?:maximum|max|size|message size)|size limit",
    ),
    # Local delivery on the receiving host failed (a pipe, a filter program).
    _family(
        "mailer error",
        _S,
        r"pipe to \||mailer error|procmail|command (?:died|failed)|unix mailer",
    ),
    _family(
        "policy",
        _P,
        r"policy|not authori[sz]ed|unauthori[sz]ed|permission to post",
        # A Google Groups refusal, in the poster's language: who may post to a
        # group is the group's policy. Its signature line is the same in all of them.
        r"(?m:^[ \t]*google groups\.?[ \t]*$)",
    ),
    # The receiving system failed for its own reasons (RFC 3463 x.3.x in words).
    _family(
        "system",
        _S,
        r"transaction failed|service (?:is )?(?:currently |temporarily )?unavailable",
        r"system error|internal error|local error|temporar(?:il)?y (?:failure|unavailable)",
        r"try again later|server busy|resources? temporarily",
    ),
)

# Addresses ("no-such-user@x") and URLs say nothing about the cause.
_NOISE = re.compile(r"[^\s<>()\[\]\"',;]+@[^\s<>()\[\]\"',;]+|\b(?:https?|ftp)://\S+", re.I)

HARD_FAMILIES = frozenset(f.name for f in FAMILIES if f.bounce_class is BounceClass.HARD)


def family_of(text: str | None, *, hard: bool = True) -> Family | None:
    """The first family whose phrases `text` holds; with hard=False the families
    that would make a bounce HARD are skipped (text that is not the recipient's own
    diagnostic is not strong enough evidence for that)."""
    if not text:
        return None
    text = _NOISE.sub(" ", text)
    for family in FAMILIES:
        if not hard and family.bounce_class is BounceClass.HARD:
            continue
        if family.pattern.search(text):
            return family
    return None
