"""The sink's Prometheus metrics (served with `convotrail sink --metrics-port`).

Shared with the workers (convotrail/metrics.py): `convotrail_dlq_records_total{app,
topic,reason}` (app = the sink's group; reason: the dead letter's tag, a closed set:
the decoding errors' reasons, refused-record, unkeyed-tombstone, database-refused) and
`convotrail_consumer_lag{app,topic,partition}`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
