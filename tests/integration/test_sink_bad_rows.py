"""Rows the database refuses or may mangle: each goes to the sink's DLQ with the database's
reason, or is stored exactly; the rest of its batch is stored; the sink never stops.

One batch per database holds all 73 cases of tests/support/bad_rows.py, each
with a good record beside it, through the real broker, registry and database.
"""

from __future__ import annotations

import uuid
from collections import Counter as Tally
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from connectors.sink.batch import SinkBatch
from connectors.sink.failures import Failure, classify
from connectors.sink.runner import dlq_topic, run_sink
from connectors.sink.store import Store, conversation_states, store_at, timeline_entries
from convotrail.settings import Settings
from schemas.codecs import ModelCodec
from schemas.headers import DLQ_ERROR, DLQ_ERROR_CLASS, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION
from schemas.model import ConversationState, DeliveryStatus, ReadReceipt, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.bad_rows import LONE_SURROGATE_UTF8, SNOWMAN, Case, cases
from tests.support.kafka import consume
from tests.support.sink import conversation_state, timeline_entry

pytestmark = pytest.mark.integration

Source = tuple[str, int, int]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'sink.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return "postgresql", url


class Publisher:
    """Produces model records (or raw bytes) and remembers where each one landed."""

    def __init__(self, settings: Settings) -> None:
        names = settings.topics
        serde = AvroSerde(Registry(settings.registry_url))
        self.topics = {
            "timeline": names.conversation_timeline,
            "state": names.conversation_state,
            "receipt": names.read_receipts,
            "status": names.delivery_status,
        }
        self.codecs: dict[str, ModelCodec[Any]] = {
            "timeline": ModelCodec(serde, names.conversation_timeline, TimelineEntry),
            "state": ModelCodec(serde, names.conversation_state, ConversationState),
            "receipt": ModelCodec(serde, names.read_receipts, ReadReceipt),
            "status": ModelCodec(serde, names.delivery_status, DeliveryStatus),
        }
        self.producer = Producer(settings.kafka_config({"enable.idempotence": True}))
        self.landed: dict[str, Source] = {}

    def send(self, label: str, kind: str, key: str, value: bytes | None) -> None:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            assert error is None, error
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            self.landed[label] = (topic, partition, offset)

        self.producer.produce(self.topics[kind], key=key.encode(), value=value,
                              on_delivery=on_delivery)  # fmt: skip
        self.producer.poll(0)

    def case(self, case: Case) -> None:
        if case.record is None:
            self.send(case.name, "state", case.key, None)
            return
        value = self.codecs[case.topic_kind].encode(case.record)
        if case.lone_surrogate:
            assert value.count(SNOWMAN.encode()) == 1
            value = value.replace(SNOWMAN.encode(), LONE_SURROGATE_UTF8)
        self.send(case.name, case.topic_kind, _key(case), value)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _key(case: Case) -> str:
    record = case.record
    assert record is not None
    return record.conversation_id


def stored_exactly(store: Store, case: Case) -> bool:
    record = case.record
    if record is None:
        return store.state(case.key) is None
    if isinstance(record, TimelineEntry):
        return record in store.timeline(record.conversation_id)
    if isinstance(record, ConversationState):
        return store.state(record.conversation_id) == record
    if isinstance(record, ReadReceipt):
        return record in store.receipts(record.message_id)
    return record in store.delivery(record.message_id)


def _dead_letters_counted(app: str, reason: str | None = None) -> float:
    """convotrail_dlq_records_total of one app, summed over topics (and reasons)."""
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "convotrail_dlq_records"
        for sample in family.samples
        if sample.name == "convotrail_dlq_records_total"
        and sample.labels["app"] == app
        and reason in (None, sample.labels["reason"])
    )


