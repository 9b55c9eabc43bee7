"""Kafka helpers the benchmarks share: publish, copy and read back records, end offsets,
committed positions of a group, counting, and the bare consumer every ratio is against."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from connectors.publisher import GUARANTEES, PRODUCER_DEFAULTS, EventPublisher
from convotrail.settings import Settings
from schemas.model import ConversationEvent


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as read back from a topic: what a handler sees of it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, Any]]
    timestamp: int


def publish(topics: Settings, events: Iterable[ConversationEvent]) -> tuple[int, float]:
    """Every event through EventPublisher (validated, keyed by conversation, flushed);
    how many and the rate."""
    events = list(events)
    now = max(event.occurred_at for event in events)
    started = time.perf_counter()
    with EventPublisher(topics, clock=lambda: now) as publisher:
        for event in events:
            publisher.publish(event)
        assert publisher.flush(120) == 0
    return len(events), len(events) / (time.perf_counter() - started)


def _consumer(topics: Settings, **overrides: Any) -> Consumer:
    config: dict[str, Any] = {
        "group.id": f"bench-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 20,
        **overrides,
    }
    return Consumer(topics.kafka_config(config))


def end_offsets(topics: Settings, topic: str) -> dict[int, int]:
    """The high watermark of each partition of `topic`."""
    consumer = _consumer(topics)
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(topics.partitions)
        }
    finally:
        consumer.close()


def read_records(topics: Settings, topic: str, ends: dict[int, int]) -> list[RawRecord]:
    """Every record of `topic` below `ends` (per partition), in partition order."""
    consumer = _consumer(topics, **{"enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    found: list[RawRecord] = []
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 120
    try:
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                partition = message.partition() or 0
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.add(partition)
                        continue
                    raise RuntimeError(f"reading {topic}: {error.str()}")
                offset = message.offset() or 0
                if offset >= ends[partition]:
                    done.add(partition)
                    continue
                found.append(RawRecord(partition, offset, message.key(), message.value(),
                                       list(message.headers() or []),  # type: ignore[arg-type]
                                       message.timestamp()[1]))  # fmt: skip
                if offset + 1 >= ends[partition]:
                    done.add(partition)
    finally:
        consumer.close()
    return found


def copy_records(topics: Settings, topic: str, records: list[RawRecord]) -> dict[int, int]:
    """The same bytes (key, value, headers) on the same partitions of another topic;
    its end offsets once every record is acknowledged."""
    producer = Producer(topics.kafka_config({**PRODUCER_DEFAULTS, **GUARANTEES}))
    for record in records:
        while True:
            try:
                producer.produce(topic, key=record.key, value=record.value,
                                 headers=record.headers, partition=record.partition)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    return end_offsets(topics, topic)


def count_records(topics: Settings, topic: str, wanted: Callable[[Any], bool] | None = None) -> int:
    """Committed records on `topic` now (offsets would also count transaction markers)."""
    consumer = _consumer(topics, **{"enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
    found = 0
    at_end: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while len(at_end) < topics.partitions and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                error = message.error()
                if error is None:
                    found += 1 if wanted is None or wanted(message) else 0
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                else:
                    raise RuntimeError(f"counting {topic}: {error.str()}")
    finally:
        consumer.close()
    return found


def first_timestamps(topics: Settings, topic: str) -> list[float]:
    """The CreateTime (epoch seconds) of the first committed record of each partition
    that has one: a processor output's is the moment its handler produced it."""
    consumer = _consumer(topics, **{"enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
    stamps: dict[int, float] = {}
    settled: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(settled) < topics.partitions and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                partition = message.partition() or 0
                if message.error() is None and partition not in stamps:
                    stamps[partition] = message.timestamp()[1] / 1000
                    consumer.pause([TopicPartition(topic, partition)])
                    settled.add(partition)
                elif message.error() is not None:
                    settled.add(partition)  # EOF: nothing on this partition
    finally:
        consumer.close()
    return sorted(stamps.values())


class Positions:
    """A consumer group's committed positions, as the group coordinator has them
    (committed transactions only: pending transactional offsets are not returned)."""

    def __init__(self, topics: Settings) -> None:
        self.admin = AdminClient(topics.kafka_config())

    def committed(self, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in partitions]
        )
        future = self.admin.list_consumer_group_offsets([request], request_timeout=10)[group]
        found = future.result().topic_partitions
        return {tp.partition: tp.offset for tp in found}

    def stable(self, group: str) -> bool:
        """The group has members, each with partitions, and no rebalance under way."""
        try:
            future = self.admin.describe_consumer_groups([group], request_timeout=10)[group]
            description = future.result()
        except Exception:
            return False
        members = description.members or []
        return (
            description.state == ConsumerGroupState.STABLE
            and bool(members)
            and all(m.assignment and m.assignment.topic_partitions for m in members)
        )

    def wait_stable(self, group: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.stable(group):
            if time.monotonic() > deadline:
                raise RuntimeError(f"group {group} not stable in {timeout} s")
            time.sleep(0.2)

    def reached(self, group: str, topic: str, ends: dict[int, int]) -> bool:
        try:
            committed = self.committed(group, topic, ends)
        except Exception:  # the group may not exist yet; asked again on the next beat
            return False
        return all(committed.get(p, -1) >= end for p, end in ends.items())


@dataclass(frozen=True)
class BareRun:
    records: int
    seconds: float
    cpu_seconds: float

    @property
    def per_s(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.records * 1e6


def bare_consume(
    topics: Settings,
    topic: str,
    count: int,
    work: Callable[[bytes | None], Any],
    batch: int = 1000,
) -> BareRun:
    """A bare confluent-kafka consumer: consume(batch), `work` on every value, until
    `count` records; timed from its first batch (this process's CPU, every thread)."""
    consumer = _consumer(topics)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
    seen = 0
    first = cpu_first = 0.0
    deadline = time.monotonic() + 300
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare consumer: {seen} of {count} records of {topic}")
            # Never more than what is left: consume() waits for the whole batch.
            messages = consumer.consume(min(batch, count - seen), timeout=1.0)
            if messages and not first:
                first, cpu_first = time.perf_counter(), time.process_time()
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"bare consumer: {message.error()}")
                work(message.value())
                seen += 1
        return BareRun(seen, time.perf_counter() - first, time.process_time() - cpu_first)
    finally:
        consumer.close()
