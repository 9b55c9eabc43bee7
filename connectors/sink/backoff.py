"""Capped exponential backoff with full jitter, for waiting out a database outage.

    backoff = Backoff()
    delay = backoff.next()   # 0.25 s, 0.5 s, 1 s ... up to 5 s, each jittered
    backoff.reset()          # after a success

Pure apart from the random source, which tests may pass in. The cap is short on
purpose: the sink must store what arrived within seconds of the database's
return, so it never sleeps longer than `cap` between two attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.25
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        """The delay before the next attempt: uniform in [ceiling/2, ceiling]."""
        ceiling = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        # Half fixed, half random: two sinks restarted together do not retry in
        # lockstep, and no delay is ever near zero (no busy loop on a dead server).
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.attempts = 0
