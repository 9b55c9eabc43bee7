"""The runtime's Prometheus metrics, one set for every processor (label `app`). The lag
gauge and the DLQ counter are shared with the sink (convotrail/metrics.py).

Cardinality is bounded: apps, input topics and partitions, nothing per key.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Histogram

# Shared with the sink (one definition per metric): re-exported for the runtime.
from convotrail.metrics import LAG, forget_lag, report_lag

RECORDS_IN = Counter(
    "convotrail_records_processed_total", "Input records processed and committed", ["app"]
)
RECORDS_OUT = Counter(
    "convotrail_records_produced_total", "Records produced inside transactions", ["app", "topic"]
)
TRANSACTIONS = Counter(
    "convotrail_transactions_total", "Transactions by outcome (committed, aborted)",
    ["app", "outcome"],
)  # fmt: skip
COMMIT_SECONDS = Histogram(
    "convotrail_commit_seconds",
    "Time to commit a transaction (deferred outputs, changelog, offsets, commit, stores)",
    ["app"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
COMMIT_PHASE_SECONDS = Histogram(
    "convotrail_commit_phase_seconds",
    "A commit's phases: outputs (deferred outputs and changelog produced), kafka "
    "(offsets and commit_transaction), stores (RocksDB)",
    ["app", "phase"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_RECORDS = Histogram(
    "convotrail_transaction_records",
    "Input records per committed transaction",
    ["app"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
LATENCY = Histogram(
    "convotrail_record_latency_seconds",
    "From an input record's timestamp to the commit that made its outputs visible",
    ["app"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
TIMER_FAILURES = Counter(
    "convotrail_timer_failures_total", "Scheduled entries whose handler raised", ["app"]
)
BATCH_SECONDS = Histogram(
    "convotrail_batch_seconds",
    "Time to process one consumed batch (handlers, timers; the commit is apart)",
    ["app"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@functools.cache
def labelled(metric: Any, *values: str) -> Any:
    """A metric's child for these label values, looked up once: `labels()` costs
    microseconds per call, which per record was several percent of a processor."""
    return metric.labels(*values)


__all__ = [
    "BATCH_RECORDS", "BATCH_SECONDS", "COMMIT_PHASE_SECONDS", "COMMIT_SECONDS", "LAG", "LATENCY",
    "RECORDS_IN", "RECORDS_OUT", "TIMER_FAILURES", "TRANSACTIONS", "forget_lag", "labelled",
    "report_lag",
]  # fmt: skip
