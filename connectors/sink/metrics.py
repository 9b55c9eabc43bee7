"""The sink's Prometheus metrics (served with `convotrail sink --metrics-port`).

Shared with the workers (convotrail/metrics.py): `convotrail_dlq_records_total{app,
topic,reason}` (app = the sink's group; reason: the dead letter's tag, a closed set:
the decoding errors' reasons, refused-record, unkeyed-tombstone, database-refused) and
`convotrail_consumer_lag{app,topic,partition}`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from prometheus_client import Counter, Gauge, Histogram

from convotrail.metrics import DLQ_RECORDS

# The kinds of row, one per topic the sink reads (a label: a closed set).
KINDS = ("timeline", "state", "read-receipt", "delivery-status")

ROWS = Counter("convotrail_sink_records_total", "Records written to the database", ["kind"])
BATCH_SECONDS = Histogram("convotrail_sink_batch_seconds", "Database transaction time per batch")
ROW_LATENCY = Histogram(
    "convotrail_sink_row_latency_seconds",
    "From a record's Kafka timestamp (its event time) to the database commit that stored it",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
DATABASE_UP = Gauge(
    "convotrail_sink_database_up", "1 while the last database write succeeded, 0 during an outage"
)
CAUGHT_UP = Gauge(
    "convotrail_sink_caught_up",
    "0 while records wait for the database (an outage), 1 once everything read is stored",
)
RETRIES = Counter(
    "convotrail_sink_database_retries_total", "Database writes retried after an outage"
)


class BatchReport:
    """What one batch reports when it commits, and only then: its dead letters on the
    one DLQ counter (so a batch dropped at a revocation and read again counts them
    once), and each stored record's latency from its Kafka timestamp (off the
    per-record path: after the commit, once per batch)."""

    def __init__(self, group: str, kinds: Mapping[str, str]) -> None:
        self.group = group
        # Per source topic: its row kind's histogram, labelled once.
        self._latency = {topic: ROW_LATENCY.labels(kind) for topic, kind in kinds.items()}
        self._dead_letters: dict[tuple[str, str], int] = {}

    def dead_lettered(self, topic: str, reason: str) -> None:
        slot = (topic, reason)
        self._dead_letters[slot] = self._dead_letters.get(slot, 0) + 1

    def committed(
        self, messages: Mapping[tuple[str, int, int], Message], refused: Collection[object]
    ) -> None:
        """The batch of `messages` is stored, but for the `refused` ones."""
        now = time.time()
        for source, message in messages.items():
            kind, stamp = message.timestamp()
            if kind == TIMESTAMP_NOT_AVAILABLE or stamp <= 0 or source in refused:
                continue
            self._latency[source[0]].observe(max(0.0, now - stamp / 1000))
        for (topic, reason), count in self._dead_letters.items():
            DLQ_RECORDS.labels(self.group, topic, reason).inc(count)
        self._dead_letters.clear()

    def drop(self) -> None:
        """The batch is gone unwritten (or written and reported already)."""
        self._dead_letters.clear()
