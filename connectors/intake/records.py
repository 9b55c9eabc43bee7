"""A provider's request body -> delivery-notifications records, and their publisher.

The intake does not judge content (the bounce processor does, and dead-letters
what it cannot use, with the reason); it only splits a body into one unit per
message (SendGrid posts arrays) and keys each unit by the message ref the parser
finds first, so that the unit lands on the partition where that ref's route is (a
unit that names no message, a bounce email without the original's Message-ID, by its
first recipient, `recipient <address>`: where that address's recipient index is).
A unit the parser cannot read is still published, keyed by nothing: the bounce
processor refuses it to the DLQ with the parser's reason, so nothing an
authenticated provider sent is lost.

Every record carries an `idempotency_key` header: the provider's own id of the
notification where it has one (SES's, SendGrid's sg_event_id, Mailgun's event id,
...), else a digest of the unit. A provider's retry of a notification the intake had
written (its reply was lost, or a 503 that came too late) carries the same key, and the
bounce processor ignores a key it has seen for that message ref.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message

from connectors.publisher import PRODUCER_DEFAULTS
from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import KafkaValue, Settings
from processors.delivery.notification import Notification
from processors.delivery.providers import PARSERS
from schemas import keys
from schemas.headers import IDEMPOTENCY_KEY, PROVIDER, PROVIDERS

log = logging.getLogger(__name__)

assert tuple(PARSERS) == PROVIDERS


# A message ref longer than this is not a real one (an RFC 5322 line, Message-ID
# included, is at most 998 characters); such a unit is published unkeyed and the
# processor dead-letters it. The cap keeps every record within the broker's message
# size (config.RECORD_OVERHEAD_BYTES).
MAX_KEY_BYTES = 1024
# /readyz's bound on the metadata request (a probe's own timeout is usually 1-5 s).
READY_TIMEOUT = 2.0
# Provider ids are short (UUIDs, 22-character SendGrid ids); a longer one is digested.
_MAX_ID_CHARS = 128


@dataclass(frozen=True)
class IntakeRecord:
    key: bytes | None
    value: bytes
    idempotency_key: str = ""


def idempotency_key(provider: str, unit: bytes, notifications: list[Notification]) -> str:
    """The same for every retry of one notification: `provider:id:<provider's id>:<kinds>`
    when every notification parsed from the unit names the same id, else
    `provider:sha256:<digest of the unit>`. The kinds are part of it because an id is
    not always unique across them (Postmark numbers a bounce and a spam complaint about
    one message in one sequence, and its documented examples share an ID)."""
    ids = {n.provider_event_id for n in notifications}
    if len(ids) == 1:
        (own,) = ids
        if own and len(own) <= _MAX_ID_CHARS and own.isprintable():
            kinds = "+".join(sorted({n.kind.value.lower() for n in notifications}))
            return f"{provider}:id:{own}:{kinds}"
    return f"{provider}:sha256:{hashlib.sha256(unit).hexdigest()[:32]}"


class IntakeError(ConvotrailError):
    """The broker did not take a notification (after librdkafka's retries)."""


def records_of(provider: str, body: bytes) -> list[IntakeRecord]:
    """The records a body becomes: one per unit, keyed by the unit's first message ref
    (or, when it names none, by its first recipient's `recipient_route`)."""
    if provider not in PARSERS:
        raise ValueError(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")
    parser = PARSERS[provider]
    # Any exception, not only NotificationError: the body is authentic and must reach
    # Kafka even if a parser has a bug (the processor dead-letters it with the reason).
    try:
        units = cast(list[bytes], parser.split(body))
    except Exception:
        return [IntakeRecord(None, body, idempotency_key(provider, body, []))]
    records = []
    for unit in units:
        try:
            notifications = cast(list[Notification], parser.parse(unit))
        except Exception:
            records.append(IntakeRecord(None, unit, idempotency_key(provider, unit, [])))
            continue
        refs = [ref for n in notifications for ref in n.message_refs]
        # A complaint may name no recipient either (a redacted feedback report): then
        # nothing can route it, and the processor dead-letters the unkeyed unit.
        recipients = [n.recipient for n in notifications if n.recipient]
        if refs:
            key: bytes | None = keys.message_ref(refs[0])
        elif recipients:
            key = keys.recipient_route(recipients[0])
        else:
            key = None
        if key is not None and len(key) > MAX_KEY_BYTES:
            key = None
        records.append(IntakeRecord(key, unit, idempotency_key(provider, unit, notifications)))
    return records


class NotificationPublisher:
    """Puts provider bodies on delivery-notifications; `deliver` returns once the broker
    has every record (acks=all), so a caller that answers the provider after it never
    acknowledges a notification Kafka does not have.

    librdkafka gives up on a record after `delivery_timeout` seconds (message.timeout.ms)
    and reports it failed; `publish` waits a little longer than that, so when it raises,
    librdkafka holds none of the records any more and will not write them later: the
    caller's 503 is final. (One window remains, inherent to any producer: a request the
    broker wrote but whose acknowledgement was lost. The idempotency key covers it.)"""

    def __init__(
        self,
        settings: Settings,
        *,
        delivery_timeout: float = 8.0,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        self.topic = settings.topics.delivery_notifications
        self.delivery_timeout = delivery_timeout
        defaults: dict[str, KafkaValue] = {
            **PRODUCER_DEFAULTS,
            "linger.ms": 2,
            # librdkafka's own default (1,000,000) is below the broker's 1 MiB: a body
            # the intake accepted would be refused before reaching the broker. (+12: the
            # batch length and magic Kafka's message.max.bytes counts too.)
            "message.max.bytes": max_message_bytes + 12,
        }
        # A guarantee, not a default: no KAFKA_* variable may make it outlast the reply.
        bound: dict[str, KafkaValue] = {"message.timeout.ms": int(delivery_timeout * 1000)}
        self._producer = clients.producer(settings, defaults, bound)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="intake-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def publish(self, provider: str, body: bytes) -> int:
        """Publish a body's records and wait for the broker to take them all; IntakeError
        if it did not (then no record of it is left to be written later)."""
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

        for produced, record in enumerate(records):
            try:
                self._producer.produce(
                    self.topic,
                    key=record.key,
                    value=record.value,
                    headers=[
                        (PROVIDER, provider.encode()),
                        (IDEMPOTENCY_KEY, record.idempotency_key.encode()),
                    ],
                    on_delivery=on_delivery,
                )
            except (KafkaException, BufferError) as exc:
                # Not queued (queue full, too large): the ones queued before it still
                # complete; wait for them, then fail the request.
                with lock:
                    pending[0] -= len(records) - produced
                    errors.append(KafkaError(KafkaError._FAIL, str(exc)))
                    if pending[0] == 0:
                        done.set()
                break
        self._producer.poll(0)
        # The delivery callbacks come by message.timeout.ms at the latest; the margin
        # covers the poller thread's schedule.
        if not done.wait(self.delivery_timeout + 5.0):
            raise IntakeError(
                f"the broker did not acknowledge {provider} records in {self.delivery_timeout} s"
            )
        if errors:
            raise IntakeError(f"delivery-notifications refused a record: {errors[0].str()}")
        return len(records)

    def ready(self) -> tuple[bool, str]:
        """For the intake's /readyz: the broker answers a metadata request for
        delivery-notifications within READY_TIMEOUT and the topic is there (blocking;
        the HTTP server runs it off its loop, at most once per couple of seconds)."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=READY_TIMEOUT)
        except KafkaException as exc:
            # The broker's address stays in the log, out of the unauthenticated reply.
            log.warning("readiness: Kafka did not answer: %s", exc)
            return False, "Kafka did not answer"
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            why = found.error.str() if found is not None and found.error else "missing"
            return False, f"{self.topic}: {why}"
        return True, f"{self.topic}: {len(found.partitions)} partitions"

    def outstanding(self) -> int:
        """Records librdkafka still holds (queued or awaiting the broker's answer)."""
        return len(self._producer)

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
