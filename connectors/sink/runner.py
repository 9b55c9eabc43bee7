"""The SQL sink process: conversation-timeline and conversation-state into the database.

    stats = run_sink(settings, "sqlite:///var/convotrail.db", max_idle_seconds=5)
    python -m connectors.sink --database-url postgresql+psycopg://...

A thin shell around `SinkBatch` (what to write) and `Store` (how to write it):
it polls, decodes with the registry, dead-letters what cannot be decoded, and
hands each batch to `Store.apply`, which writes rows and consumer positions in
one database transaction. The database, not Kafka, is the source of truth for
positions: on every partition assignment the consumer seeks to the offsets the
database holds, so a crash at any instant (even SIGKILL mid-transaction)
neither loses nor duplicates a row. Kafka offsets are committed afterwards only
so that lag monitoring sees progress; they are never read back.

Dead letters are at-least-once: a refused record is on `<topic>.dlq` before its
position is committed, so after a crash it may be dead-lettered twice, never
lost. This module must never write a row outside `Store.apply`, commit a
position before the batch holding it, or decide anything about the domain.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError
from prometheus_client import Counter, Histogram

from connectors.sink.batch import SinkBatch
from connectors.sink.errors import DeadLetterFailed, RefusedRecord, SinkError, UnkeyedTombstone
from connectors.sink.store import Store, default_database_url, open_store
from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import KafkaValue, Settings
from convotrail.topics import TopicSpec, admin_client, ensure_topics, topic_specs
from schemas.codecs import M, ModelCodec
from schemas.errors import SerdeError, UndecodableBody
from schemas.headers import (
    DLQ_ERROR,
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
)
from schemas.model import ConversationState, DeliveryStatus, ReadReceipt, TimelineEntry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

# Prometheus metrics (exposed with `convotrail sink --metrics-port`).
ROWS = Counter("convotrail_sink_records_total", "Records written to the database", ["kind"])
DEAD_LETTERED = Counter("convotrail_sink_dlq_total", "Records the sink sent to a DLQ")
BATCH_SECONDS = Histogram("convotrail_sink_batch_seconds", "Database transaction time per batch")

DEFAULT_GROUP = "convotrail-sink"

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
}
DLQ_PRODUCER_CONFIG: dict[str, KafkaValue] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
}
DLQ_FLUSH_TIMEOUT = 30.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def sink_sources(settings: Settings) -> list[str]:
    """What the sink reads: timeline, state, read receipts, delivery status."""
    names = settings.topics
    return [
        names.conversation_timeline,
        names.conversation_state,
        names.read_receipts,
        names.delivery_status,
    ]


def dlq_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The sink's dead-letter topics (created on start when missing), as in topic_specs."""
    wanted = {dlq_topic(topic) for topic in sink_sources(settings)}
    return [spec for spec in topic_specs(settings) if spec.name in wanted]


@dataclass
class SinkStats:
    """Counters of one `run_sink` call (records, not rows: duplicates count once each)."""

    records: int = 0
    timeline_entries: int = 0
    states: int = 0
    tombstones: int = 0
    receipts: int = 0
    statuses: int = 0
    dead_lettered: int = 0
    batches: int = 0
    discarded: int = 0  # consumed, then dropped because their partitions were lost
    dlq_by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.timeline_entries + self.states + self.tombstones + self.receipts + self.statuses

    def describe(self) -> str:
        return (
            f"{self.records} records in {self.batches} batches: {self.timeline_entries} "
            f"timeline entries, {self.states} states, {self.tombstones} tombstones, "
            f"{self.receipts} read receipts, {self.statuses} delivery statuses, "
            f"{self.dead_lettered} dead-lettered"
        )


def _headers(message: Message) -> list[tuple[str, str | bytes | None]]:
    found = message.headers() or []
    return list(found.items()) if isinstance(found, dict) else list(found)


