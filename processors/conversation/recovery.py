"""Crash safety for the RocksDB table store.

faust writes table values to RocksDB as the agent sets them, before the
changelog has them and before the offsets are committed. After a worker is
killed, RocksDB can therefore hold memories the changelog never got, of events
that will be reprocessed; trusting it would treat those events as duplicates
and lose whatever of their outputs did not reach Kafka. So a marker file says "a worker is running
on this store": present at start means the last run did not stop cleanly, and
the local store is wiped and rebuilt from the changelog.
A clean stop (SIGTERM, Ctrl-C) removes the marker and keeps the fast restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "worker.running"


@contextlib.contextmanager
def local_state_guard(tabledir: Path) -> Iterator[bool]:
    """Wipe `tabledir` when the previous worker on it died; yield whether it was wiped."""
    marker = tabledir.parent / MARKER
    wiped = False
    if marker.exists():
        log.warning(
            "the last worker on %s did not stop cleanly: rebuilding its tables from the "
            "changelog", tabledir,
        )  # fmt: skip
        shutil.rmtree(tabledir, ignore_errors=True)
        wiped = True
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{os.getpid()}\n")
    try:
        yield wiped
    finally:
        marker.unlink(missing_ok=True)
