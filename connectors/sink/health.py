"""What the sink's /healthz and /readyz say (served by convotrail/health.py on
`--metrics-port`, next to /metrics).

- Alive (/healthz): the sink's loop beat within 30 s. It beats on every poll, and
  while it waits for the database (each backoff step is at most 5 s), so an outage
  is not a reason to restart it; a loop stuck in a call that never returns is.
- Ready (/readyz): the database answered the last time the sink asked it (opening
  and migrating it, reading positions, writing a batch) and the group has assigned
  partitions to this sink. Not ready during a database outage, before the first
  assignment and while stopping. A sink that gets no partition at all (more sinks
  than partitions) stays not ready: it is a spare, not a failure.
"""

from __future__ import annotations

import threading
import time

from connectors.sink import metrics
from convotrail.health import Probe, since


class SinkHealth:
    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()  # set when the sink is asked to stop
        self.last_beat = time.monotonic()
        self.database_up = False
        self.assigned = 0
        self.stopping = False

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def database(self, up: bool) -> None:
        """What the last database call said (also `convotrail_sink_database_up`)."""
        self.database_up = up
        metrics.DATABASE_UP.set(1 if up else 0)

    def readiness(self) -> tuple[bool, str]:
        if self.stopping or self.stop.is_set():
            return False, "stopping"
        if not self.database_up:
            return False, "waiting for the database"
        if not self.assigned:
            return False, "waiting for partitions"
        return True, f"{self.assigned} partitions assigned, database reachable"

    def probe(self) -> Probe:
        return Probe(alive=lambda: since(self.last_beat), ready=self.readiness)
