"""The stream runtime itself through the real broker: a handler that raises costs one
aborted transaction and the record goes to the DLQ; a second instance with the same
identity fences the first, which exits with one line; a restart restores only the
changelog's suffix; /healthz, /readyz and /metrics answer as ops expect."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from convotrail import clients
from convotrail.settings import Settings
from processors.runtime.config import RuntimeOptions
from processors.runtime.restore import RESTORED
from processors.runtime.run import run
from processors.runtime.store import StoreSpec
from processors.runtime.task import Record, Task
from processors.runtime.topology import Topology
from schemas import headers as h
from tests.support.metrics import probe, ready, scrape
from tests.support.ports import free_ports
from tests.support.topics import read_all
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class Text:
    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, data: bytes) -> str:
        return data.decode()


def count_words(task: Task[str], record: Record) -> None:
    """Test processor: counts each word (the record value) and emits 'word=count'."""
    word = (record.value() or b"").decode()
    if word == "boom":
        raise ValueError("this record makes the handler fail")
    store = task.store("counts")
    count = int(store.get(word.encode()) or 0) + 1
    store.put(word.encode(), str(count))
    task.send(task.app, word.encode(), f"{word}={count}".encode())


@pytest.fixture
def words(settings: Settings) -> Iterator[Topology[str]]:
    prefix = settings.topics.prefix
    names = [f"{prefix}words", f"{prefix}counts", f"{prefix}words.dlq"]
    admin = clients.admin(settings)
    for future in admin.create_topics([NewTopic(n, 3, 1) for n in names]).values():
        future.result()
    yield Topology(
        app_id=f"{prefix}word-count",
        app=names[1],
        handlers={names[0]: count_words},
        dead_letters={names[0]: names[2]},
        stores=(StoreSpec("counts", Text()),),
        outputs=(names[1],),
    )


def _produce(settings: Settings, topic: str, values: list[str]) -> None:
    producer = clients.producer(settings)
    for value in values:
        producer.produce(topic, key=value.encode(), value=value.encode())
    assert producer.flush(30) == 0


def _run(
    settings: Settings, topology: Topology[str], state: Path, instance: str = "i1",
    http: tuple[str, int] | None = None,
) -> tuple[threading.Thread, threading.Event]:  # fmt: skip
    stop = threading.Event()
    options = RuntimeOptions(instance_id=instance, state_dir=state)
    thread = threading.Thread(target=run, args=(settings, topology, options),
                              kwargs={"stop": stop, "http": http}, daemon=True)  # fmt: skip
    thread.start()
    return thread, stop


def _produce_demo(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, "-m", "convotrail", "demo-events", "--conversations", "20",
                    "-o", str(events)], check=True, capture_output=True)  # fmt: skip
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "SCHEMA_REGISTRY_URL": settings.registry_url,
           "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix}  # fmt: skip
    subprocess.run([sys.executable, "-m", "convotrail", "produce", "-q", "-f", str(events)],
                   env=env, check=True)  # fmt: skip


def test_a_failing_handler_aborts_once_and_its_record_goes_to_the_dlq(
    settings: Settings, words: Topology[str], tmp_path: Path
) -> None:
    source, output, dlq = words.inputs[0], words.app, words.dead_letters[words.inputs[0]]
    values = [f"w{n % 7}" for n in range(300)]
    values[40] = values[200] = "boom"
    _produce(settings, source, values)
    thread, stop = _run(settings, words, tmp_path / "state")
    try:
        wait_until(lambda: len(read_all(settings, output)) >= 298, timeout=60,
                   what="every counted word")  # fmt: skip
    finally:
        stop.set()
        thread.join(30)
    counted = [m.value().decode() for m in read_all(settings, output)]
    # Each word counted once per occurrence: no count twice, none skipped.
    assert sorted(Counter(counted).values()) == [1] * len(counted)
    expected = Counter(v for v in values if v != "boom")
    for word, total in expected.items():
        assert {f"{word}={n}" for n in range(1, total + 1)} <= set(counted)
    dead = read_all(settings, dlq)
    assert [m.value() for m in dead] == [b"boom", b"boom"]
    headers = dict(dead[0].headers() or [])
    assert headers[h.DLQ_ERROR_CLASS] == b"ProcessingError"
    assert b"this record makes the handler fail" in headers[h.DLQ_ERROR]


def test_a_restart_restores_only_what_was_written_since_the_checkpoint(
    settings: Settings, words: Topology[str], tmp_path: Path
) -> None:
    source, output = words.inputs[0], words.app
    _produce(settings, source, [f"first{n}" for n in range(200)])
    thread, stop = _run(settings, words, tmp_path / "state")
    wait_until(lambda: len(read_all(settings, output)) >= 200, timeout=60, what="first run")
    stop.set()
    thread.join(30)
    # Another instance moves the store on meanwhile (the changelog grows by 100).
    _produce(settings, source, [f"second{n}" for n in range(100)])
    thread, stop = _run(settings, words, tmp_path / "other", instance="i2")
    wait_until(lambda: len(read_all(settings, output)) >= 300, timeout=60, what="other run")
    stop.set()
    thread.join(30)
    before = RESTORED.labels(words.app_id)._value.get()
    _produce(settings, source, [f"first{n}" for n in range(200)])
    thread, stop = _run(settings, words, tmp_path / "state")
    try:
        wait_until(lambda: len(read_all(settings, output)) >= 500, timeout=60, what="restart")
    finally:
        stop.set()
        thread.join(30)
    # Back on its own disk, the first instance read the 100 records the other wrote.
    assert RESTORED.labels(words.app_id)._value.get() - before == 100
    assert {f"first{n}=2" for n in range(200)} <= {
        m.value().decode() for m in read_all(settings, output)
    }


def test_a_second_worker_with_the_same_identity_fences_the_first(
    topics: Settings, tmp_path: Path
) -> None:
    from tests.support.worker import start_worker, stop_worker

    same = {"CONVOTRAIL_INSTANCE_ID": "twin"}
    first_port, port = free_ports(2)
    first = start_worker(topics, tmp_path / "one", extra_env=same, metrics_port=first_port)
    try:
        # Ready: its producer has initialised its transactions (the identity is taken).
        wait_until(lambda: ready(first_port), timeout=60, what="the first worker ready")
        second = start_worker(topics, tmp_path / "two", extra_env=same, metrics_port=port)
        try:
            # Once the second has initialised its transactions (ready), the first is a
            # zombie; it learns so at its next transaction: give it work.
            wait_until(lambda: ready(port), timeout=60, what="the second worker ready")
            _produce_demo(topics, tmp_path)
            first.wait(timeout=90)
            log = (tmp_path / "one" / "worker.log").read_text()
            assert first.returncode == 1
            # Fenced by the producer's transactional id, at its next transaction.
            assert re.search(r"error: fenced: another process .*-twin", log), log[-2000:]
            assert "Traceback" not in log
            wait_until(lambda: ready(port), timeout=60, what="the second worker ready")
        finally:
            stop_worker(second)
    finally:
        stop_worker(first)


def test_health_and_metrics_endpoints(topics: Settings, tmp_path: Path) -> None:
    from schemas.registration import register_contract
    from tests.support.worker import running_worker

    register_contract(clients.registry(topics), topics.topics)
    (port,) = free_ports(1)
    with running_worker(topics, tmp_path / "w", metrics_port=port):
        wait_until(lambda: probe(port, "/healthz") == 200, timeout=60, what="/healthz")
        wait_until(lambda: ready(port), timeout=60, what="/readyz")
        assert probe(port, "/nowhere") == 404
        _produce_demo(topics, tmp_path)
        app = f'app="{topics.topics.prefix}convotrail-conversations"'
        processed = f"convotrail_records_processed_total{{{app}}}"

        def reported() -> dict[str, float] | None:
            found = scrape(port)
            lag = any(name.startswith("convotrail_consumer_lag{") for name in found)
            return found if found.get(processed, 0) > 0 and lag else None  # lag: every 2 s

        metrics = wait_until(reported, timeout=60, what="processed records and lag on /metrics")
        names = {name.split("{")[0] for name in metrics}
        for wanted in (
            "convotrail_consumer_lag",
            "convotrail_commit_seconds_bucket",
            "convotrail_transactions_total",
            "convotrail_record_latency_seconds_bucket",
            "convotrail_partitions_assigned",
            "convotrail_records_produced_total",
            "convotrail_build_info",
        ):
            assert wanted in names, wanted  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert b'"ready": true' in response.read()
