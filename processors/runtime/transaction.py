"""The transactional producer of one runtime process, and what its errors mean.

One producer per process with a stable `transactional.id` (`<app_id>-<instance>`):
`init_transactions` at start fences a zombie of the same instance (its open
transaction is aborted), and since the consumer group's metadata goes with every
offset commit (KIP-447), an instance that lost its partitions cannot commit
positions for them either.

librdkafka sorts failures into three kinds, and so does this module:
retriable (call again), abortable (abort, rewind to the committed positions, go
on: `AbortableError`) and fatal (fenced, not authorized, misconfigured: exit with
one line: `FatalKafkaError`).

A fourth case is librdkafka's own: after a broker restart a producer can keep a
coordinator it no longer talks to (librdkafka issue #5511), and
`send_offsets_to_transaction` may then block past its timeout, for good (#5456).
Both were seen here in the broker-restart test. So every transactional call runs
on the producer's own thread under a watchdog: a call that does not return in
time, or keeps timing out, is abortable, and a producer that cannot abort (or
whose call never returned) is replaced by a new one with the same
transactional.id, whose `init_transactions` aborts the old transaction on the
broker. The stuck thread is left behind, a daemon, with the old producer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from processors.runtime.errors import AbortableError, FatalKafkaError
from processors.runtime.task import Headers

log = logging.getLogger(__name__)

# Seconds a transactional call may take before it is retried (retriable errors); a
# commit takes milliseconds, so a call that keeps timing out is stuck, not slow.
CALL_TIMEOUT = 10.0
RETRY_FOR = 25.0
# init_transactions after a broker restart waits for the coordinator to load.
INIT_FOR = 120.0
# A call still running this long after its own timeout will not return.
WATCHDOG_MARGIN = 5.0

_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
}
_NOT_AUTHORIZED = {
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "the transactional id",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "a topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "the consumer group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "the cluster (IdempotentWrite)",
}


def _close_quietly(producer: Producer) -> None:
    """Close a replaced producer; it is fenced by its successor, so its close() may
    raise that: expected, and not worth a traceback on the log."""
    try:
        producer.close()
    except (KafkaException, RuntimeError) as exc:
        log.debug("closing a replaced producer: %s", exc)


def explain(error: KafkaError, transactional_id: str) -> str:
    """One line an operator can act on."""
    code = error.code()
    if code in _FENCED:
        return (
            f"fenced: another process started with transactional.id {transactional_id} "
            "(two workers with the same --instance-id?); this one stops so that the "
            "newer one owns the work"
        )
    if code in _NOT_AUTHORIZED:
        return (
            f"not authorized on {_NOT_AUTHORIZED[code]} ({error.str()}): grant the "
            f"principal access, transactional.id {transactional_id}"
        )
    return f"Kafka producer failed: {error.str()}"


def _error_of(exc: KafkaException) -> KafkaError:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(KafkaError._FAIL, str(exc))


class _CallThread:
    """One daemon thread running calls one at a time, so the caller can stop waiting
    for one that never returns (a daemon does not hold the process at exit)."""

    def __init__(self) -> None:
        self._requests: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
        threading.Thread(target=self._serve, name="txn-calls", daemon=True).start()

    def _serve(self) -> None:
        while True:
            action, reply = self._requests.get()
            try:
                reply.put((True, action()))
            except BaseException as exc:  # handed to the caller
                reply.put((False, exc))

    def run(self, action: Callable[[], Any], timeout: float) -> Any:
        reply: queue.Queue[Any] = queue.Queue(1)
        self._requests.put((action, reply))
        try:
            ok, value = reply.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if ok:
            return value
        raise value


class Transactions:
    """Begin lazily, produce, commit with the consumer's positions; classify failures."""

    def __init__(self, new_producer: Callable[[], Producer], transactional_id: str) -> None:
        self.new_producer = new_producer
        self.producer = new_producer()
        self.transactional_id = transactional_id
        self.open = False
        self.started = 0.0
        self.replaced = 0
        self.stuck = False
        self._calls = _CallThread()

    def _watched(self, what: str, action: Callable[[], Any]) -> Any:
        """`action` on the transactional-call thread; abortable if it does not return."""
        try:
            return self._calls.run(action, CALL_TIMEOUT + WATCHDOG_MARGIN)
        except TimeoutError:
            self.stuck = True
            raise AbortableError(
                f"{what} did not return in {CALL_TIMEOUT + WATCHDOG_MARGIN:.0f} s "
                "(librdkafka #5456): the producer will be replaced"
            ) from None

    def _call(self, what: str, action: Callable[[], Any], retry_for: float = RETRY_FOR) -> Any:
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return self._watched(what, action)
            except KafkaException as exc:
                error = _error_of(exc)
                if error.fatal() or error.code() in _FENCED or error.code() in _NOT_AUTHORIZED:
                    raise FatalKafkaError(explain(error, self.transactional_id)) from exc
                if error.txn_requires_abort():
                    raise AbortableError(f"{what}: {error.str()}") from exc
                if error.retriable() and time.monotonic() < deadline:
                    log.warning("%s: %s (retrying)", what, error.str())
                    continue
                raise AbortableError(f"{what}: {error.str()}") from exc

    def init(self) -> None:
        try:
            self._call("init_transactions",
                       lambda: self.producer.init_transactions(CALL_TIMEOUT), INIT_FOR)  # fmt: skip
        except AbortableError as exc:
            raise FatalKafkaError(f"the transaction coordinator did not answer: {exc}") from exc

    def begin(self) -> None:
        if not self.open:
            self._call("begin_transaction", self.producer.begin_transaction)
            self.open = True
            self.started = time.monotonic()

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None:
        if not self.open:
            self.begin()
        produce = self.producer.produce
        extra: dict[str, Any] = {}
        if headers:
            extra["headers"] = headers if isinstance(headers, list) else list(headers)
        if on_delivery is not None:
            extra["on_delivery"] = on_delivery
        while True:
            try:
                # Positional (topic, value, key[, partition]): a keyword dict per record
                # is measurable at tens of thousands of records a second.
                if partition is None:
                    produce(topic, value, key, **extra)
                else:
                    produce(topic, value, key, partition, **extra)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self.producer.poll(0.05)
            except KafkaException as exc:
                error = self._cause(_error_of(exc))
                if error.fatal() or error.code() in _FENCED:
                    raise FatalKafkaError(explain(error, self.transactional_id)) from exc
                raise AbortableError(f"produce to {topic}: {error.str()}") from exc

    def _cause(self, error: KafkaError) -> KafkaError:
        """A producer in a fatal state refuses every produce with "Local: Fatal error";
        its cause (fenced...) comes from the next poll, or from the error callback."""
        if error.code() != KafkaError._FATAL:
            return error
        try:
            self.producer.poll(0)
        except KafkaException as exc:
            return _error_of(exc)
        return KafkaError(KafkaError._FATAL, error.str(), fatal=True)

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Positions with the group's metadata, then the commit: all or nothing."""
        if offsets:
            self._call(
                "send_offsets_to_transaction",
                lambda: self.producer.send_offsets_to_transaction(
                    offsets, group_metadata, CALL_TIMEOUT
                ),
            )
        self._call("commit_transaction", lambda: self.producer.commit_transaction(CALL_TIMEOUT))
        self.open = False

    def abort(self, replace: bool = True) -> None:
        """Abort the open transaction. `replace=False` after a failure (fenced, or
        shutting down): never re-initialise the transactional id then, which would
        fence whoever legitimately holds it now."""
        if not self.open:
            return
        self.open = False
        if self.stuck:
            if replace:
                self.replace()
            return
        if not replace:
            try:
                self._watched("abort_transaction",
                              lambda: self.producer.abort_transaction(CALL_TIMEOUT))  # fmt: skip
            except (KafkaException, AbortableError) as exc:
                log.debug("abort after a failure: %s", exc)
            return
        try:
            self._call("abort_transaction", lambda: self.producer.abort_transaction(CALL_TIMEOUT))
        except AbortableError as exc:
            # Neither committed nor aborted: the producer's state is unknown. A new one
            # with the same transactional.id makes the broker abort what this one began.
            log.warning("the transaction could not be aborted (%s): replacing the producer", exc)
            self.replace()

    def replace(self) -> None:
        old = self.producer
        try:
            old.purge()
        except (KafkaException, RuntimeError) as exc:
            log.debug("purging the old producer: %s", exc)
        # close() may wait on the coordinator this producer lost: not on the loop's
        # thread. The new producer's init_transactions fences it anyway.
        threading.Thread(
            target=_close_quietly, args=(old,), name="old-producer", daemon=True
        ).start()
        if self.stuck:  # its thread is still inside the call that never returned
            self._calls = _CallThread()
            self.stuck = False
        self.replaced += 1
        self.producer = self.new_producer()
        self.open = False
        self.init()

    def close(self) -> None:
        try:
            self.producer.flush(10)
        except KafkaException as exc:  # fenced or failed: nothing left to deliver anyway
            log.debug("flush on close: %s", exc)
