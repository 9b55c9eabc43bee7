"""The metrics every kind of convotrail process shares, defined once (docs/metrics.md).

- `convotrail_build_info{version}`: 1 in every process, so a dashboard can tell which
  version runs where (and `up` joined with it, which processes run at all).
- `convotrail_dlq_records_total{app,topic,reason}`: THE dead-letter counter. The stream
  runtime counts each dead letter when its transaction commits, the sink when the batch
  whose positions pass it commits, so a record dead-lettered again after an abort or a
  retry counts once. `app` is the processor's app id or the sink's group, `topic` the
  source topic, `reason` a closed set per writer (the `dlq.error` tag).
- `convotrail_consumer_lag{app,topic,partition}`: records in an input partition not yet
  consumed, reported by each consuming process (workers and the sink) from its own
  position. `convotrail lag-exporter` measures committed offsets from outside.

Cardinality is bounded: apps, topics, partitions and closed reason sets; nothing per
account, conversation or message.
"""

from __future__ import annotations

import contextlib

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest

from convotrail import __version__

BUILD_INFO = Gauge("convotrail_build_info", "Always 1; the label says the version", ["version"])
BUILD_INFO.labels(__version__).set(1)

DLQ_RECORDS = Counter(
    "convotrail_dlq_records_total",
    "Records sent to a dead-letter topic, by consuming app, source topic and reason",
    ["app", "topic", "reason"],
)

LAG = Gauge(
    "convotrail_consumer_lag",
    "Records in an input partition not yet consumed by this process",
    ["app", "topic", "partition"],
)


def report_lag(app: str, consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """High watermark minus position, from the consumer's cached fetch responses (no
    request to the broker: cheap enough to call every couple of seconds).

    `partitions` carry the offset consumption started from (or OFFSET_BEGINNING): a
    partition none of whose records has been consumed yet has no position, and its lag
    counts from there (an idle partition after a restart is at 0, not missing)."""
    for tp in partitions:
        try:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            (position,) = consumer.position([TopicPartition(tp.topic, tp.partition)])
        except KafkaException:
            continue
        at = position.offset
        if at < 0:
            at = tp.offset if tp.offset >= 0 else low if tp.offset == OFFSET_BEGINNING else -1
        if high >= 0 and at >= 0:
            LAG.labels(app, tp.topic, str(tp.partition)).set(max(0, high - at))


def forget_lag(app: str, partitions: list[TopicPartition]) -> None:
    """Partitions that left this process: their lag is another consumer's to report."""
    for tp in partitions:
        with contextlib.suppress(KeyError):
            LAG.remove(app, tp.topic, str(tp.partition))


def exposition() -> tuple[bytes, str]:
    """The process's metrics in Prometheus's text format, and its content type: what
    every /metrics endpoint serves (the runtime's, the sink's, the intake's, the API's)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
