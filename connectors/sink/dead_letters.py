"""The sink's dead-letter producer: a refused record, as consumed, onto `<topic>.dlq`.

Headers: the record's own, then the standard DLQ headers (schemas/headers.py):
the error (`<reason tag>: <message>`), its class, and the source topic,
partition and offset, which identify a record uniquely: a consumer of the DLQ
that must see each refused record once deduplicates on them (see `DeadLetters`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from connectors.sink.errors import DeadLetterFailed
from convotrail.logs import record_fields
from convotrail.settings import KafkaValue
from schemas.headers import (
    DLQ_ERROR,
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
)
from schemas.keys import SEPARATOR

log = logging.getLogger(__name__)

DLQ_PRODUCER_CONFIG: dict[str, KafkaValue] = {
    # Idempotence: a retried send never doubles a dead letter.
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
}
DLQ_FLUSH_TIMEOUT = 30.0


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def account_of(key: bytes | str | None) -> str | None:
    """The account a record's key names, for the log: every topic the sink reads is
    keyed account first (schemas/keys.py); a key from before account scoping has no
    separator and names none."""
    if isinstance(key, str):
        key = key.encode()
    if not key or SEPARATOR.encode() not in key:
        return None
    return key.split(SEPARATOR.encode(), 1)[0].decode(errors="replace") or None


@dataclass(frozen=True)
class DeadLetter:
    """Why one consumed record is not stored: a short tag, the message, the error class."""

    tag: str
    message: str
    error_class: str


def _headers(message: Message) -> list[tuple[str, str | bytes | None]]:
    found = message.headers() or []
    return list(found.items()) if isinstance(found, dict) else list(found)


class DeadLetters:
    """Sends dead letters and tells whether they all arrived.

    At least once, and once in practice: a dead letter is flushed before the
    position past its record is committed with the batch, so a crash between
    the two sends it again on restart (same source headers); nothing else does.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._failures: list[str] = []
        self.pending = 0

    def send(self, message: Message, letter: DeadLetter) -> str:
        """Queue `message` for its DLQ topic; returns the topic."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        target = dlq_topic(topic)
        fields = record_fields(topic, partition, offset, account_of(message.key()))
        log.warning("%s[%s]@%s: %s: %s -> %s", topic, partition, offset, letter.tag,
                    letter.message, target, extra=fields)  # fmt: skip
        headers = [
            *_headers(message),
            (DLQ_ERROR, f"{letter.tag}: {letter.message}"),
            (DLQ_ERROR_CLASS, letter.error_class),
            (DLQ_SOURCE_TOPIC, topic),
            (DLQ_SOURCE_PARTITION, str(partition)),
            (DLQ_SOURCE_OFFSET, str(offset)),
        ]

        def on_delivery(failure: KafkaError | None, _delivered: Message) -> None:
            if failure is not None:
                self._failures.append(f"{topic}[{partition}]@{offset} -> {target}: {failure.str()}")

        while True:
            try:
                self.producer.produce(
                    target,
                    key=message.key(),
                    value=message.value(),
                    headers=headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                self.producer.poll(0.05)
        self.pending += 1
        return target

    def confirm(self) -> None:
        """Wait until every queued dead letter is acknowledged, or raise DeadLetterFailed."""
        if not self.pending:
            return
        remaining = self.producer.flush(DLQ_FLUSH_TIMEOUT)
        failures, self._failures = self._failures, []
        if remaining or failures:
            listed = "; ".join(failures) or f"{remaining} still in flight"
            raise DeadLetterFailed(f"dead-lettering failed, nothing committed: {listed}")
        self.pending = 0

    def close(self) -> None:
        self.producer.flush(5.0)