def test_every_bad_row_is_dead_lettered_or_stored_exactly_and_the_batch_goes_on(
    topics: Settings, database: tuple[str, str]
) -> None:
    dialect, url = database
    catalogue = cases()
    assert len(catalogue) >= 50 and len({c.name for c in catalogue}) == len(catalogue)
    publisher = Publisher(topics)
    goods = []
    for n, case in enumerate(catalogue):
        publisher.case(case)
        good = timeline_entry(f"cnv-good-{n}", 1)
        goods.append(good)
        publisher.send(f"good {n}", "timeline", good.conversation_id,
                       publisher.codecs["timeline"].encode(good))  # fmt: skip
    good_state = conversation_state("cnv-good-state", 3)
    publisher.send("good state", "state", "cnv-good-state",
                   publisher.codecs["state"].encode(good_state))  # fmt: skip
    publisher.flush()

    group = f"{topics.topics.prefix}sink-bad-{uuid.uuid4().hex[:6]}"
    stats = run_sink(
        topics, url, group_id=group, batch_size=10_000, batch_timeout=2.0, max_idle_seconds=2.0
    )

    published = 2 * len(catalogue) + 1
    assert stats.records == published, stats.describe()
    # The sink stayed up and wrote everything in a couple of batches, not one per row.
    assert stats.batches <= 3, stats.describe()

    # Every dead letter names its source record and the reason.
    by_source = {source: label for label, source in publisher.landed.items()}
    letters: dict[str, dict[str, str]] = {}
    for kind, topic in publisher.topics.items():
        expected = stats.dlq_by_topic.get(dlq_topic(topic), 0)
        found = consume(topics, dlq_topic(topic), expected, settle=1.0) if expected else []
        assert len(found) == expected, (kind, len(found), expected)
        for message in found:
            headers = _headers(message)
            source = (topic, int(headers[DLQ_SOURCE_PARTITION]), int(headers[DLQ_SOURCE_OFFSET]))
            label = by_source[source]
            assert label not in letters, f"{label} dead-lettered twice"
            letters[label] = headers
            # The dead letter is the record exactly as consumed.
            assert message.value() is not None or label == "state tombstone keyed with NUL"

    assert not [label for label in letters if label.startswith("good")], letters.keys()
    refused = {label for label, h in letters.items() if h[DLQ_ERROR].startswith("database-refused")}
    assert stats.dead_lettered == len(letters)
    assert stats.refused == len(refused)
    # The one DLQ counter agrees with the stats and the DLQ topics (the group is new).
    assert _dead_letters_counted(group, "database-refused") == len(refused)
    assert _dead_letters_counted(group) == len(letters)

    outcome: dict[str, str] = {}
    with store_at(url) as store:
        for case in catalogue:
            if case.name in letters:
                headers = letters[case.name]
                assert case.name in refused or case.lone_surrogate, (case.name, headers)
                why = headers[DLQ_ERROR].split(": ", 1)[1]
                assert why and len(why.encode()) <= 1024 + 8, case.name
                outcome[case.name] = f"dead-lettered ({headers[DLQ_ERROR_CLASS]}: {why[:60]})"
                assert not case.must_store, (case.name, headers[DLQ_ERROR])
            else:
                assert stored_exactly(store, case), f"{case.name}: neither refused nor stored"
                outcome[case.name] = "stored exactly"
                assert dialect not in case.refused_by, f"{case.name}: {dialect} should refuse it"
            if case.lone_surrogate:
                assert case.name in letters, case.name
        # The rest of each batch is stored, positions included.
        for good in goods:
            assert store.timeline(good.conversation_id) == [good]
        assert store.state("cnv-good-state") == good_state
        assert store.count(timeline_entries) >= len(goods)
        assert store.count(conversation_states) >= 1
        assert store.committed_offsets(group, publisher.topics.values()) == {
            (topic, partition): offset + 1
            for (topic, partition), offset in _last_offsets(publisher.landed.values()).items()
        }
    print(dialect, dict(Tally(v.split(" (")[0] for v in outcome.values())))
    for name, result in outcome.items():
        print(f"  {dialect}: {name}: {result}")


def _headers(message: Message) -> dict[str, str]:
    found = message.headers() or []
    pairs = found.items() if isinstance(found, dict) else found
    return {
        name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""
        for name, value in pairs
    }


def _last_offsets(sources: Any) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for topic, partition, offset in sources:
        last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    return last


def test_the_store_finds_refused_records_under_savepoints_and_keeps_the_rest(
    database: tuple[str, str],
) -> None:
    # A lone surrogate cannot reach the store through Kafka (the decoder refuses it),
    # but built in memory it is refused by both drivers: this exercises the savepoint
    # path on SQLite too, which refuses nothing the wire can carry.
    _dialect, url = database
    topic = "conversation-timeline"
    good = [timeline_entry("cnv-1", n) for n in (1, 3)]
    bad = timeline_entry("cnv-1", 2, text="lone \ud800 surrogate")
    batch = SinkBatch("g")
    for offset, entry in enumerate([good[0], bad, good[1]]):
        batch.add_timeline_entry(entry, topic, 0, offset)
    with store_at(url) as store:
        with pytest.raises(Exception) as refused_whole:
            store.apply(batch)
        assert classify(refused_whole.value) is Failure.REFUSED
        assert store.count(timeline_entries) == 0  # all or nothing
        refused = store.refusals(batch.singles())
        assert [source for source, _error in refused] == [(topic, 0, 1)]
        assert store.count(timeline_entries) == 0  # the probe was rolled back
        store.apply(batch.without([(topic, 0, 1)]))
        assert store.timeline("cnv-1") == good
        assert store.committed_offsets("g", [topic]) == {(topic, 0): 3}
