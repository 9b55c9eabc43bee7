"""Telling a mail scanner's prefetch from a person opening the email.

Security gateways (Mimecast, Proofpoint, Barracuda...) and some mailbox providers'
proxies fetch every image of an incoming email, tracking pixel included, within
seconds of delivery; a person opens it later. A tracking-pixel view by the customer
is *automated* when both hold:

1. its user agent is a known scanner or proxy (the patterns below), and
2. it came within `prefetch_window` (default 60 s) of the message's delivery,
   or of its sending when no delivery was reported (before it counts too: clocks
   differ); a view of a message whose delivery and sending are both unknown yet
   (it arrived first) is judged by the user agent alone.

Gmail's image proxy fetches when the person opens the email, so a GoogleImageProxy
fetch an hour after delivery is a real view; the same fetch two seconds after
delivery is not. Views through the chat widget or the app, and teammates' views,
are people by construction. A view without a user agent is not called automated:
the rule needs positive evidence.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import model as m

KNOWN_AGENTS: tuple[str, ...] = (
    # Mailbox providers' image proxies (prefetch on delivery in some configurations).
    r"GoogleImageProxy",
    r"YahooMailProxy",
    r"ggpht\.com",
    # Secure email gateways and link/attachment scanners.
    r"Mimecast",
    r"Proofpoint",
    r"Barracuda",
    r"Symantec|MessageLabs",
    r"IronPort|Cisco",
    r"Trend ?Micro",
    r"FireEye|Trellix",
    r"Forcepoint",
    r"Sophos",
    r"Zscaler",
    r"Microsoft Defender|SafeLinks|Office 365 ATP",
    r"MailScanner|URLDefense|scanner|prefetch",
    # Generic automation fetching a URL.
    r"\bbot\b|crawler|spider|preview",
    r"curl/|Wget/|python-requests|aiohttp|Go-http-client|Java/|okhttp|HeadlessChrome",
)


@dataclass(frozen=True)
class ScannerRule:
    prefetch_window: timedelta = timedelta(seconds=60)
    agents: tuple[str, ...] = KNOWN_AGENTS
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile("|".join(self.agents), re.IGNORECASE))

    def known_agent(self, user_agent: str | None) -> bool:
        return bool(user_agent) and self._pattern.search(user_agent or "") is not None

    def is_automated(self, view: m.MessageViewed, at: datetime, reference: datetime | None) -> bool:
        """Whether a view at `at` looks automated; `reference` is the message's delivery
        (or sending) time when known."""
        if view.viewer_kind is not m.ViewerKind.CUSTOMER:
            return False
        if view.source not in (m.ViewSource.TRACKING_PIXEL, m.ViewSource.UNKNOWN):
            return False
        if not self.known_agent(view.user_agent):
            return False
        if reference is None:
            return True
        return at - reference <= self.prefetch_window
