"""Exactly once on the topics, not only in the database: a read_committed consumer of
every output topic sees each record once and none missing, and the stored result
equals the core's replay of the log, after (a) five SIGKILLs of a busy worker at
random moments, (b) a group going 1 -> 2 -> 3 -> 1 workers under load, (c) a broker
restart under load. Thousands of events each (700 generated conversations, about
13,000 events)."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from convotrail.stack import Endpoints, LocalStack
from schemas.registration import register_contract
from tests.support.exactly_once import check_stored, check_topics, wait_for_timeline
from tests.support.metrics import ready
from tests.support.ports import free_ports
from tests.support.topics import Feeder
from tests.support.waiting import wait_until
from tests.support.worker import start_worker, stop_worker

pytestmark = pytest.mark.e2e

CONVERSATIONS = 700


def _history() -> list:  # type: ignore[type-arg]
    return generate(1, CONVERSATIONS, datetime(2026, 11, 1, tzinfo=UTC))


def _seed() -> int:
    seed = int(os.environ.get("CONVOTRAIL_TEST_SEED") or time.time())
    print(f"kill moments from seed {seed} (CONVOTRAIL_TEST_SEED={seed} repeats them)")
    return seed


def test_five_sigkills_of_a_busy_worker_lose_and_double_nothing(
    topics: Settings, tmp_path: Path
) -> None:
    history = _history()
    register_contract(clients.registry(topics), topics.topics)
    rng = random.Random(_seed())
    home = tmp_path / "worker"
    (port,) = free_ports(1)
    # About a minute of feed: every kill lands while events keep coming.
    feeder = Feeder(topics, history, rate=500, hold_at=0.95)  # the rest after the last kill
    worker = start_worker(topics, home, metrics_port=port, log_name="worker-0.log")
    feeder.start()
    kills = []
    try:
        for run in range(1, 6):
            wait_until(lambda: ready(port), timeout=90, interval=0.2,
                       what="the worker to own partitions again")  # fmt: skip
            time.sleep(rng.uniform(0.2, 2.0))  # a random moment while it works
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills.append(round(feeder.progress, 2))
            worker = start_worker(topics, home, metrics_port=port, log_name=f"worker-{run}.log")
        assert kills[-1] < 1.0, f"the feed ended before the last kill ({kills}): slow it down"
        feeder.finish()
        wait_for_timeline(topics, history, timeout=240)
        expected = check_topics(topics, history)
    finally:
        stop_worker(worker)
    check_stored(topics, expected, tmp_path / "sink.db")
    print(f"killed at {kills} of the feed; {len(history)} events, "
          f"{len(expected.timeline)} timeline entries")  # fmt: skip
    for run in range(6):
        assert "Traceback" not in (home / f"worker-{run}.log").read_text()


def test_a_group_of_one_two_three_and_one_worker_under_load(
    topics: Settings, tmp_path: Path
) -> None:
    history = _history()
    register_contract(clients.registry(topics), topics.topics)
    ports = free_ports(3)
    # About 45 s of feed; its last 10% waits until the group has changed, so the
    # changes happen while events flow even on a slow day.
    feeder = Feeder(topics, history, rate=700, hold_at=0.9)
    workers = {}
    workers["a"] = start_worker(topics, tmp_path / "a", metrics_port=ports[0])
    feeder.start()
    try:
        wait_until(lambda: ready(ports[0]), timeout=60, what="worker a ready")
        for name, port in (("b", ports[1]), ("c", ports[2])):
            time.sleep(2.0)
            workers[name] = start_worker(topics, tmp_path / name, metrics_port=port)
            wait_until(lambda port=port: ready(port), timeout=60, what=f"worker {name} ready")
        time.sleep(2.0)
        for name in ("b", "c"):  # scaled back down while events keep coming
            stop_worker(workers.pop(name))
            time.sleep(1.0)
        assert feeder.error is None, f"the feed failed: {feeder.error!r}"
        changed_at = feeder.progress
        feeder.finish()
        wait_for_timeline(topics, history, timeout=180)
        expected = check_topics(topics, history)
        assert workers["a"].poll() is None, "worker a died"
    finally:
        for process in workers.values():
            stop_worker(process)
    check_stored(topics, expected, tmp_path / "sink.db")
    print(f"the group went back to one worker at {changed_at:.2f} of the feed")
    for name in ("a", "b", "c"):
        log = (tmp_path / name / "worker.log").read_text()
        assert "Traceback" not in log, name
        assert "assigned" in log, name


def test_a_broker_restart_under_load_loses_and_doubles_nothing(
    topics: Settings, tmp_path: Path, local_stack: LocalStack, kafka_endpoints: Endpoints
) -> None:
    if kafka_endpoints.bootstrap_servers != local_stack.endpoints.bootstrap_servers:
        pytest.skip("the session's broker is not ours to restart")
    history = _history()
    register_contract(clients.registry(topics), topics.topics)
    (port,) = free_ports(1)
    feeder = Feeder(topics, history, rate=700, hold_at=0.9)  # the rest after the restart
    worker = start_worker(topics, tmp_path / "worker", metrics_port=port)
    feeder.start()
    try:
        wait_until(lambda: ready(port), timeout=60, what="the worker ready")
        time.sleep(3.0)
        local_stack.restart_kafka()  # mid-transaction, mid-feed
        restarted_at = feeder.progress
        assert restarted_at < 1.0, "the feed ended before the restart: slow it down"
        feeder.finish()
        wait_for_timeline(topics, history, timeout=180)
        expected = check_topics(topics, history)
        assert worker.poll() is None, "the worker did not survive the broker restart"
    finally:
        stop_worker(worker)
    check_stored(topics, expected, tmp_path / "sink.db")
    assert "Traceback" not in (tmp_path / "worker" / "worker.log").read_text()
