"""Reading the sink's SQLite database while the sink writes it (WAL: readers never block it)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


class TimelineRows:
    """New rows of timeline_entries as they appear (rowids only grow: the sink inserts,
    never deletes), with the wall-clock time each was first seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_rowid = 0
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is None and self.path.exists():
            self._connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        return self._connection

    def new(self) -> tuple[float, list[str]]:
        """(when it was looked, event_ids of the rows written since the last look)."""
        connection = self._connect()
        if connection is None:
            return time.time(), []
        try:
            rows = connection.execute(
                "SELECT rowid, event_id FROM timeline_entries WHERE rowid > ? ORDER BY rowid",
                (self.last_rowid,),
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return time.time(), []
        seen = time.time()
        if rows:
            self.last_rowid = rows[-1][0]
        return seen, [event_id for _, event_id in rows]

    def count(self) -> int:
        connection = self._connect()
        if connection is None:
            return 0
        try:
            return int(connection.execute("SELECT count(*) FROM timeline_entries").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
