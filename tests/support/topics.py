"""Read a whole topic as an analytics consumer would (read_committed, to its end), and
feed events in the background while workers come and go."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from connectors.publisher import EventPublisher
from convotrail import clients
from convotrail.settings import Settings
from schemas.model import ConversationEvent
from tests.support.oracle import NOW


def read_all(settings: Settings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every committed record of `topic`, partition by partition in offset order: the
    consumer stops at each partition's end (past the last transaction marker)."""
    consumer = clients.consumer(
        settings, f"test-read-{uuid.uuid4()}",
        guarantees={"isolation.level": "read_committed", "enable.partition.eof": True,
                    "enable.auto.commit": False},
    )  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        partitions = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ended: set[int] = set()
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: no end reached on {set(partitions) - ended}")
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is None:
                    found.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
                else:
                    raise AssertionError(f"{topic}: {error.str()}")
        found.sort(key=lambda m: (m.partition() or 0, m.offset() or 0))
        return found
    finally:
        consumer.close()


class Feeder(threading.Thread):
    """Publishes `events` at about `rate` per second, in order, from a thread."""

    def __init__(
        self,
        settings: Settings,
        events: Sequence[ConversationEvent],
        rate: float,
        hold_at: float | None = None,
    ):
        super().__init__(name="feeder", daemon=True)
        self.settings = settings
        self.events = events
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        # A test that must change something while events still flow holds the last
        # part of the feed back until release(), however slow the machine is today.
        self.hold = len(events) if hold_at is None else int(len(events) * hold_at)
        self.released = threading.Event()
        if hold_at is None:
            self.released.set()

    def run(self) -> None:
        try:
            started = time.monotonic()
            with EventPublisher(self.settings, clock=lambda: NOW) as publisher:
                for number, event in enumerate(self.events):
                    if number == self.hold and not self.released.is_set():
                        publisher.flush()
                        self.released.wait()
                        started = time.monotonic() - number / self.rate
                    publisher.publish(event)
                    self.sent = number + 1
                    ahead = started + number / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except BaseException as exc:
            self.error = exc

    def release(self) -> None:
        self.released.set()

    def finish(self, timeout: float = 300.0) -> None:
        self.release()
        self.join(timeout)
        assert not self.is_alive(), "the feeder did not finish"
        if self.error is not None:
            raise self.error

    @property
    def progress(self) -> float:
        return self.sent / max(1, len(self.events))
