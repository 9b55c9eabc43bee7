"""The producer SDK: validate, serialize and publish conversation events.

    with EventPublisher(settings) as publisher:
        future = publisher.publish(event)        # refused here if invalid
        report = future.result(timeout=10)       # DeliveryReport once acked

Events are keyed by conversation_id (every fact about a conversation in one
partition, in order) and sent by an idempotent producer with acks=all, so a
retry inside librdkafka never duplicates or reorders a record. An invalid event
raises `InvalidEvent` before anything reaches Kafka. A background thread serves
librdkafka's delivery reports, so the returned futures resolve on their own;
`close()` flushes what is in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message

from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import KafkaValue, Settings
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.headers import EVENT_TYPE
from schemas.model import ConversationEvent
from schemas.registry import Registry
from schemas.serde import AvroSerde
from schemas.validation import avro_record_from_json, check_event

log = logging.getLogger(__name__)

# Defaults a demanding user would pick; anything here can be overridden through
# producer_config or KAFKA_* environment variables, except the two guarantees.
PRODUCER_DEFAULTS: dict[str, KafkaValue] = {
    "linger.ms": 5,
    "compression.type": "lz4",
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 200000,
}
# Idempotent, acks=all, Java's murmur2 partitioner (convotrail/clients.py says why).
GUARANTEES: dict[str, KafkaValue] = dict(clients.PRODUCER_GUARANTEES)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryReport:
    event_id: str
    topic: str
    partition: int
    offset: int


class PublishError(ConvotrailError):
    """The broker did not take an event (after librdkafka's own retries)."""

    def __init__(self, event_id: str, error: KafkaError) -> None:
        super().__init__(f"event {event_id}: delivery failed: {error.str()}")
        self.event_id = event_id
        self.kafka_error = error


class EventPublisher:
    """Publishes ConversationEvents to conversation-events; one per process is plenty."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        clock: Clock = wall_clock,
        producer_config: Mapping[str, KafkaValue] | None = None,
    ) -> None:
        self.topic = settings.topics.conversation_events
        self._clock = clock
        registry = registry or clients.registry(settings)
        self._codec = ModelCodec(AvroSerde(registry), self.topic, ConversationEvent)
        defaults = {**PRODUCER_DEFAULTS, **(producer_config or {})}
        # librdkafka's own log lines go through Python logging, not straight to stderr.
        self._producer = clients.producer(settings, defaults)
        self._closed = False
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_delivery_reports, name="convotrail-publisher-poll", daemon=True
        )
        self._poller.start()

    def _serve_delivery_reports(self) -> None:
        while not self._stop_polling.is_set():
            self._producer.poll(0.1)

    # -- publishing -----------------------------------------------------------------

    def publish(self, event: ConversationEvent) -> Future[DeliveryReport]:
        """Validate and send one event; raises InvalidEvent before Kafka when it is bad."""
        record = check_event(event, self._clock())
        return self._send(record)

    def publish_json(self, raw: Any) -> Future[DeliveryReport]:
        """Validate and send one event in the JSON shape of `convotrail produce`."""
        return self._send(avro_record_from_json(raw, self._clock()))

    def _send(self, record: dict[str, Any]) -> Future[DeliveryReport]:
        if self._closed:
            raise RuntimeError("publisher is closed")
        value = self._codec.encode_record(record)
        event_id: str = record["event_id"]
        future: Future[DeliveryReport] = Future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                log.error("event %s: delivery to %s failed: %s", event_id, self.topic, error)
                future.set_exception(PublishError(event_id, error))
            else:
                future.set_result(
                    DeliveryReport(event_id, self.topic, message.partition() or 0,
                                   message.offset() or 0)
                )  # fmt: skip

        key = keys.conversation(record["account_id"], record["conversation_id"])
        headers: list[tuple[str, str | bytes | None]] = [(EVENT_TYPE, str(record["type"]))]
        while True:
            try:
                self._producer.produce(
                    self.topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                # Local queue full: wait for delivery reports to make room.
                self._producer.poll(0.05)
        return future

    # -- lifecycle ------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; return how many are still in flight."""
        return self._producer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        remaining = self.flush(timeout)
        self._closed = True
        self._stop_polling.set()
        self._poller.join()
        if remaining:
            log.error("publisher closed with %d events still in flight", remaining)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
