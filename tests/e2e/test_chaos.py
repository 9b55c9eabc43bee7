"""Chaos while events flow: the conversation worker SIGKILLed twice, the sink once,
the broker restarted and PostgreSQL stopped for 20 s, at seeded random moments.

Afterwards, as in test_exactly_once: every output topic holds each expected record
once (read_committed, as an analytics consumer reads it), and PostgreSQL holds
exactly the core's replay of the log. The sink, waiting out the database with
backoff, must have stored everything published before the database came back within
30 s of its return, by itself.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.sink.store import store_at, timeline_entries
from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from convotrail.stack import Endpoints, LocalStack
from schemas.registration import register_contract
from tests.support.exactly_once import check_topics, wait_for_timeline
from tests.support.metrics import ready
from tests.support.oracle import Expected
from tests.support.ports import free_ports
from tests.support.postgres import PostgresServer
from tests.support.sink_process import Sink
from tests.support.topics import Feeder, read_all
from tests.support.waiting import wait_until
from tests.support.worker import start_worker, stop_worker

pytestmark = pytest.mark.e2e

CONVERSATIONS = 700
OUTAGE_SECONDS = 20.0


def _stored(url: str) -> int:
    try:
        with store_at(url, migrate=False) as store:
            return store.count(timeline_entries)
    except Exception:  # the database is still down or not created yet
        return 0


class DatabaseOutage(threading.Thread):
    """Stops PostgreSQL for OUTAGE_SECONDS, then measures how long the sink takes to
    store everything that was on the timeline topic when the database came back."""

    def __init__(self, server: PostgresServer, settings: Settings, url: str) -> None:
        super().__init__(name="database-outage", daemon=True)
        self.server, self.settings, self.url = server, settings, url
        self.caught_up_after: float | None = None
        self.published_at_return = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.server.pause()
            try:
                time.sleep(OUTAGE_SECONDS)
            finally:
                self.server.resume()
            back = time.monotonic()
            topic = self.settings.topics.conversation_timeline
            self.published_at_return = len(read_all(self.settings, topic))
            wait_until(lambda: _stored(self.url) >= self.published_at_return, timeout=120,
                       interval=0.5, what="the sink to catch up")  # fmt: skip
            self.caught_up_after = time.monotonic() - back
        except BaseException as exc:
            self.error = exc


def _check_postgres(url: str, expected: Expected) -> None:
    with store_at(url) as store:
        for conversation_id, state in expected.states.items():
            assert store.state(conversation_id) == state, conversation_id
        stored = {e.event_id: e for c in expected.states for e in store.timeline(c)}
        assert store.count(timeline_entries) == len(expected.timeline)
    assert stored == expected.timeline


def test_kills_a_broker_restart_and_a_database_outage_lose_and_double_nothing(
    topics: Settings,
    tmp_path: Path,
    local_stack: LocalStack,
    kafka_endpoints: Endpoints,
    postgres_server: PostgresServer,
    postgres_url: str,
) -> None:
    if kafka_endpoints.bootstrap_servers != local_stack.endpoints.bootstrap_servers:
        pytest.skip("the session's broker is not ours to restart")
    seed = int(os.environ.get("CONVOTRAIL_TEST_SEED") or time.time())
    print(f"chaos moments from seed {seed} (CONVOTRAIL_TEST_SEED={seed} repeats them)")
    rng = random.Random(seed)
    history = generate(3, CONVERSATIONS, datetime(2026, 11, 1, tzinfo=UTC))
    register_contract(clients.registry(topics), topics.topics)
    (port,) = free_ports(1)
    home = tmp_path / "worker"
    # The last part of the feed waits until the chaos is over, so every fault lands
    # while events flow however slow the machine is.
    feeder = Feeder(topics, history, rate=300, hold_at=0.92)
    sink = Sink(topics, postgres_url, tmp_path)
    worker = start_worker(topics, home, metrics_port=port, log_name="worker-0.log")
    sink.start()
    feeder.start()
    outage = DatabaseOutage(postgres_server, topics, postgres_url)
    moments: list[str] = []

    def kill_worker(run: int) -> None:
        nonlocal worker
        wait_until(lambda: ready(port), timeout=120, interval=0.2, what="the worker ready")
        time.sleep(rng.uniform(0.3, 2.5))
        worker.kill()
        worker.wait()
        moments.append(f"worker killed at {feeder.progress:.2f}")
        worker = start_worker(topics, home, metrics_port=port, log_name=f"worker-{run}.log")

    try:
        kill_worker(1)
        time.sleep(rng.uniform(0.5, 2.0))
        sink.kill()
        moments.append(f"sink killed at {feeder.progress:.2f}")
        sink.start()
        time.sleep(rng.uniform(0.5, 2.0))
        outage.start()  # 20 s without PostgreSQL, while the rest goes on
        moments.append(f"database stopped at {feeder.progress:.2f}")
        time.sleep(rng.uniform(1.0, 4.0))
        local_stack.restart_kafka()
        moments.append(f"broker restarted at {feeder.progress:.2f}")
        kill_worker(2)
        outage.join(timeout=OUTAGE_SECONDS + 180)
        assert outage.error is None, f"{outage.error!r}"
        assert feeder.error is None, f"the feed failed: {feeder.error!r}"
        assert sink.alive(), sink.log.read_text()[-3000:]
        feeder.finish()
        wait_for_timeline(topics, history, timeout=240)
        expected = check_topics(topics, history)
        wait_until(lambda: _stored(postgres_url) >= len(expected.timeline), timeout=60,
                   what="the sink to store every timeline entry")  # fmt: skip
        assert worker.poll() is None, "the worker died"
        assert sink.alive(), "the sink died"
    finally:
        feeder.release()
        stop_worker(worker)
        if sink.alive():
            assert sink.stop() == 0, sink.log.read_text()[-3000:]
    _check_postgres(postgres_url, expected)
    assert outage.caught_up_after is not None
    assert outage.caught_up_after <= 30.0, (
        f"the sink took {outage.caught_up_after:.1f} s after the database came back"
    )
    print(f"{'; '.join(moments)}; {len(history)} events, {len(expected.timeline)} timeline "
          f"entries; the sink stored the {outage.published_at_return} entries published "
          f"before the database's return {outage.caught_up_after:.1f} s after it")  # fmt: skip
    for log in [*home.glob("worker-*.log"), *tmp_path.glob("sink-*.log")]:
        assert "Traceback" not in log.read_text(), log
