"""A provider's request body -> delivery-notifications records, and their publisher.

The intake does not judge content (the bounce processor does, and dead-letters
what it cannot use, with the reason); it only splits a body into one unit per
message (SendGrid posts arrays) and keys each unit by the message ref the parser
finds first, so that the unit lands on the partition where that ref's route is.
A unit the parser cannot read is still published, keyed by nothing: the bounce
processor refuses it to the DLQ with the parser's reason, so nothing an
authenticated provider sent is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from confluent_kafka import KafkaError, Message

from connectors.publisher import PRODUCER_DEFAULTS
from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings
from processors.delivery.notification import Notification, NotificationError
from processors.delivery.providers import PARSERS
from schemas import keys
from schemas.headers import PROVIDER, PROVIDERS

log = logging.getLogger(__name__)

assert tuple(PARSERS) == PROVIDERS


@dataclass(frozen=True)
class IntakeRecord:
    key: bytes | None
    value: bytes


class IntakeError(ConvotrailError):
    """The broker did not take a notification (after librdkafka's retries)."""


def records_of(provider: str, body: bytes) -> list[IntakeRecord]:
    """The records a body becomes: one per unit, keyed by the unit's first message ref."""
    if provider not in PARSERS:
        raise ValueError(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")
    parser = PARSERS[provider]
    try:
        units = cast(list[bytes], parser.split(body))
    except NotificationError:
        return [IntakeRecord(None, body)]
    records = []
    for unit in units:
        try:
            notifications = cast(list[Notification], parser.parse(unit))
        except NotificationError:
            records.append(IntakeRecord(None, unit))
            continue
        refs = [ref for n in notifications for ref in n.message_refs]
        records.append(IntakeRecord(keys.message_ref(refs[0]) if refs else None, unit))
    return records


class NotificationPublisher:
    """Puts provider bodies on delivery-notifications; `deliver` returns once the broker
    has every record (acks=all), so a caller that answers the provider after it never
    acknowledges a notification Kafka does not have."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.delivery_notifications
        self._producer = clients.producer(settings, {**PRODUCER_DEFAULTS, "linger.ms": 2})
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="intake-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def publish(self, provider: str, body: bytes, timeout: float = 30.0) -> int:
        """Publish a body's records and wait for the broker to take them all."""
        records = records_of(provider, body)
        if not records:
            return 0
        done = threading.Event()
        pending = [len(records)]
        errors: list[KafkaError] = []
        lock = threading.Lock()

        def on_delivery(error: KafkaError | None, _: Message) -> None:
            with lock:
                if error is not None:
                    errors.append(error)
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()

        for record in records:
            self._producer.produce(
                self.topic,
                key=record.key,
                value=record.value,
                headers=[(PROVIDER, provider.encode())],
                on_delivery=on_delivery,
            )
        self._producer.poll(0)
        if not done.wait(timeout):
            raise IntakeError(f"the broker did not acknowledge {provider} records in {timeout} s")
        if errors:
            raise IntakeError(f"delivery-notifications refused a record: {errors[0].str()}")
        return len(records)

    async def deliver(self, provider: str, body: bytes) -> int:
        """`publish` off the event loop, for the HTTP intake."""
        return await asyncio.to_thread(self.publish, provider, body)

    def close(self) -> None:
        self._producer.flush(30)
        self._stop.set()
        self._poller.join(timeout=5)

    def __enter__(self) -> NotificationPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
