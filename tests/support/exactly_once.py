"""What "nothing lost, nothing doubled" means on every output topic, checked as an
analytics consumer would see it (read_committed), and in the database.

The expected result is the pure core's replay of conversation-events as it actually
is (each partition in offset order): where a derived event for another partition
lands depends on timing, and a run must equal an uninterrupted run over *its* log.
That log must hold each published event as often as it was published and each
derived event (reopened, merge received, fired timers) exactly once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from connectors.sink.runner import run_sink
from connectors.sink.store import open_store
from convotrail import clients
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.serde import AvroSerde
from tests.support.oracle import Expected, expected_outcome, outcome_of_log
from tests.support.topics import read_all
from tests.support.waiting import wait_until


def _codec(settings: Settings, topic: str, model: type) -> ModelCodec:  # type: ignore[type-arg]
    return ModelCodec(AvroSerde(clients.registry(settings)), topic, model)


def wait_for_timeline(
    settings: Settings, history: list[m.ConversationEvent], timeout: float
) -> None:
    wanted = len(expected_outcome(history).timeline)
    topic = settings.topics.conversation_timeline
    wait_until(lambda: len(read_all(settings, topic)) >= wanted, timeout=timeout, interval=2.0,
               what=f"{wanted} timeline records")  # fmt: skip


def check_topics(settings: Settings, history: list[m.ConversationEvent]) -> Expected:
    """Every output topic holds each expected record once and nothing else."""
    names = settings.topics
    events = _codec(settings, names.conversation_events, m.ConversationEvent)
    by_partition: dict[int, list[m.ConversationEvent]] = defaultdict(list)
    for message in read_all(settings, names.conversation_events):
        by_partition[message.partition() or 0].append(events.decode(message.value()))
    log = list(by_partition.values())
    expected = outcome_of_log(log)
    # Whatever the interleaving, the same entries exist.
    assert set(expected.timeline) == set(expected_outcome(history).timeline)
    # The log: published events as often as published, derived ones exactly once.
    published = Counter(e.event_id for e in history)
    found = Counter(e.event_id for partition in log for e in partition)
    wrong = {i: n for i, n in found.items() if n != published.get(i, 1)}
    assert not wrong, (
        f"{len(wrong)} events repeated or missing on the log: {list(wrong.items())[:5]}"
    )
    assert set(published) <= set(found)
    # conversation-timeline: each entry once.
    timeline = _codec(settings, names.conversation_timeline, m.TimelineEntry)
    entries = [
        timeline.decode(msg.value()) for msg in read_all(settings, names.conversation_timeline)
    ]
    repeated = [i for i, n in Counter(e.event_id for e in entries).items() if n > 1]
    assert not repeated, f"{len(repeated)} timeline entries repeated: {repeated[:5]}"
    assert {e.event_id: e for e in entries} == expected.timeline
    # conversation-state: no version twice, and the newest is the expected state.
    states = _codec(settings, names.conversation_state, m.ConversationState)
    snapshots = [states.decode(msg.value()) for msg in read_all(settings, names.conversation_state)]
    versions = Counter((s.conversation_id, s.version) for s in snapshots)
    assert not [v for v, n in versions.items() if n > 1], "a state version was produced twice"
    newest: dict[str, m.ConversationState] = {}
    for snapshot in snapshots:
        if snapshot.version > newest.get(snapshot.conversation_id, snapshot).version or (
            snapshot.conversation_id not in newest
        ):
            newest[snapshot.conversation_id] = snapshot
    assert newest == expected.states
    # The DLQ: one record per rejection.
    dead = read_all(settings, names.conversation_events_dlq)
    assert len(dead) == len(expected.rejections)
    return expected


def check_stored(settings: Settings, expected: Expected, database: Path) -> None:
    """The SQL sink stores exactly the expected timelines and states."""
    url = f"sqlite:///{database}"
    run_sink(settings, url, group_id=f"{settings.topics.prefix}sink", max_idle_seconds=3.0)
    with open_store(url) as store:
        for conversation_id, state in expected.states.items():
            assert store.state(conversation_id) == state, conversation_id
        stored = {e.event_id: e for c in expected.states for e in store.timeline(c)}
    assert stored == expected.timeline
