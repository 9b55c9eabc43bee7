"""The worker killed mid-stream, and two workers sharing the partitions through
rebalances: both must store exactly what one uninterrupted run stores."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.publisher import EventPublisher
from connectors.sink.runner import run_sink
from connectors.sink.store import open_store
from connectors.traffic import generate
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.oracle import NOW, Expected, expected_outcome, outcome_of_log
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, start_worker, stop_worker

pytestmark = pytest.mark.e2e


def _publish(settings: Settings, events: list[m.ConversationEvent]) -> None:
    with EventPublisher(settings, clock=lambda: NOW) as publisher:
        for event in events:
            publisher.publish(event)


def _timeline_ids(settings: Settings, count: int, timeout: float) -> list[str]:
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)),
                       settings.topics.conversation_timeline, m.TimelineEntry)  # fmt: skip
    messages = consume(settings, settings.topics.conversation_timeline, count, timeout=timeout,
                       settle=2.0)  # fmt: skip
    return [codec.decode(message.value()).event_id for message in messages]


def _log_as_it_is(settings: Settings) -> list[list[m.ConversationEvent]]:
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)),
                       settings.topics.conversation_events, m.ConversationEvent)  # fmt: skip
    messages = consume(settings, settings.topics.conversation_events, 10**6, timeout=8)
    partitions: dict[int, list[tuple[int, m.ConversationEvent]]] = {}
    for message in messages:
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        partitions.setdefault(partition, []).append((offset, codec.decode(message.value())))
    return [[event for _, event in sorted(events)] for events in partitions.values()]


def _assert_stored_as_expected(settings: Settings, expected: Expected, tmp_path: Path) -> None:
    # Nothing lost on the topic. After a crash the timeline topic may repeat entries
    # (reprocessing from the last committed offsets re-emits them, same event_id);
    # the stored result is what must not differ.
    wanted = set(expected.timeline)
    found: set[str] = set()

    def everything_arrived() -> bool:
        found.update(_timeline_ids(settings, 10**6, timeout=5))
        return found >= wanted

    try:
        wait_until(everything_arrived, timeout=150, interval=1.0,
                   what="every expected timeline entry")  # fmt: skip
    except AssertionError:
        missing = sorted(wanted - found)
        message = f"{len(missing)} timeline entries never arrived: {missing[:10]}"
        raise AssertionError(message) from None
    ids = set(_timeline_ids(settings, 10**6, timeout=5))
    assert ids == wanted
    # Nothing lost or doubled in the database.
    url = f"sqlite:///{tmp_path / 'convotrail.db'}"
    run_sink(settings, url, group_id=f"{settings.topics.prefix}sink", max_idle_seconds=3.0)
    with open_store(url) as store:
        for conversation_id, state in expected.states.items():
            assert store.state(conversation_id) == state, conversation_id
        stored = {e.event_id: e for c in expected.states for e in store.timeline(c)}
    assert stored == expected.timeline


def test_a_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    topics: Settings, tmp_path: Path
) -> None:
    history = generate(21, 120, datetime(2026, 11, 1, tzinfo=UTC))
    expected = expected_outcome(history)
    register_contract(Registry(topics.registry_url), topics.topics)
    _publish(topics, history)
    home = tmp_path / "worker"
    worker = start_worker(topics, home)
    try:
        # Kill it once some outputs are committed, long before all are.
        timeline = topics.topics.conversation_timeline
        wait_until(
            lambda: len(consume(topics, timeline, 200, timeout=2)) >= 200,
            timeout=120, interval=0.5, what="the first committed timeline entries",
        )  # fmt: skip
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert len(_timeline_ids(topics, len(expected.timeline), timeout=3)) < len(
            expected.timeline
        )
    finally:
        stop_worker(worker)
    with running_worker(topics, home):  # same state directory, as a restarted pod would have
        _assert_stored_as_expected(topics, expected, tmp_path)


def _assigned(home: Path, process: object) -> bool:
    log = (home / "worker.log").read_bytes().lower()
    return b"assigned" in log or process.poll() is not None


def test_two_workers_share_the_partitions_and_state_moves_with_them(
    topics: Settings, tmp_path: Path
) -> None:
    history = generate(22, 90, datetime(2026, 11, 1, tzinfo=UTC))
    expected = expected_outcome(history)
    register_contract(Registry(topics.registry_url), topics.topics)
    third = len(history) // 3
    home_a, home_b = tmp_path / "worker-a", tmp_path / "worker-b"
    first = start_worker(topics, home_a)
    try:
        _publish(topics, history[:third])
        _timeline_ids(topics, len(expected_outcome(history[:third]).timeline), timeout=120)
        # A second worker joins: the group rebalances and some partitions move to it,
        # their table state restored from the changelog A wrote.
        with running_worker(topics, home_b) as second:
            wait_until(lambda: _assigned(home_b, second), timeout=60,
                       what="the second worker's partition assignment")  # fmt: skip
            _publish(topics, history[third : 2 * third])
            # A leaves mid-stream (a rolling restart): B takes every partition back,
            # with the state A built for the ones B never had.
            _timeline_ids(topics, len(expected_outcome(history[: third + third // 2]).timeline),
                          timeout=120)  # fmt: skip
            stop_worker(first)
            _publish(topics, history[2 * third :])
            _assert_stored_as_expected(topics, outcome_of_log(_log_as_it_is(topics)), tmp_path)
            # Whatever the interleaving, every expected entry is there and no other.
            assert set(outcome_of_log(_log_as_it_is(topics)).timeline) == set(expected.timeline)
            assert second.poll() is None, "the second worker died"
    finally:
        stop_worker(first)
    log = (home_b / "worker.log").read_text()
    # The partitions it took over came with their table state, read from the changelog.
    assert "Highwater for active changelog partitions" in log
    assert "Traceback" not in log
    assert "Traceback" not in (home_a / "worker.log").read_text()
