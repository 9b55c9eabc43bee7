"""The SQL sink against the real broker, registry, SQLite and PostgreSQL.

Every test runs on both databases. Records are built with the model dataclasses
and encoded by ModelCodec against the session's registry; the sink runs until
it has been idle, or as a subprocess that is SIGKILLed mid-stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.sink.errors import ConversationNotFound, SchemaOutOfDate
from connectors.sink.query import load_state, load_timeline
from connectors.sink.runner import dlq_topic, run_sink
from connectors.sink.store import (
    VERSION_TABLE,
    Store,
    conversation_states,
    head_revision,
    metadata,
    open_store,
    sink_offsets,
    store_at,
    timeline_entries,
)
from convotrail.settings import Settings
from schemas.codecs import ModelCodec
from schemas.headers import (
    DLQ_ERROR,
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
)
from schemas.model import ConversationState, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.sink import conversation_state, timeline_entry
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IDLE = 1.5  # seconds without records after which an in-process sink returns


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sink.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# -- helpers ------------------------------------------------------------------------------

Record = tuple[bytes | None, bytes | None]  # key, value


@dataclass
class Feed:
    """Encodes model records for the two topics and produces them, in order."""

    settings: Settings

    def __post_init__(self) -> None:
        serde = AvroSerde(Registry(self.settings.registry_url))
        names = self.settings.topics
        self.timeline_topic = names.conversation_timeline
        self.state_topic = names.conversation_state
        self.timeline = ModelCodec(serde, self.timeline_topic, TimelineEntry)
        self.states = ModelCodec(serde, self.state_topic, ConversationState)
        self.producer = Producer(self.settings.kafka_config({"enable.idempotence": True}))

    def entries(self, entries: list[TimelineEntry]) -> None:
        self.raw(self.timeline_topic, [(e.conversation_id.encode(), self.timeline.encode(e))
                                       for e in entries])  # fmt: skip

    def snapshots(self, states: list[ConversationState]) -> None:
        self.raw(self.state_topic, [(s.conversation_id.encode(), self.states.encode(s))
                                    for s in states])  # fmt: skip

    def raw(self, topic: str, records: list[Record]) -> None:
        for key, value in records:
            while True:
                try:
                    self.producer.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        assert self.producer.flush(30) == 0


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(settings.kafka_config({"group.id": f"probe-{uuid.uuid4()}"}))
    try:
        ends = {}
        for topic in topics:
            for partition in range(settings.partitions):
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high:
                    ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


def rows(
    store: Store, table: sa.Table, *, leave_out: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    columns = [column for column in table.columns if column.name not in leave_out]
    query = sa.select(*columns).order_by(*table.primary_key.columns)
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def sink(settings: Settings, url: str, group: str, **options: Any) -> Any:
    # Group ids carry the test's topic prefix: tests must not share a group.
    group_id = f"{settings.topics.prefix}{group}"
    return run_sink(settings, url, group_id=group_id, max_idle_seconds=IDLE, **options)


def offsets(store: Store, settings: Settings, group: str) -> dict[tuple[str, int], int]:
    group_id = f"{settings.topics.prefix}{group}"
    with store.engine.connect() as connection:
        found = connection.execute(
            sa.select(sink_offsets).where(sink_offsets.c.consumer_group == group_id)
        )
        return {(row.topic, row.partition): row.next_offset for row in found}


# -- schema ---------------------------------------------------------------------------------


def test_the_migrated_schema_matches_the_table_metadata(database_url: str) -> None:
    with store_at(database_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == head_revision() == "0003"
    # Opening again is a no-op upgrade; readers open without migrating.
    with store_at(database_url), store_at(database_url, migrate=False) as reader:
        assert reader.committed_offsets("any", ["t"]) == {}
    with pytest.raises(ConversationNotFound, match="no timeline for conversation cnv-0 in"):
        load_timeline(database_url, "cnv-0")
    with pytest.raises(ConversationNotFound, match="no state for conversation cnv-0 in"):
        load_state(database_url, "cnv-0")


def test_a_reader_refuses_a_database_the_sink_never_created(tmp_path: Path) -> None:
    with pytest.raises(SchemaOutOfDate, match="no sink database at"):
        open_store(f"sqlite:///{tmp_path / 'missing.db'}", migrate=False)
    assert not (tmp_path / "missing.db").exists()


# -- (a) exact rows, (b) restart ------------------------------------------------------------


def test_rows_are_exact_and_a_restart_resumes_from_the_database(
    topics: Settings, database_url: str, tmp_path: Path
) -> None:
    feed = Feed(topics)
    conversations = ["cnv-1", "cnv-2", "cnv-3", "cnv-4"]
    entries = [timeline_entry(c, n) for c in conversations for n in range(1, 6)]
    replayed = timeline_entry("cnv-1", 2, text="a replay renders differently")
    feed.entries([*entries, entries[0], replayed, entries[7]])
    # Versions out of order, and version 4 again with other content: the first
    # version 4 and then version 5 must win.
    versions = {"cnv-1": [1, 3, 2, 4, 4, 5, 1], "cnv-2": [2, 1], "cnv-3": [1], "cnv-4": [7, 6]}
    feed.snapshots([conversation_state(c, v) for c, vs in versions.items() for v in vs])
    feed.snapshots([conversation_state("cnv-1", 5, subject="replayed version 5")])

    stats = sink(topics, database_url, "sink-a", batch_size=7)
    produced = len(entries) + 3 + sum(map(len, versions.values())) + 1
    assert (stats.records, stats.dead_lettered) == (produced, 0)
    assert stats.batches >= produced // 7

    with store_at(database_url) as store:
        for conversation in conversations:
            expected = [e for e in entries if e.conversation_id == conversation]
            assert store.timeline(conversation) == expected
            assert store.state(conversation) == conversation_state(
                conversation, max(versions[conversation])
            )
        assert store.timeline("cnv-2", account_id="acc-other") == []
        assert store.count(timeline_entries) == len(entries)
        assert store.count(conversation_states) == len(conversations)
        ends = end_offsets(topics, [feed.timeline_topic, feed.state_topic])
        assert offsets(store, topics, "sink-a") == ends
        with store.engine.connect() as connection:
            row = connection.execute(
                sa.select(conversation_states).where(
                    conversation_states.c.conversation_id == "cnv-1"
                )
            ).one()
        assert (row.version, row.status, row.assignee_name, row.tags) == (
            5, "OPEN", "Sam", '["billing", "v5"]'
        )  # fmt: skip
        assert row.last_event_at == conversation_state("cnv-1", 5).last_event_at
        before = rows(store, timeline_entries), rows(store, conversation_states)

    # (b) Restart: only the new records are read (the positions came from the
    # database), and replays of old records change nothing.
    more = [timeline_entry("cnv-5", n) for n in (1, 2)]
    feed.entries([*more, entries[3]])
    feed.snapshots([conversation_state("cnv-5", 2), conversation_state("cnv-1", 3)])
    stats = sink(topics, database_url, "sink-a")
    assert (stats.records, stats.timeline_entries, stats.states) == (5, 3, 2)
    with store_at(database_url) as store:
        assert store.count(timeline_entries) == len(entries) + 2
        assert store.timeline("cnv-5") == more
        assert store.state("cnv-1") == conversation_state("cnv-1", 5)
        assert rows(store, timeline_entries)[: len(before[0])] == before[0]
        assert offsets(store, topics, "sink-a") == end_offsets(
            topics, [feed.timeline_topic, feed.state_topic]
        )

    # The database, not Kafka's committed offsets, is the truth: the same group
    # on an empty database reads everything again.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert sink(topics, fresh, "sink-a").records == produced + 5
    assert load_timeline(fresh, "cnv-5") == more
    assert load_state(fresh, "cnv-4") == conversation_state("cnv-4", 7)


# -- (c) dead letters -------------------------------------------------------------------------


def test_undecodable_records_go_to_the_dlq_and_the_stream_goes_on(
    topics: Settings, database_url: str
) -> None:
    feed = Feed(topics)
    first, second = timeline_entry("cnv-1", 1), timeline_entry("cnv-1", 2)
    feed.entries([first])
    feed.raw(feed.timeline_topic, [(b"cnv-1", b"not avro")])
    feed.entries([second])
    feed.snapshots([conversation_state("cnv-1", 2), conversation_state("cnv-9", 1)])
    # A truncated frame on the state topic, then a tombstone (compaction's delete).
    feed.raw(feed.state_topic, [(b"cnv-1", b"\x00\x00"), (b"cnv-9", None)])

    stats = sink(topics, database_url, "sink-c")
    assert (stats.dead_lettered, stats.tombstones, stats.timeline_entries) == (2, 1, 2)

    with store_at(database_url) as store:
        assert store.timeline("cnv-1") == [first, second]
        assert store.state("cnv-1") == conversation_state("cnv-1", 2)
        assert store.state("cnv-9") is None
        assert offsets(store, topics, "sink-c") == end_offsets(
            topics, [feed.timeline_topic, feed.state_topic]
        )

    source = consume(topics, feed.timeline_topic, 3)
    garbage = next(m for m in source if m.value() == b"not avro")
    (dead,) = consume(topics, dlq_topic(feed.timeline_topic), 1, settle=0.5)
    assert (dead.key(), dead.value()) == (b"cnv-1", b"not avro")
    headers = {name: value.decode() for name, value in dead.headers() or [] if value}
    assert headers[DLQ_ERROR].startswith("bad-magic-byte: magic byte is 110")
    assert headers[DLQ_ERROR_CLASS] == "BadMagicByte"
    assert headers[DLQ_SOURCE_TOPIC] == feed.timeline_topic
    assert headers[DLQ_SOURCE_PARTITION] == str(garbage.partition())
    assert headers[DLQ_SOURCE_OFFSET] == str(garbage.offset())
    (dead_state,) = consume(topics, dlq_topic(feed.state_topic), 1, settle=0.5)
    state_headers = dict(dead_state.headers() or [])
    assert state_headers[DLQ_ERROR_CLASS] == b"TruncatedRecord"


# -- (d) SIGKILL mid-stream ---------------------------------------------------------------------


@dataclass
class SinkProcess:
    settings: Settings
    database_url: str
    logs: Path
    runs: int = 0

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": self.settings.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": self.settings.topics.prefix,
            "CONVOTRAIL_PARTITIONS": str(self.settings.partitions),
            "CONVOTRAIL_HOME": str(self.settings.home),
            # Static membership: a restarted sink takes the killed one's place at
            # once instead of waiting for its session to time out.
            "KAFKA_GROUP_INSTANCE_ID": f"{self.settings.topics.prefix}sink",
        }
        log = (self.logs / f"sink-{self.runs}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "connectors.sink", "--database-url", self.database_url,
             "--group", f"{self.settings.topics.prefix}sink-d",
             "--batch-size", "25", "--batch-timeout", "0.2", *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _timeline_rows(database_url: str) -> int | None:
    try:
        with store_at(database_url, migrate=False) as store:
            return store.count(timeline_entries)
    except Exception:  # not created yet, or mid-migration
        return None


def _kill_when(process: subprocess.Popen[bytes], database_url: str, above: int) -> int:
    found = wait_until(
        lambda: n if (n := _timeline_rows(database_url) or 0) > above else None,
        timeout=60,
        interval=0.02,
        what=f"more than {above} timeline rows",
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return found


def kill_history() -> tuple[list[TimelineEntry], list[ConversationState]]:
    conversations = [f"cnv-{n:03d}" for n in range(40)]
    entries = [timeline_entry(c, seq) for seq in range(1, 51) for c in conversations]
    # Versions 1..25 arrive as 2,1,4,3,...: every other one is out of order.
    states = [
        conversation_state(c, version ^ 1 if version > 1 else version)
        for version in range(1, 26)
        for c in conversations
    ]
    return entries, states


def test_sigkill_mid_stream_neither_loses_nor_doubles_a_row(
    topics: Settings,
    database_url: str,
    tmp_path: Path,
) -> None:
    entries, states = kill_history()
    feed = Feed(topics)
    half = len(entries) // 2
    replays = entries[::10]  # published again after the first kill
    total_entries = len({e.event_id for e in entries})
    process = SinkProcess(topics, database_url, tmp_path)

    feed.entries(entries[:half])
    feed.snapshots(states[: len(states) // 2])
    first = process.start()
    seen_at_first_kill = _kill_when(first, database_url, 0)

    feed.entries([*entries[half:], *replays])
    feed.snapshots(states[len(states) // 2 :])
    second = process.start()
    seen_at_second_kill = _kill_when(second, database_url, seen_at_first_kill)
    assert 0 < seen_at_first_kill < seen_at_second_kill

    with store_at(database_url) as store:
        committed = sum(offsets(store, topics, "sink-d").values())
    last = process.start("--max-idle-seconds", "2")
    log = tmp_path / "sink-3.log"
    assert last.wait(timeout=90) == 0, log.read_text()
    # It resumed exactly where the database said: every partition starts at 0,
    # so it read what was published minus what the positions already covered.
    summary = log.read_text().splitlines()[-1]
    read_again = int(summary.split(" records in ")[0])
    published = len(entries) + len(replays) + len(states)
    assert read_again == published - committed, summary

    # What an uninterrupted run yields: the same records, one sink, another database.
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    assert sink(topics, reference_url, "sink-reference").records == published
    with store_at(database_url) as store, store_at(reference_url) as reference:
        assert store.count(timeline_entries) == total_entries
        assert rows(store, timeline_entries) == rows(reference, timeline_entries)
        assert rows(store, conversation_states, leave_out=("updated_at",)) == rows(
            reference, conversation_states, leave_out=("updated_at",)
        )
        assert store.state("cnv-007") == conversation_state("cnv-007", 25)
        assert store.timeline("cnv-007") == [e for e in entries if e.conversation_id == "cnv-007"]
        ends = end_offsets(topics, [feed.timeline_topic, feed.state_topic])
        assert (
            offsets(store, topics, "sink-d") == ends == offsets(reference, topics, "sink-reference")
        )
    print(
        f"killed at {seen_at_first_kill} and {seen_at_second_kill} of {total_entries} timeline rows"
    )


def test_sigterm_writes_what_was_read_and_exits_cleanly(topics: Settings, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    Feed(topics).entries([timeline_entry("cnv-1", n) for n in range(1, 4)])
    process = SinkProcess(topics, url, tmp_path)
    log = tmp_path / "sink-1.log"
    # Nothing but the stop may commit this batch.
    running = process.start("--batch-timeout", "600", "--log-level", "DEBUG")
    wait_until(lambda: "starts a batch" in log.read_text(), what="a record read")
    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=30) == 0, log.read_text()
    summary = log.read_text().splitlines()[-1]
    read = int(summary.split(" records in 1 batches")[0])
    assert read >= 1 and len(load_timeline(url, "cnv-1")) == read


def test_missing_topics_stop_the_sink_with_one_line(settings: Settings, tmp_path: Path) -> None:
    process = SinkProcess(settings, f"sqlite:///{tmp_path / 'sink.db'}", tmp_path)
    assert process.start().wait(timeout=30) == 1
    last = (tmp_path / "sink-1.log").read_text().splitlines()[-1]
    assert last.startswith("error: topics ") and "run `convotrail topics create` first" in last
