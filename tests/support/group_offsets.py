"""Put a consumer group behind the end of a topic, as a stopped worker leaves it: records
produced (plain or in a transaction, whose commit marker takes an offset too) and
offsets committed for the group, without running any consumer."""

from __future__ import annotations

import uuid

from confluent_kafka import TopicPartition

from convotrail import clients
from convotrail.settings import Settings


def produce(
    settings: Settings, topic: str, partition: int, count: int, transactional: bool = False
) -> None:
    """`count` records on one partition; bytes only (no consumer here decodes them)."""
    guarantees = {"transactional.id": f"test-{uuid.uuid4().hex}"} if transactional else None
    producer = clients.producer(settings, guarantees=guarantees)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for number in range(count):
        producer.produce(topic, f"record-{number}".encode(), b"key", partition=partition)
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0


def commit(settings: Settings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit `offsets` ((topic, partition) -> next offset to read) for `group`."""
    consumer = clients.consumer(settings, group, guarantees={"enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()
