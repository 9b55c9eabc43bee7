"""A record on the wrong partition for its key never reaches a handler.

Every producer of the project partitions by Java's murmur2 of the record key
(`schemas.keys.partition_of`), and a processor's memory of a key lives on the
partition the key hashes to. A record keyed right but written elsewhere (a raw
producer with librdkafka's default crc32 partitioner, an explicit partition)
would be handled by a task that holds no memory of its conversation: applied to
a fresh memory it splits the conversation in two, and a creation that lands
there makes every later, correct event of it "not-created" for good. So the
runtime checks the partition before any handler runs and dead-letters the record
with reason `wrong-partition` and the partition it belongs on; it never touches
state. (Forwarding it to the right partition would be kinder during a key-format
upgrade, but it reorders the conversation silently; a dead letter is auditable
and can be re-published by hand.)

Cost: one murmur2 per record, skipped for keys seen recently (a bounded cache:
a conversation's events share their key), and the partition count of each input
topic is asked of the broker once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException
from prometheus_client import Counter

from processors.runtime.errors import AbortableError
from processors.runtime.task import Record, Task
from schemas import keys
from schemas.headers import DLQ_EXPECTED_PARTITION

log = logging.getLogger(__name__)

WRONG_PARTITION = "wrong-partition"
CACHE_SIZE = 65536

SKIPPED = Counter(
    "convotrail_skipped_records_total",
    "Input records not handled by this processor because another one dead-letters them",
    ["app", "topic", "reason"],
)


class PartitionGuard:
    """Which partition a keyed record belongs on, per input topic."""

    def __init__(self, partition_count: Callable[[str], int]) -> None:
        self._partition_count = partition_count
        self._counts: dict[str, int] = {}
        self._placed: dict[tuple[str, bytes], int] = {}

    def misplaced(self, topic: str, partition: int, key: bytes) -> tuple[int, int] | None:
        """(expected partition, partition count) when the record is on another one."""
        slot = (topic, key)
        expected = self._placed.get(slot)
        if expected is None:
            count = self._counts.get(topic)
            if count is None or partition >= count:  # unknown, or the topic grew
                count = self._counts[topic] = self._partition_count(topic)
            expected = keys.partition_of(key, count)
            if len(self._placed) >= CACHE_SIZE:
                self._placed.clear()
            self._placed[slot] = expected
        if expected == partition:
            return None
        return expected, self._counts[topic]


def describe(partition: int, expected: int, count: int) -> str:
    return (
        f"its key hashes (murmur2) to partition {expected} of {count}, but it was written "
        f"to partition {partition}: the producer does not partition like Kafka's Java "
        "clients (librdkafka: partitioner=murmur2_random)"
    )


def counter(consumer: Consumer) -> Callable[[str], int]:
    """A topic's partition count from the broker's metadata (asked once per topic)."""

    def count(topic: str) -> int:
        try:
            found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            raise AbortableError(f"no metadata for {topic}: {exc}") from exc
        if found is None or not found.partitions:
            raise AbortableError(f"no partitions known for {topic}")
        return len(found.partitions)

    return count


def refuse(
    task: Task[Any], record: Record, expected: int, count: int, observed: frozenset[str]
) -> None:
    """Never handled: dead-lettered, or skipped where another processor dead-letters it."""
    topic = record.topic() or ""
    if topic in observed:
        SKIPPED.labels(task.app_id, topic, WRONG_PARTITION).inc()
        return
    error = describe(record.partition() or 0, expected, count)
    task.dead_letter(record, WRONG_PARTITION, error, "WrongPartition",
                     extra=[(DLQ_EXPECTED_PARTITION, str(expected).encode())])  # fmt: skip
