"""`convotrail sink` as a separate process, as a user runs it (outage and chaos tests)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from convotrail.settings import Settings
from tests.support.metrics import scrape
from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sink:
    """`convotrail sink` as a user runs it, with its metrics port and its log."""

    settings: Settings
    database_url: str
    logs: Path
    group: str = field(default_factory=lambda: f"sink-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=lambda: free_ports(1)[0])
    runs: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_format: str = "text"

    @property
    def log(self) -> Path:
        return self.logs / f"sink-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.settings.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": self.settings.topics.prefix,
            "CONVOTRAIL_PARTITIONS": str(self.settings.partitions),
            "CONVOTRAIL_HOME": str(self.settings.home),
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convotrail", "sink", "--verbose",
                 "--database-url", self.database_url,
                 "--group", self.group_id,
                 "--batch-size", "50", "--batch-timeout", "0.2",
                 "--metrics-port", str(self.port), "--log-format", self.log_format],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def group_id(self) -> str:
        """The consumer group, which is the `app` label of its lag and DLQ metrics."""
        return f"{self.settings.topics.prefix}{self.group}"

    def metric(self, name: str) -> float | None:
        try:
            return scrape(self.port).get(name)
        except OSError:
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another writer holds SQLite's write lock (as a long migration or backup would)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()
