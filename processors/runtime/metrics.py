"""The runtime's Prometheus metrics, one set for every processor (label `app`).

Cardinality is bounded: apps, input topics and partitions, nothing per key.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

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
LAG = Gauge(
    "convotrail_consumer_lag",
    "Records in an input partition not yet consumed by this process",
    ["app", "topic", "partition"],
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


def report_lag(app: str, consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """High watermark minus position, from the consumer's cached fetch responses."""
    for tp in partitions:
        try:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            (position,) = consumer.position([TopicPartition(tp.topic, tp.partition)])
        except KafkaException:
            continue
        if high >= 0 and position.offset >= 0:
            LAG.labels(app, tp.topic, str(tp.partition)).set(max(0, high - position.offset))


def forget_lag(app: str, partitions: list[TopicPartition]) -> None:
    for tp in partitions:
        with contextlib.suppress(KeyError):
            LAG.remove(app, tp.topic, str(tp.partition))


@functools.cache
def labelled(metric: Any, *values: str) -> Any:
    """A metric's child for these label values, looked up once: `labels()` costs
    microseconds per call, which per record was several percent of a processor."""
    return metric.labels(*values)
