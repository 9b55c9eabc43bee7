"""`convotrail lag-exporter`: the consumer groups' committed-offset lag, for Prometheus.

Every consuming process reports its own lag (convotrail_consumer_lag), but a process
that is down reports nothing, which is exactly when lag matters. This process
measures the groups from outside (group_lag.py: Kafka's committed offsets against the
high watermarks, transaction markers not counted) every `interval` seconds and serves
the last measurement:

- convotrail_group_lag{group,topic,partition}: records behind (sums per group or topic
  are PromQL's job, so there is one metric);
- convotrail_group_lag_exporter_up: 1 when the last measurement succeeded for every
  group, else 0 (the lag series of a failed measurement are withdrawn, not left stale);
- convotrail_group_lag_exporter_errors_total: failed measurements (and groups);
- convotrail_group_lag_exporter_last_success_timestamp_seconds.

The sink keeps its positions in its database and commits them to Kafka right after
each database commit, for this exporter; so its lag here is at most one batch above
the database's (`convotrail doctor` reads the database's own).

/healthz: the loop is alive; /readyz: the last measurement succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from convotrail.group_lag import GroupLag, GroupSpec, LagReader, LagUnavailable, PartitionLag
from convotrail.settings import Settings
from convotrail.topics import topic_specs

log = logging.getLogger(__name__)

DEFAULT_PORT = 9102

ERRORS = Counter(
    "convotrail_group_lag_exporter_errors_total",
    "Lag measurements (or groups within one) that failed: Kafka did not answer.",
)
UP = Gauge(
    "convotrail_group_lag_exporter_up",
    "1 when the last lag measurement succeeded for every group, else 0.",
)
LAST_SUCCESS = Gauge(
    "convotrail_group_lag_exporter_last_success_timestamp_seconds",
    "Unix time of the last lag measurement that succeeded for every group.",
)


class LagCollector(Collector):
    """Serves the last measurement as convotrail_group_lag; replaced whole each time, so
    a partition or group that is gone leaves no stale series."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lags: tuple[PartitionLag, ...] = ()

    def update(self, groups: Sequence[GroupLag]) -> None:
        lags = tuple(p for group in groups for p in group.partitions)
        with self._lock:
            self._lags = lags

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            lags = self._lags
        family = GaugeMetricFamily(
            "convotrail_group_lag",
            "Records a consumer group is behind on a partition: the high watermark minus "
            "its committed offset (0 when only transaction markers lie between), measured "
            "from outside by convotrail lag-exporter.",
            labels=["group", "topic", "partition"],
        )
        for lag in lags:
            family.add_metric([lag.group, lag.topic, str(lag.partition)], lag.lag)
        yield family


class LagExporter:
    """The measuring loop and what /healthz and /readyz say about it."""

    def __init__(self, settings: Settings, groups: Sequence[GroupSpec], interval: float) -> None:
        self.groups = tuple(groups)
        # A group named on the command line is measured on the project's topics it reads.
        self.topics = tuple(spec.name for spec in topic_specs(settings))
        self.interval = interval
        # A measurement must end well before the next is due; 2 s at least, 10 at most.
        self.reader = LagReader(settings, timeout=max(2.0, min(10.0, 2 * interval)))
        self.collector = LagCollector()
        self.beat = time.monotonic()
        self.status: tuple[bool, str] = (False, "no measurement yet")

    def measure_once(self) -> bool:
        try:
            groups = self.reader.measure(self.groups, candidates=self.topics)
        except LagUnavailable as exc:
            self._failed(f"Kafka did not answer: {exc}", 1)
            self.collector.update([])
            return False
        failed = [group for group in groups if group.error is not None]
        self.collector.update([group for group in groups if group.error is None])
        if failed:
            reasons = "; ".join(f"group {g.spec.group}: {g.error}" for g in failed)
            self._failed(reasons, len(failed))
            return False
        UP.set(1)
        LAST_SUCCESS.set(time.time())
        self.status = (True, f"measured {len(groups)} group(s)")
        return True

    def _failed(self, reason: str, count: int) -> None:
        ERRORS.inc(count)
        UP.set(0)
        self.status = (False, reason)
        log.warning("lag measurement failed: %s", reason)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.beat = time.monotonic()
                self.measure_once()
                deadline = time.monotonic() + self.interval
                # Beat while waiting, so that a long interval never looks like a hang.
                while not stop.is_set() and time.monotonic() < deadline:
                    self.beat = time.monotonic()
                    stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            self.reader.close()

    def since_beat(self) -> float:
        return time.monotonic() - self.beat


def serve(
    settings: Settings,
    groups: Sequence[GroupSpec],
    interval: float,
    host: str,
    port: int,
    stop: threading.Event,
) -> None:
    """Measure every `interval` seconds and serve /metrics, /healthz, /readyz until `stop`."""
    import convotrail.metrics  # noqa: F401  (convotrail_build_info, as in every process)
    from convotrail.health import Probe
    from convotrail.health import serve as serve_http

    exporter = LagExporter(settings, groups, interval)
    REGISTRY.register(exporter.collector)
    UP.set(0)
    server = serve_http(host, port, Probe(exporter.since_beat, lambda: exporter.status))
    log.info(
        "lag of %s every %.1fs on http://%s:%d/metrics",
        ", ".join(g.group for g in groups), interval, host, server.server_address[1],
    )  # fmt: skip
    try:
        exporter.run(stop)
    finally:
        server.shutdown()
        REGISTRY.unregister(exporter.collector)
