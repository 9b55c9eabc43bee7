"""One sink consumer, its DLQ producer and its store: decode, batch, write, rebalance.

The database, not Kafka, is the source of truth for positions: on every
partition assignment the consumer seeks to the offsets the database holds, so a
crash at any instant (even SIGKILL mid-transaction) neither loses nor doubles a
row. Kafka offsets are committed afterwards only so that lag monitoring sees
progress; they are never read back.

A batch is written in one transaction (`Store.apply`). When the database refuses
it because of a record's content, each record is tried alone under a savepoint
(`Store.refusals`, rolled back), the refused ones go to `<topic>.dlq` with the
database's message, and the batch is written again without them, positions
included. When the database is not there, `flush` raises DatabaseUnavailable
and keeps the batch: runner.py waits and calls it again. This module never
writes a row outside `Store`, commits a position before the batch holding it, or
decides anything about the domain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition
from fastavro.read import SchemaResolutionError

from connectors.sink import metrics
from connectors.sink.backoff import Backoff
from connectors.sink.batch import SinkBatch, Source
from connectors.sink.dead_letters import DLQ_PRODUCER_CONFIG, DeadLetter, DeadLetters
from connectors.sink.errors import (
    DatabaseUnavailable,
    RefusedRecord,
    SinkError,
    UnkeyedTombstone,
)
from connectors.sink.failures import Failure, classify, error_class, reason
from connectors.sink.health import SinkHealth
from connectors.sink.stats import SinkStats
from connectors.sink.store import Store
from convotrail import clients
from convotrail.metrics import forget_lag, report_lag
from convotrail.settings import KafkaValue, Settings
from schemas.codecs import M, ModelCodec
from schemas.errors import SerdeError, UndecodableBody
from schemas.model import ConversationState, DeliveryStatus, ReadReceipt, TimelineEntry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

# What exactly-once into the database rests on; KAFKA_* variables cannot change these.
CONSUMER_GUARANTEES: dict[str, KafkaValue] = {
    # Positions live in the database; Kafka commits are explicit and advisory.
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    # Never store a record of a processor transaction that was later aborted.
    "isolation.level": "read_committed",
    # Only used when a database position is out of range (retention deleted it).
    "auto.offset.reset": "earliest",
    # An eager protocol: on_assign gets the whole assignment and seeks each
    # partition with assign(); cooperative rebalancing would need incremental
    # calls. Range keeps partition N of both topics on one consumer.
    "partition.assignment.strategy": "range",
}
CONSUMER_DEFAULTS: dict[str, KafkaValue] = {
    # An idle fetch returns within 50 ms: a row is written about a batch timeout after
    # its record became readable, not up to librdkafka's default 500 ms later.
    "fetch.wait.max.ms": 50,
    # A SIGKILLed sink's partitions wait for its session to expire before a
    # restarted (or another) sink gets them: 6 s (the broker's minimum) instead
    # of librdkafka's 45 s. No static membership: the stream runtime dropped it
    # after librdkafka fenced its own consumer on a broker restart (ARCHITECTURE.md).
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}
DATABASE_REFUSED = "database-refused"
# How often a batch may be refused again after its refused records were taken
# out (the database changed its mind, a trigger, ...) before it counts as an outage.
REFUSAL_ROUNDS = 3


class SinkLoop:
    """One consumer, one DLQ producer, one store; lives for one `run_sink` call."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        group_id: str,
        topics: list[str],
        wait: Callable[[float], bool],
        health: SinkHealth | None = None,
    ) -> None:
        self.group_id = group_id
        self.store = store
        self.topics = topics
        # Sleeps up to its argument; False once the sink is asked to stop.
        self.wait = wait
        self.health = health or SinkHealth()
        names = settings.topics
        self.state_topic = names.conversation_state
        serde = AvroSerde(clients.registry(settings))
        self.codecs: dict[str, ModelCodec[TimelineEntry | ReadReceipt | DeliveryStatus]] = {
            names.conversation_timeline: ModelCodec(
                serde, names.conversation_timeline, TimelineEntry
            ),
            names.read_receipts: ModelCodec(serde, names.read_receipts, ReadReceipt),
            names.delivery_status: ModelCodec(serde, names.delivery_status, DeliveryStatus),
        }
        self.state_codec = ModelCodec(serde, self.state_topic, ConversationState)
        kinds = (names.conversation_timeline, names.conversation_state, names.read_receipts,
                 names.delivery_status)  # fmt: skip
        self.reports = metrics.BatchReport(group_id, dict(zip(kinds, metrics.KINDS, strict=True)))
        self.stats = SinkStats()
        self.batch = SinkBatch(group_id)
        self.batch_started = 0.0
        self.assigned = False
        self._assignment: list[KafkaPartition] = []
        self.activity = time.monotonic()
        # The current batch's records as consumed: a refused one goes to the DLQ as is.
        self._messages: dict[Source, Message] = {}
        # Dead letters of the current batch already confirmed: a retry after an
        # outage must not send them again.
        self._sent: set[Source] = set()
        self.consumer = clients.consumer(
            settings, group_id, CONSUMER_DEFAULTS, CONSUMER_GUARANTEES, on_commit=_on_commit
        )
        self.letters = DeadLetters(clients.producer(settings, DLQ_PRODUCER_CONFIG))

    # -- rebalancing: the database says where each partition resumes ----------------

    def on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        stored = self._stored_offsets()
        if stored is None:
            # Stopping while the database was away: assign nothing, or the client
            # would assign these itself, from Kafka's advisory offsets.
            consumer.assign([])
            return
        for tp in partitions:
            # No row yet: from the very beginning, even if Kafka has a committed
            # offset for the group (it may belong to another database).
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        self._assignment = partitions  # with the offsets they start from, for the lag
        self.assigned = True
        self.health.assigned = len(partitions)
        self.activity = time.monotonic()
        log.info(
            "group %s assigned %s",
            self.group_id,
            ", ".join(f"{tp.topic}[{tp.partition}]@{_offset(tp.offset)}" for tp in partitions),
        )

    def _stored_offsets(self) -> dict[tuple[str, int], int] | None:
        backoff = Backoff()
        while True:
            try:
                found = self.store.committed_offsets(self.group_id, self.topics)
                self.health.database(True)
                return found
            except Exception as error:  # classified: only outages are waited
                if classify(error) is Failure.REFUSED:
                    raise
                delay = backoff.next()
                self.report_outage("reading positions", error, delay, backoff.attempts)
                if not self.wait(delay):
                    return None

    def on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        # Before the partitions move to another sink, write what was read from
        # them, so the new owner starts exactly where this one stopped.
        try:
            self.flush()
        except DatabaseUnavailable as exc:
            self.discard(f"database unavailable at revocation ({exc})")
        self._unassigned(partitions)
        log.info("group %s revoked %d partitions", self.group_id, len(partitions))

    def on_lost(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        # The partitions may already belong to someone else: drop the pending
        # batch (the new owner reads it again from the database positions).
        self.discard(f"lost {len(partitions)} partitions")
        self._unassigned(partitions)

    def _unassigned(self, partitions: list[KafkaPartition]) -> None:
        # Eager rebalancing: every partition goes, and the next assignment brings
        # back those this sink keeps. Their lag is the new owner's to report.
        self.assigned = False
        self._assignment = []
        self.health.assigned = 0
        forget_lag(self.group_id, partitions)

    def report_lag(self) -> None:
        """convotrail_consumer_lag of the assigned partitions, from this consumer's
        position (the database's lags it by the open batch at most)."""
        report_lag(self.group_id, self.consumer, self._assignment)

    def discard(self, why: str) -> None:
        if self.batch:
            log.warning(
                "group %s: %s; %d unwritten records will be read again from the database positions",
                self.group_id,
                why,
                len(self.batch),
            )
        self.stats.discarded += len(self.batch)
        self._new_batch()

    def _new_batch(self) -> None:
        self.batch = SinkBatch(self.group_id)
        self._messages = {}
        self._sent = set()
        self.reports.drop()

    def pause(self) -> None:
        assignment = self.consumer.assignment()
        if assignment:
            self.consumer.pause(assignment)

    def resume(self) -> None:
        assignment = self.consumer.assignment()
        if assignment:
            self.consumer.resume(assignment)

    # -- records ----------------------------------------------------------------------

    def handle(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        if not self.batch:
            self.batch_started = time.monotonic()
            log.debug("%s[%s]@%s starts a batch", topic, partition, offset)
        self.stats.records += 1
        try:
            codec = self.codecs.get(topic)
            if codec is not None:
                self.batch.add(_decode(codec, message), topic, partition, offset)
            elif topic != self.state_topic:
                raise SinkError(
                    f"{topic}[{partition}]@{offset}: group {self.group_id} was assigned a "
                    f"topic it does not read; is the group id shared with another sink?"
                )
            elif message.value() is None:
                self.batch.add_tombstone(_tombstone_key(message), topic, partition, offset)
            else:
                self.batch.add_state(_decode(self.state_codec, message), topic, partition, offset)
            self._messages[(topic, partition, offset)] = message
        except (SerdeError, RefusedRecord) as exc:
            self._dead_letter(message, DeadLetter(exc.reason, str(exc), type(exc).__name__))
            self.batch.skip(topic, partition, offset)

    def _dead_letter(self, message: Message, letter: DeadLetter) -> None:
        target = self.letters.send(message, letter)
        self.stats.dead_lettered += 1
        self.stats.dlq_by_topic[target] = self.stats.dlq_by_topic.get(target, 0) + 1
        self.reports.dead_lettered(message.topic() or "", letter.tag)

    # -- committing: numbered steps, each needs the one before -----------------------

    def flush(self) -> None:
        """Write the batch (or raise DatabaseUnavailable and keep it for the next call)."""
        batch = self.batch
        if not batch:
            return
        # 1. Dead letters first: a refused record's position may only be
        #    recorded once the record is safely on its DLQ topic.
        self.letters.confirm()
        # 2. Rows and positions in one database transaction: the commit point.
        started = time.perf_counter()
        now = datetime.now(UTC)
        written = batch
        for _round in range(REFUSAL_ROUNDS):
            try:
                self.store.apply(written, now=now)
                break
            except Exception as error:  # classified right here
                if classify(error) is not Failure.REFUSED:
                    raise DatabaseUnavailable(reason(error)) from error
                written = self._without_refused(batch, error, now)
        else:
            raise DatabaseUnavailable("the database keeps refusing a batch it accepts row by row")
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        self.reports.committed(self._messages, self._sent)
        self._count(written)
        # 3. Kafka offsets, asynchronously: for lag dashboards only; losing this
        #    commit in a crash costs nothing, the database positions win.
        offsets = [KafkaPartition(t, p, o) for (t, p), o in written.next_offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("advisory Kafka commit failed (positions are in the database): %s", exc)
        log.debug(
            "batch of %d records written; positions %s",
            len(written),
            ", ".join(f"{t}[{p}]={o}" for (t, p), o in sorted(written.next_offsets.items())),
        )

    def _without_refused(self, batch: SinkBatch, error: BaseException, now: datetime) -> SinkBatch:
        """Find the records the database refuses, dead-letter them, return the rest."""
        try:
            refused = self.store.refusals(batch.singles(), now=now)
        except Exception as again:  # classified right here
            raise DatabaseUnavailable(reason(again)) from again
        if not refused:
            log.warning("batch refused (%s) but every record alone is accepted", reason(error))
        for source, cause in refused:
            if source in self._sent:
                continue
            letter = DeadLetter(DATABASE_REFUSED, reason(cause), error_class(cause))
            self._dead_letter(self._messages[source], letter)
            self.stats.refused += 1
        self.letters.confirm()
        self._sent.update(source for source, _cause in refused)
        return batch.without(self._sent)

    def _count(self, batch: SinkBatch) -> None:
        metrics.ROWS.labels("timeline").inc(batch.timeline_records)
        metrics.ROWS.labels("state").inc(batch.state_records)
        metrics.ROWS.labels("read-receipt").inc(batch.receipt_records)
        metrics.ROWS.labels("delivery-status").inc(batch.status_records)
        self.stats.batches += 1
        self.stats.timeline_entries += batch.timeline_records
        self.stats.states += batch.state_records
        self.stats.tombstones += batch.tombstones
        self.stats.receipts += batch.receipt_records
        self.stats.statuses += batch.status_records
        self._new_batch()

    def report_outage(self, doing: str, error: BaseException, delay: float, attempt: int) -> None:
        self.health.database(False)
        metrics.CAUGHT_UP.set(0)
        metrics.RETRIES.inc()
        self.stats.retries += 1
        # One line per retry, no traceback: an outage is expected, not a bug.
        log.warning(
            "database unavailable while %s (%s); %d records kept, retry %d in %.1fs",
            doing,
            reason(error),
            len(self.batch),
            attempt,
            delay,
        )

    def due(self, batch_size: int, batch_timeout: float) -> bool:
        if not self.batch:
            return False
        return (
            len(self.batch) >= batch_size or time.monotonic() - self.batch_started >= batch_timeout
        )

    def close(self, *, flush: bool) -> None:
        if not flush:
            # A failed batch must not be retried by the revoke that close() triggers.
            self._new_batch()
        try:
            self.consumer.close()
        finally:
            self.letters.close()


def _decode(codec: ModelCodec[M], message: Message) -> M:
    try:
        return codec.decode(message.value())
    except SerdeError:
        raise
    except SchemaResolutionError as exc:
        # schemas.serde lets fastavro's resolution error through instead of
        # raising UndecodableBody; without this one such record would stop the
        # sink for good instead of going to the DLQ.
        first_line = str(exc).split(":", 1)[0]
        raise UndecodableBody(
            f"writer schema cannot be read as {codec.model.__name__} ({first_line})"
        ) from exc
    except (ValueError, OverflowError, UnicodeError, TypeError, IndexError, KeyError) as exc:
        # A value the wire format allows but Python cannot hold (a timestamp past
        # year 9999, invalid UTF-8 such as an encoded lone surrogate).
        raise UndecodableBody(
            f"not a valid {codec.model.__name__}: {type(exc).__name__}: {exc}"
        ) from exc


def _offset(offset: int) -> str:
    return "beginning" if offset == OFFSET_BEGINNING else str(offset)


def _tombstone_key(message: Message) -> str:
    key = message.key()
    try:
        text = key.decode() if isinstance(key, bytes) else key
    except UnicodeDecodeError:
        text = None
    if not text:
        raise UnkeyedTombstone("tombstone without a UTF-8 conversation_id key")
    return str(text)


def _on_commit(error: KafkaError | None, partitions: list[KafkaPartition]) -> None:
    if error is not None:
        log.debug("advisory Kafka commit failed (positions are in the database): %s", error)
