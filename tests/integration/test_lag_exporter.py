"""`convotrail lag-exporter` as a process against the session's real broker: groups left
behind the end of a topic (no consumer running) show their exact lag per partition on
/metrics, a transaction's commit marker is not counted as lag, the lag follows new
commits, and /healthz and /readyz answer; with Kafka gone it says so (up 0, errors
counted, not ready) instead of serving stale lag."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from convotrail.group_lag import GroupSpec, LagReader
from convotrail.settings import Settings
from tests.support.group_offsets import commit, produce
from tests.support.metrics import probe, scrape
from tests.support.ports import free_ports
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LABELS = re.compile(r'(\w+)="([^"]*)"')


def _lags(port: int) -> dict[tuple[str, str, int], float]:
    """convotrail_group_lag by (group, topic, partition); {} while the port is not up."""
    try:
        metrics = scrape(port)
    except OSError:
        return {}
    found = {}
    for name, value in metrics.items():
        if name.startswith("convotrail_group_lag{"):
            labels = dict(LABELS.findall(name))
            found[(labels["group"], labels["topic"], int(labels["partition"]))] = value
    return found


def _exporter(settings: Settings, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "SCHEMA_REGISTRY_URL": settings.registry_url,
           "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix,
           "CONVOTRAIL_PARTITIONS": str(settings.partitions)}  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "convotrail", "lag-exporter", "--metrics-port", str(port),
             "--interval", "0.5", *args],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
def stop_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_each_groups_lag_per_partition_is_served_while_nothing_consumes(
    topics: Settings, tmp_path: Path, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    settings, prefix = topics, topics.topics.prefix
    events = settings.topics.conversation_events
    conversations, receipts = f"{prefix}convotrail-conversations", f"{prefix}convotrail-receipts"
    sink = f"{prefix}convotrail-sink"
    produce(settings, events, 0, 10)
    produce(settings, events, 1, 3, transactional=True)  # its commit marker is offset 3
    # A stopped worker: 4 of partition 0's records read; partition 1 read to its last
    # record, so only the marker lies between the commit and the high watermark.
    commit(settings, conversations, {(events, 0): 4, (events, 1): 3})
    port = free_ports(1)[0]
    exporter = _exporter(settings, port, tmp_path / "exporter.log", "--sink-group", sink)
    stop_at_end.append(exporter)

    wait_until(lambda: _lags(port).get((conversations, events, 0)) == 6, timeout=60,
               what="the conversation group's lag on /metrics")  # fmt: skip
    lags = _lags(port)
    assert {key: value for key, value in lags.items() if key[0] == conversations} == {
        (conversations, events, 0): 6, (conversations, events, 1): 0, (conversations, events, 2): 0
    }  # fmt: skip
    # Never committed: everything from the log's start, counted in offsets (3 records
    # and the marker on partition 1).
    assert [lags[(receipts, events, p)] for p in range(3)] == [10, 4, 0]
    # The default groups: the three workers' and the sink's, on the topics each reads.
    assert {group for group, _, _ in lags} == {
        conversations, f"{prefix}convotrail-bounces", receipts, sink
    }  # fmt: skip
    assert {topic for group, topic, _ in lags if group == sink} == {
        settings.topics.conversation_timeline, settings.topics.conversation_state,
        settings.topics.read_receipts, settings.topics.delivery_status,
    }  # fmt: skip
    assert probe(port, "/healthz") == 200 and probe(port, "/readyz") == 200
    metrics = scrape(port)
    assert metrics["convotrail_group_lag_exporter_up"] == 1
    assert metrics["convotrail_group_lag_exporter_errors_total"] == 0
    assert metrics["convotrail_group_lag_exporter_last_success_timestamp_seconds"] > 0

    commit(settings, conversations, {(events, 0): 10})  # the worker caught up
    wait_until(lambda: _lags(port).get((conversations, events, 0)) == 0, timeout=30,
               what="the lag to follow the new commit")  # fmt: skip

    exporter.send_signal(signal.SIGTERM)
    assert exporter.wait(timeout=30) == 0


def test_a_group_named_on_the_command_line_is_measured_on_what_it_reads(
    topics: Settings,
) -> None:
    settings = topics
    timeline = settings.topics.conversation_timeline
    produce(settings, timeline, 2, 5)
    analytics = f"{settings.topics.prefix}analytics"
    commit(settings, analytics, {(timeline, 2): 1})
    reader = LagReader(settings, timeout=10)
    try:
        (lag,) = reader.measure(
            [GroupSpec(analytics, (), "its consumers")],
            candidates=[settings.topics.conversation_events, timeline],
        )
    finally:
        reader.close()
    assert [(p.topic, p.partition, p.committed, p.lag) for p in lag.partitions] == [
        (timeline, 0, None, 0), (timeline, 1, None, 0), (timeline, 2, 1, 4)
    ]  # fmt: skip


def test_without_kafka_it_is_alive_not_ready_and_counts_errors(
    settings: Settings, tmp_path: Path, stop_at_end: list[subprocess.Popen[bytes]]
) -> None:
    closed, port = free_ports(2)
    gone = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
                              "SCHEMA_REGISTRY_URL": settings.registry_url})  # fmt: skip
    exporter = _exporter(gone, port, tmp_path / "exporter.log")
    stop_at_end.append(exporter)

    def errors() -> float:
        try:
            return scrape(port).get("convotrail_group_lag_exporter_errors_total", 0)
        except OSError:
            return 0

    wait_until(lambda: errors() >= 1, timeout=60, what="a failed measurement counted")
    metrics = scrape(port)
    assert metrics["convotrail_group_lag_exporter_up"] == 0
    assert not any(name.startswith("convotrail_group_lag{") for name in metrics)
    assert probe(port, "/healthz") == 200
    assert probe(port, "/readyz") == 503
    exporter.send_signal(signal.SIGTERM)
    assert exporter.wait(timeout=30) == 0
    assert "lag measurement failed: Kafka did not answer" in (tmp_path / "exporter.log").read_text()
