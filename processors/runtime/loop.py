"""The stream loop: one consumer, one transactional producer, every task of a process.

This is the one place where processors touch Kafka, modelled on Kafka Streams'
stream thread. Each iteration consumes a batch (rebalance callbacks run inside
`consume`), restores a little when tasks are restoring, runs each record's handler,
fires what is due, and commits when the transaction has COMMIT_RECORDS records or
is COMMIT_INTERVAL old, whichever comes first: transactions cost throughput when
small and latency when old, and this bounds both.

A commit, in this order (each step needs the one before it):

1. deferred outputs (`before_commit`, e.g. the newest state snapshot per
   conversation) are produced: they belong to this transaction's records;
2. every store's changed keys are produced to its changelog, one record per key
   with its latest value (the store's memory of this transaction);
3. the consumer's next positions are added to the transaction with the group's
   metadata, so an instance that has lost its partitions cannot commit them;
4. the transaction commits: outputs, changelog records and positions become
   visible together, or none of them;
5. only now do the stores write RocksDB, with the changelog offset they reach as
   checkpoint: RocksDB never holds what the changelog does not, so a crash between
   4 and 5 costs a short restore, never a wrong state.

An abortable error, or a handler that raises, aborts the transaction: every store
drops its open writes and every input partition is sought back to its committed
position, so the records are processed again against the committed state (a
record whose handler raised goes to its DLQ the second time, with the error).
Fatal errors (fenced, not authorized) raise FatalKafkaError: the process exits with
one line. Rebalances: a partition leaving is committed first (`on_revoke`), one
arriving is restored before it is processed (tasks.py), one lost (the group moved
on without us) aborts the open transaction.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    Message,
    TopicPartition,
)

from convotrail.logs import record_fields
from convotrail.settings import Settings
from processors.runtime import metrics, partitioning, wiring
from processors.runtime.config import RuntimeOptions
from processors.runtime.errors import AbortableError, FatalKafkaError
from processors.runtime.health import LoopStatus
from processors.runtime.rebalance import Rebalancing
from processors.runtime.restore import Restorer
from processors.runtime.task import Headers, report_dead_letters
from processors.runtime.tasks import Tasks
from processors.runtime.topology import Topology
from processors.runtime.transaction import Transactions
from processors.runtime.wiring import ClientErrors

log = logging.getLogger(__name__)


class _HandlerFailed(Exception):
    pass


class StreamLoop:
    def __init__(
        self,
        settings: Settings,
        topology: Topology[Any],
        options: RuntimeOptions,
        status: LoopStatus | None = None,
    ) -> None:
        self.topology = topology
        self.options = options
        self.status = status or LoopStatus()
        self.app = topology.app_id
        self.transactional_id = f"{topology.app_id}-{options.instance_id}"
        self.cooperative = not topology.co_partitioned
        self._deferred: BaseException | None = None
        self.failed = False  # set when the loop ends by an exception
        # Metric children bound once: a labels() lookup per record was 9% of the loop.
        self._sent: dict[str, int] = {}
        self._collected = time.monotonic()
        self._holds_input = False
        self._latency = metrics.LATENCY.labels(self.app)
        self._batch_seconds = metrics.BATCH_SECONDS.labels(self.app)
        self._commit_phases = {
            phase: metrics.COMMIT_PHASE_SECONDS.labels(self.app, phase)
            for phase in ("outputs", "kafka", "stores")
        }
        # Both outcomes and the processed count exist (at 0) from the start: rate() and
        # the alert rules (deploy/prometheus/rules/) see the first abort and a worker
        # that never processed anything, instead of a series appearing with its value.
        for outcome in ("committed", "aborted"):
            metrics.TRANSACTIONS.labels(self.app, outcome)
        metrics.RECORDS_IN.labels(self.app)
        self.client_errors = ClientErrors(self.transactional_id)
        self.consumer = wiring.stream_consumer(settings, topology, options, self.client_errors)
        self.txn = Transactions(
            wiring.producer_factory(settings, self.transactional_id, self.client_errors),
            self.transactional_id,
        )
        restore_consumer = wiring.restore_consumer(settings, topology, self.client_errors)
        self.tasks = Tasks(
            topology, self.consumer, Restorer(restore_consumer, self.app), self, options.state_dir
        )
        self.handlers = dict(topology.handlers)
        self.positions: dict[tuple[str, int], int] = {}
        self.records_in_txn = 0
        self.timestamps: list[int] = []
        self.poison: dict[tuple[str, int, int], str] = {}
        self._changelog_ends: dict[tuple[str, int], int] = {}
        self._next_tick = 0.0
        self._next_lag = 0.0
        self._broken_timers: set[tuple[int, str, bytes, str]] = set()
        self.guard = partitioning.PartitionGuard(partitioning.counter(self.consumer))

    # -- the Output protocol: what tasks send goes into the open transaction --------------

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self.txn.send(topic, key, value, headers, partition)
        # Counted here, reported at commit: a Prometheus inc() takes a lock.
        self._sent[topic] = self._sent.get(topic, 0) + 1
        if topic in self.handlers:
            # A record in an input topic inside an open transaction holds that
            # partition's last stable offset: no read_committed reader, this loop
            # included, sees anything after it until the commit. Commit sooner.
            self._holds_input = True

    # -- running ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.txn.init()
        rebalancing = Rebalancing(self)
        self.consumer.subscribe(self.topology.inputs, on_assign=rebalancing.on_assign,
                                on_revoke=rebalancing.on_revoke,
                                on_lost=rebalancing.on_lost)  # fmt: skip
        clean = False
        try:
            while not stop.is_set():
                self._iteration()
            self.status.stopping = True
            self.commit("stop")
            clean = True
        except FatalKafkaError as exc:
            # librdkafka names a fatal error's cause (fenced...) through the error
            # callback, which poll() serves; prefer that line to "Local: Fatal error".
            with contextlib.suppress(Exception):
                self.txn.producer.poll(0)
            if self.client_errors.fatal is not None and self.client_errors.fatal not in str(exc):
                raise FatalKafkaError(self.client_errors.fatal) from exc
            raise
        finally:
            self.failed = not clean
            self._close()

    def _iteration(self) -> None:
        restoring = self.tasks.restoring
        wait = 0.0 if restoring else self.options.poll_timeout
        if self.txn.open:  # never past the commit deadline
            deadline = self.txn.started + self._commit_interval()
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        messages = self.consumer.consume(self.options.max_batch, wait)
        self._raise_deferred()
        started = time.perf_counter()
        try:
            if restoring:
                self.tasks.step()
            for message in messages:
                self._process(message)
            now = time.monotonic()
            if now >= self._next_tick:
                self._next_tick = now + self.options.tick
                self._fire_due()
            if messages:
                self._batch_seconds.observe(time.perf_counter() - started)
            if self.txn.open and (
                self.records_in_txn >= self.options.commit_records
                or now - self.txn.started >= self._commit_interval()
            ):
                self.commit("interval")
        except (AbortableError, _HandlerFailed) as exc:
            log.warning("aborting the transaction: %s", exc)
            self.rewind()
        self.status.beat(self.tasks.ready, len(self.tasks.running))
        if not messages and not self.txn.open:
            self._collect_when_idle()
        if time.monotonic() >= self._next_lag:
            self._next_lag = time.monotonic() + self.options.lag_interval
            self._report_scheduled()  # restored or revoked stores, while idle
            running = self.tasks.running
            metrics.report_lag(
                self.app,
                self.consumer,
                [tp for tp in self.tasks.assigned() if tp.partition in running],
            )

    def _process(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._consumer_error(error)
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        task = self.tasks.running.get(partition)
        if task is None:
            return  # restoring (paused) or gone: read again from its committed position
        if not self.txn.open:
            self.txn.begin()
        failure = self.poison.get((topic, partition, offset)) if self.poison else None
        key = message.key()
        misplaced = None if key is None else self.guard.misplaced(topic, partition, key)
        if misplaced is not None:
            partitioning.refuse(task, message, *misplaced, observed=self.topology.observed)
        elif failure is not None:
            task.dead_letter(message, "processing-error", failure, "ProcessingError")
        else:
            try:
                self.handlers[topic](task, message)
            except (AbortableError, FatalKafkaError):
                raise
            except Exception as exc:
                log.exception("%s[%d]@%d: the handler failed; the transaction is aborted and "
                              "the record goes to the DLQ when it comes again",
                              topic, partition, offset,
                              extra=record_fields(topic, partition, offset))  # fmt: skip
                self.poison[(topic, partition, offset)] = repr(exc)[:2000]
                raise _HandlerFailed(f"{topic}[{partition}]@{offset}: {exc!r}") from exc
        self.positions[(topic, partition)] = offset + 1
        self.records_in_txn += 1
        kind, stamp = message.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE:
            self.timestamps.append(stamp)

    def _consumer_error(self, error: KafkaError) -> None:
        code = error.code()
        if error.fatal() or code == KafkaError._FATAL or code in (
            KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
        ):  # fmt: skip
            raise FatalKafkaError(f"consumer: {error.str()}")
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise FatalKafkaError(
                f"an input topic is missing ({error.str()}): run `convotrail topics create`"
            )
        log.warning("consumer: %s", error.str())

    def _fire_due(self) -> None:
        on_due = self.topology.on_due
        if on_due is None:
            return
        for task in list(self.tasks.running.values()):
            now = task.now()
            for name, store in task.stores.items():
                if store.spec.schedule is None:
                    continue
                for entry in store.due(now):
                    slot = (task.partition, name, entry.key, entry.tag)
                    if slot in self._broken_timers:
                        continue
                    self.txn.begin()
                    try:
                        on_due(task, name, entry)
                    except (AbortableError, FatalKafkaError):
                        raise
                    except Exception:
                        # No record to dead-letter: log it, count it, leave it alone
                        # until the next start rather than failing every tick.
                        log.exception("%s[%d]: firing %s %r failed; skipped until restart",
                                      name, task.partition, entry.tag, entry.key,
                                      extra=record_fields(partition=task.partition))  # fmt: skip
                        metrics.TIMER_FAILURES.labels(self.app).inc()
                        self._broken_timers.add(slot)

    # -- commit and abort ----------------------------------------------------------------------

    def _changelog_delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            slot = (message.topic() or "", message.partition() or 0)
            self._changelog_ends[slot] = max(self._changelog_ends.get(slot, -1),
                                             message.offset() or 0)  # fmt: skip

    def commit(self, why: str) -> None:
        if not self.txn.open:
            return
        started = time.perf_counter()
        tasks = self.tasks.all()
        # 1. Deferred outputs.
        if self.topology.before_commit is not None:
            for task in tasks:
                self.topology.before_commit(task)
        # 2. The changelog: one record per changed key.
        prepared = []
        for task in tasks:
            for name, store in task.stores.items():
                if not store.changed:
                    continue
                records = store.prepare()
                changelog = self.topology.changelog(name)
                for key, value in records:
                    self.txn.send(changelog, key, value, partition=task.partition,
                                  on_delivery=self._changelog_delivered)  # fmt: skip
                prepared.append((store, changelog, records))
        # 3 and 4. Positions with the group's metadata, then commit.
        produced = time.perf_counter()
        offsets = [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]
        self.txn.commit(offsets, self.consumer.consumer_group_metadata())
        committed = time.perf_counter()
        # 5. The local stores, now that the changelog has their values.
        for store, changelog, records in prepared:
            last = self._changelog_ends.pop((changelog, store.partition), None)
            store.commit(records, None if last is None else last + 1)
        stored = time.perf_counter()
        phases = self._commit_phases
        phases["outputs"].observe(produced - started)
        phases["kafka"].observe(committed - produced)
        phases["stores"].observe(stored - committed)
        for task in tasks:
            task.pending.clear()
            report_dead_letters(task)
        self._report_scheduled()
        committed_at = time.time() * 1000
        observe = self._latency.observe
        for stamp in self.timestamps:
            observe(max(0.0, committed_at - stamp) / 1000)
        metrics.RECORDS_IN.labels(self.app).inc(self.records_in_txn)
        for topic, count in self._sent.items():
            metrics.labelled(metrics.RECORDS_OUT, self.app, topic).inc(count)
        metrics.TRANSACTIONS.labels(self.app, "committed").inc()
        metrics.COMMIT_SECONDS.labels(self.app).observe(time.perf_counter() - started)
        metrics.BATCH_RECORDS.labels(self.app).observe(self.records_in_txn)
        if self.poison:
            self.poison = {s: e for s, e in self.poison.items()
                           if self.positions.get(s[:2], -1) <= s[2]}  # fmt: skip
        self._reset_transaction()
        log.debug("committed (%s) in %.1f ms", why, (time.perf_counter() - started) * 1000)

    def _commit_interval(self) -> float:
        interval = self.options.commit_interval
        return min(interval, self.options.input_commit_interval) if self._holds_input else interval

    def _reset_transaction(self) -> None:
        self._holds_input = False
        self._sent.clear()
        self.positions.clear()
        self.records_in_txn = 0
        self.timestamps.clear()
        self._changelog_ends.clear()

    def abort(self) -> None:
        metrics.TRANSACTIONS.labels(self.app, "aborted").inc()
        self.txn.abort(replace=not self.failed)
        for task in self.tasks.all():
            for store in task.stores.values():
                store.abort()
            task.pending.clear()
            task.dead_lettered.clear()  # replayed: counted when they commit
        self._reset_transaction()

    def rewind(self) -> None:
        """Abort, then seek every running input back to where the group committed."""
        self.abort()
        running = [tp for tp in self.tasks.assigned() if tp.partition in self.tasks.running]
        if not running:
            return
        committed = self.committed(running)
        self.tasks.positions_after_abort(committed)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def committed(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return wiring.committed_positions(self.consumer, partitions)

    # -- errors and shutdown -----------------------------------------------------------------

    def _collect_when_idle(self) -> None:
        """A full garbage collection now and then, at an idle moment (run.py keeps the
        automatic ones rare: over a cache of decoded memories one took 195 ms)."""
        now = time.monotonic()
        if now - self._collected >= self.options.full_gc_interval:
            gc.collect()
            self._collected = now

    def _report_scheduled(self) -> None:
        tasks = self.tasks.all()
        for spec in self.topology.stores:
            if spec.scheduled_gauge is not None:
                spec.scheduled_gauge.set(sum(task.stores[spec.name].scheduled for task in tasks))

    def defer(self, error: BaseException) -> None:
        """Raise `error` from the loop (it happened inside a librdkafka callback)."""
        self._deferred = error

    def _raise_deferred(self) -> None:
        if self.client_errors.fatal is not None:
            raise FatalKafkaError(self.client_errors.fatal)
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            raise deferred

    def _close(self) -> None:
        """Leave the group and release everything; after a failure, best effort only, so
        that the failure itself is what the operator sees."""
        steps = [self.consumer.close, self.tasks.close, self.tasks.restorer.close, self.txn.close]
        if self.failed:
            steps.insert(0, self.abort)
        for step in steps:
            try:
                step()  # consumer.close leaves the group (on_revoke commits nothing more)
            except Exception:
                if not self.failed:
                    raise
                log.debug("closing after a failure: %s failed", step, exc_info=True)
