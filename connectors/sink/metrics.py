"""The sink's Prometheus metrics (served with `convotrail sink --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS = Counter("convotrail_sink_records_total", "Records written to the database", ["kind"])
DEAD_LETTERED = Counter("convotrail_sink_dlq_total", "Records the sink sent to a DLQ")
REFUSED = Counter(
    "convotrail_sink_refused_total",
    "Records the database refused (also counted in convotrail_sink_dlq_total)",
    ["topic"],
)
BATCH_SECONDS = Histogram("convotrail_sink_batch_seconds", "Database transaction time per batch")
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