class _SinkLoop:
    """One consumer, one DLQ producer, one store; lives for one `run_sink` call."""

    def __init__(self, settings: Settings, store: Store, group_id: str) -> None:
        self.group_id = group_id
        self.store = store
        self.timeline_topic = settings.topics.conversation_timeline
        self.state_topic = settings.topics.conversation_state
        self.receipts_topic = settings.topics.read_receipts
        self.status_topic = settings.topics.delivery_status
        self.topics = sink_sources(settings)
        serde = AvroSerde(clients.registry(settings))
        self.timeline_codec = ModelCodec(serde, self.timeline_topic, TimelineEntry)
        self.state_codec = ModelCodec(serde, self.state_topic, ConversationState)
        self.receipt_codec = ModelCodec(serde, self.receipts_topic, ReadReceipt)
        self.status_codec = ModelCodec(serde, self.status_topic, DeliveryStatus)
        self.stats = SinkStats()
        self.batch = SinkBatch(group_id)
        self.batch_started = 0.0
        self.assigned = False
        self.activity = time.monotonic()
        self._dlq_failures: list[str] = []
        self.consumer = clients.consumer(
            settings, group_id, CONSUMER_DEFAULTS, CONSUMER_GUARANTEES, on_commit=_on_commit
        )
        self.producer = clients.producer(settings, DLQ_PRODUCER_CONFIG)

    # -- rebalancing: the database says where each partition resumes ----------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self.store.committed_offsets(self.group_id, self.topics)
        for tp in partitions:
            # No row yet: from the very beginning, even if Kafka has a committed
            # offset for the group (it may belong to another database).
            tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        self.assigned = True
        self.activity = time.monotonic()
        log.info(
            "group %s assigned %s",
            self.group_id,
            ", ".join(f"{tp.topic}[{tp.partition}]@{_offset(tp.offset)}" for tp in partitions),
        )

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Before the partitions move to another sink, write what was read from
        # them, so the new owner starts exactly where this one stopped.
        self.flush()
        self.assigned = False
        log.info("group %s revoked %d partitions", self.group_id, len(partitions))

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The partitions may already belong to someone else: drop the pending
        # batch (the new owner reads it again from the database positions).
        self.stats.discarded += len(self.batch)
        log.warning(
            "group %s lost %d partitions; %d unwritten records will be read again by "
            "their new owner",
            self.group_id,
            len(partitions),
            len(self.batch),
        )
        self.batch = SinkBatch(self.group_id)
        self.assigned = False

    # -- records ----------------------------------------------------------------------

    def handle(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        if not self.batch:
            self.batch_started = time.monotonic()
            log.debug("%s[%s]@%s starts a batch", topic, partition, offset)
        self.stats.records += 1
        try:
            if topic == self.timeline_topic:
                entry = _decode(self.timeline_codec, message)
                self.batch.add_timeline_entry(entry, topic, partition, offset)
            elif topic == self.receipts_topic:
                receipt = _decode(self.receipt_codec, message)
                self.batch.add_receipt(receipt, topic, partition, offset)
            elif topic == self.status_topic:
                status = _decode(self.status_codec, message)
                self.batch.add_status(status, topic, partition, offset)
            elif topic != self.state_topic:
                # A stale static-membership assignment can do this when two sinks
                # share a group id and group.instance.id but read other topics.
                raise SinkError(
                    f"{topic}[{partition}]@{offset}: group {self.group_id} was assigned a "
                    f"topic it does not read; is the group id shared with another sink?"
                )
            elif message.value() is None:
                self.batch.add_tombstone(_tombstone_key(message), topic, partition, offset)
            else:
                state = _decode(self.state_codec, message)
                self.batch.add_state(state, topic, partition, offset)
        except (SerdeError, RefusedRecord) as exc:
            self.dead_letter(message, exc)
            self.batch.skip(topic, partition, offset)

    def dead_letter(self, message: Message, error: SerdeError | RefusedRecord) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        target = dlq_topic(topic)
        log.warning(
            "%s[%s]@%s: %s (%s) -> %s", topic, partition, offset, error, error.reason, target
        )
        headers = [
            *_headers(message),
            (DLQ_ERROR, f"{error.reason}: {error}"),
            (DLQ_ERROR_CLASS, type(error).__name__),
            (DLQ_SOURCE_TOPIC, topic),
            (DLQ_SOURCE_PARTITION, str(partition)),
            (DLQ_SOURCE_OFFSET, str(offset)),
        ]

        def on_delivery(failure: KafkaError | None, _delivered: Message) -> None:
            if failure is not None:
                self._dlq_failures.append(
                    f"{topic}[{partition}]@{offset} -> {target}: {failure.str()}"
                )

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
        self.stats.dead_lettered += 1
        DEAD_LETTERED.inc()
        self.stats.dlq_by_topic[target] = self.stats.dlq_by_topic.get(target, 0) + 1

    # -- committing: numbered steps, each needs the one before -----------------------

    def flush(self) -> None:
        batch = self.batch
        if not batch:
            return
        # 1. Dead letters first: a refused record's position may only be
        #    recorded once the record is safely on its DLQ topic.
        if batch.skipped:
            remaining = self.producer.flush(DLQ_FLUSH_TIMEOUT)
            if remaining or self._dlq_failures:
                failures = "; ".join(self._dlq_failures) or f"{remaining} still in flight"
                raise DeadLetterFailed(f"dead-lettering failed, nothing committed: {failures}")
        # 2. Rows and positions in one database transaction: the commit point.
        started = time.perf_counter()
        self.store.apply(batch, now=datetime.now(UTC))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        ROWS.labels("timeline").inc(batch.timeline_records)
        ROWS.labels("state").inc(batch.state_records)
        ROWS.labels("read-receipt").inc(batch.receipt_records)
        ROWS.labels("delivery-status").inc(batch.status_records)
        self.batch = SinkBatch(self.group_id)
        self.stats.batches += 1
        self.stats.timeline_entries += batch.timeline_records
        self.stats.states += batch.state_records
        self.stats.tombstones += batch.tombstones
        self.stats.receipts += batch.receipt_records
        self.stats.statuses += batch.status_records
        # 3. Kafka offsets, asynchronously: for lag dashboards only; losing this
        #    commit in a crash costs nothing, the database positions win.
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("advisory Kafka commit failed (positions are in the database): %s", exc)
        log.debug(
            "batch of %d records written; positions %s",
            len(batch),
            ", ".join(f"{t}[{p}]={o}" for (t, p), o in sorted(batch.next_offsets.items())),
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
            self.batch = SinkBatch(self.group_id)
        try:
            self.consumer.close()
        finally:
            self.producer.flush(5.0)


def _decode(codec: ModelCodec[M], message: Message) -> M:
    try:
        return codec.decode(message.value())
    except SchemaResolutionError as exc:
        # Stopgap: schemas.serde lets fastavro's resolution error through instead
        # of raising UndecodableBody; without this one such record would stop
        # the sink for good instead of going to the DLQ.
        first_line = str(exc).split(":", 1)[0]
        raise UndecodableBody(
            f"writer schema cannot be read as {codec.model.__name__} ({first_line})"
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


def _on_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if error is not None:
        log.debug("advisory Kafka commit failed (positions are in the database): %s", error)


def _check_topics(settings: Settings, sources: list[str]) -> None:
    admin = admin_client(settings)
    try:
        existing = admin.list_topics(timeout=30).topics
    except KafkaException as exc:
        raise SinkError(f"Kafka at {settings.bootstrap_servers} did not answer: {exc}") from exc
    missing = [topic for topic in sources if topic not in existing]
    if missing:
        raise SinkError(
            f"topics {', '.join(missing)} do not exist: run `convotrail topics create` first"
        )
    # Only the missing ones: a DLQ is not co-partitioned with anything, so an
    # existing one with another partition count is fine.
    specs = [spec for spec in dlq_topic_specs(settings) if spec.name not in existing]
    for outcome in ensure_topics(admin, specs):
        if outcome.created:
            log.info("created dead-letter topic %s", outcome.name)


def run_sink(
    settings: Settings,
    database_url: str,
    *,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = 500,
    batch_timeout: float = 0.1,
    stop: threading.Event | None = None,
    max_idle_seconds: float | None = None,
) -> SinkStats:
    """Sink both topics into the database until `stop` is set or it has been idle long enough.

    Idle means: partitions assigned, nothing pending, and no record for
    `max_idle_seconds` (None: run until stopped).
    """
    if batch_size < 1:
        raise SinkError(f"batch_size={batch_size}: must be at least 1")
    stop = stop or threading.Event()
    sources = sink_sources(settings)
    _check_topics(settings, sources)
    store = open_store(database_url)
    try:
        try:
            loop = _SinkLoop(settings, store, group_id)
        except SchemaRegistryError as exc:
            raise SinkError(f"schema registry at {settings.registry_url}: {exc}") from exc
        log.info(
            "sink %s -> %s (group %s, batches of %d or %.2fs)",
            ", ".join(loop.topics), store.url, group_id, batch_size, batch_timeout,
        )  # fmt: skip
        loop.consumer.subscribe(
            loop.topics, on_assign=loop.on_assign, on_revoke=loop.on_revoke, on_lost=loop.on_lost
        )
        clean = False
        try:
            _consume(loop, stop, batch_size, batch_timeout, max_idle_seconds)
            loop.flush()
            clean = True
        finally:
            loop.close(flush=clean)
        log.info("sink stopped: %s", loop.stats.describe())
        return loop.stats
    finally:
        store.close()


def _consume(
    loop: _SinkLoop,
    stop: threading.Event,
    batch_size: int,
    batch_timeout: float,
    max_idle_seconds: float | None,
) -> None:
    # consume() waits its whole timeout unless the batch fills: short waits, and never
    # past the open batch's deadline, so a row is written about batch_timeout after
    # its record arrived, not twice that.
    poll_timeout = max(0.005, min(batch_timeout / 4, 0.1))
    while not stop.is_set():
        wanted = max(1, batch_size - len(loop.batch))
        wait = poll_timeout
        if loop.batch:
            wait = max(0.0, min(wait, loop.batch_started + batch_timeout - time.monotonic()))
        for message in loop.consumer.consume(num_messages=wanted, timeout=wait):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise SinkError(f"consumer failed: {error.str()}")
                log.warning("consumer error (librdkafka retries): %s", error.str())
                continue
            loop.handle(message)
            loop.activity = time.monotonic()
        if loop.due(batch_size, batch_timeout):
            loop.flush()
        if (
            max_idle_seconds is not None
            and loop.assigned
            and not loop.batch
            and time.monotonic() - loop.activity >= max_idle_seconds
        ):
            log.info("no record for %.1fs: stopping", max_idle_seconds)
            return


# -- process entry ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.sink",
        description=(
            "Sink conversation-timeline and conversation-state into SQLite or PostgreSQL, "
            "exactly once (positions are kept in the database). Kafka and the registry "
            "come from the environment like every convotrail process."
        ),
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: sqlite:///$CONVOTRAIL_HOME/convotrail.db); "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help="Consumer group id.")
    parser.add_argument("--batch-size", type=int, default=500, help="Records per transaction.")
    parser.add_argument(
        "--batch-timeout", type=float, default=0.1, help="Seconds before a partial batch commits."
    )
    parser.add_argument(
        "--max-idle-seconds", type=float, default=None, help="Exit after this long without records."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    return parser


def run_until_signalled(
    settings: Settings,
    database_url: str,
    *,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = 500,
    batch_timeout: float = 0.1,
    max_idle_seconds: float | None = None,
) -> SinkStats:
    """`run_sink` in the main thread of a process: SIGTERM or SIGINT stops it cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: writing the current batch and stopping", signum)
        stop.set()

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        return run_sink(
            settings,
            database_url,
            group_id=group_id,
            batch_size=batch_size,
            batch_timeout=batch_timeout,
            stop=stop,
            max_idle_seconds=max_idle_seconds,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM/SIGINT (or idle); 0 on a clean stop, 1 on an error."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        settings = Settings.from_env()
        stats = run_until_signalled(
            settings,
            args.database_url or default_database_url(settings),
            group_id=args.group,
            batch_size=args.batch_size,
            batch_timeout=args.batch_timeout,
            max_idle_seconds=args.max_idle_seconds,
        )
    except ConvotrailError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(stats.describe())
    return 0
