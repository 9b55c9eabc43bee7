"""Read what landed on a topic, from the beginning, through a real consumer."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from convotrail.settings import Settings


def consume(
    settings: Settings, topic: str, count: int, timeout: float = 30.0, settle: float = 0.0
) -> list[Message]:
    """Up to `count` records of `topic` from the earliest offset.

    With `settle` > 0 it keeps polling that long after reaching `count`, so a test
    can assert that nothing more than expected arrived.
    """
    consumer = Consumer(
        settings.kafka_config(
            {
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    messages: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
        settle_until = time.monotonic() + settle
        while settle and time.monotonic() < settle_until:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages
