"""The worker's health as its endpoints report it: /healthz (the loop beat within
30 s), /readyz (partitions assigned and restored). The HTTP server is the one every
process shares (convotrail/health.py); this module holds what the loop tells it.
"""

from __future__ import annotations

import time

from convotrail.health import ALIVE_WITHIN, Probe, serve, since

__all__ = ["ALIVE_WITHIN", "LoopStatus", "Probe", "serve", "since"]


class LoopStatus:
    """What /healthz and /readyz report: the loop's last beat, and readiness."""

    def __init__(self) -> None:
        self.last_beat = time.monotonic()
        self.ready = False
        self.assigned = 0
        self.stopping = False

    def beat(self, ready: bool, assigned: int) -> None:
        self.last_beat = time.monotonic()
        self.ready = ready
        self.assigned = assigned
