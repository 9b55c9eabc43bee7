"""A task: one partition number of a processor, with its stores and its way out.

Every input topic of a processor has the same partition count, and records that
must meet (a conversation's events and its memory; a message's notifications and
its route) share a partition number. So the unit of work is the partition
number: the task for partition N owns partition N of every store, and handlers
called for a record of partition N get that task. Handlers only decode, call the
pure core, and write through the task (`store(...)`, `send`, `dead_letter`).

`pending` is the handler's scratch for the open transaction (e.g. the latest state
snapshot per conversation, sent once at commit); the runtime empties it after every
commit and abort. `scratch` lives as long as the task (e.g. a replay clock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from convotrail.logs import record_fields
from convotrail.metrics import DLQ_RECORDS
from processors.runtime.store import PartitionStore
from schemas import headers as h

log = logging.getLogger(__name__)

A = TypeVar("A")

Headers = Sequence[tuple[str, bytes | str | None]]


class Record(Protocol):
    """What handlers read of a consumed record (confluent_kafka.Message has it)."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> Any: ...

    def timestamp(self) -> tuple[int, int]: ...


class Output(Protocol):
    """Where a task's records go: the transactional producer, or a test driver."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None: ...


ERROR_BYTES = 1024
# What a dead letter carries of its record at most, far below the broker's 1 MB.
DLQ_KEY_BYTES = 4096
DLQ_VALUE_BYTES = 256 * 1024
DLQ_HEADER_BYTES = 64 * 1024


def bounded(text: str, limit: int = ERROR_BYTES) -> str:
    """At most `limit` UTF-8 bytes of printable text (control characters escaped)."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    data = text.encode()  # no lone surrogate is left: repr escaped them
    if len(data) <= limit:
        return text
    cut = data[: limit - 40].decode(errors="ignore")
    return f"{cut}... ({len(data)} bytes, truncated)"


def _fitting(record: Record) -> tuple[bytes | None, bytes | None, Headers, str]:
    """The record's key, value and headers cut to what a DLQ record can carry.

    A record near the broker's size limit plus the DLQ headers is over it: its dead
    letter would fail the transaction on every retry and stall the partition. The
    whole record stays readable at its source offset (dlq.source.*) while the topic
    retains it; `dlq.truncated` says what was cut."""
    key, value = record.key(), record.value()
    headers: Headers = record.headers() or ()
    cut = []
    if key is not None and len(key) > DLQ_KEY_BYTES:
        cut.append(f"key {len(key)} bytes")
        key = key[:DLQ_KEY_BYTES]
    if value is not None and len(value) > DLQ_VALUE_BYTES:
        cut.append(f"value {len(value)} bytes")
        value = value[:DLQ_VALUE_BYTES]
    size = sum(len(name) + len(v or b"") for name, v in headers)
    if size > DLQ_HEADER_BYTES:
        cut.append(f"{len(headers)} headers of {size} bytes dropped")
        headers = ()
    return key, value, headers, "; ".join(cut)


def header(record: Record, name: str) -> bytes | None:
    for key, value in record.headers() or ():
        if key == name:
            return value if isinstance(value, bytes) else None
    return None


@dataclass
class Task(Generic[A]):
    app_id: str
    partition: int
    app: A  # the processor's own context: codecs, options, metrics
    output: Output
    dead_letter_topics: dict[str, str]
    stores: dict[str, PartitionStore[Any]] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict)
    # Dead letters of the open transaction by (topic, reason): counted on the metric at
    # commit (`report_dead_letters`), so an aborted and replayed record counts once.
    dead_lettered: dict[tuple[str, str], int] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[Task[A]], int] | None = None

    def store(self, name: str) -> PartitionStore[Any]:
        return self.stores[name]

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self.output.send(topic, key, value, headers, partition)

    def dead_letter(
        self,
        record: Record,
        reason: str,
        error: str,
        error_class: str | None = None,
        extra: Headers = (),
        *,
        account: str | None = None,
        conversation: str | None = None,
    ) -> None:
        """The record as it came (key, value, headers) on its topic's DLQ, with why.

        The error is bounded (ERROR_BYTES) and escaped: it comes from untrusted
        input (a value quoted by a rule, a schema resolution naming both schemas)
        and lands in a header, a log line and an operator's terminal. `account` and
        `conversation`, when the handler decoded them, go into the log line's fields
        (`--log-format json`)."""
        topic = record.topic() or ""
        target = self.dead_letter_topics.get(topic)
        if target is None:
            raise KeyError(f"{self.app_id} has no dead-letter topic for {topic}")
        text = bounded(f"{reason}: {error}")
        fields = record_fields(topic, record.partition(), record.offset(), account, conversation)
        log.warning("%s[%s]@%s -> %s: %s", topic, record.partition(), record.offset(),
                    target, text, extra=fields)  # fmt: skip
        key, value, kept, truncated = _fitting(record)
        if truncated:
            extra = [*extra, (h.DLQ_TRUNCATED, truncated.encode())]
        headers: list[tuple[str, bytes | str | None]] = [
            *kept,
            *extra,
            (h.DLQ_ERROR, text.encode()),
            (h.DLQ_ERROR_CLASS, (error_class or reason).encode()),
            (h.DLQ_SOURCE_TOPIC, topic.encode()),
            (h.DLQ_SOURCE_PARTITION, str(record.partition()).encode()),
            (h.DLQ_SOURCE_OFFSET, str(record.offset()).encode()),
        ]
        self.output.send(target, key, value, headers, None)
        slot = (topic, reason)
        self.dead_lettered[slot] = self.dead_lettered.get(slot, 0) + 1

    def now(self) -> int:
        """Epoch ms: the processor's clock for this task (wall clock unless replaying)."""
        if self.clock is not None:
            return self.clock(self)
        return int(time.time() * 1000)


def report_dead_letters(task: Task[Any]) -> None:
    """After a commit: the transaction's dead letters onto the metric."""
    for (topic, reason), count in task.dead_lettered.items():
        DLQ_RECORDS.labels(task.app_id, topic, reason).inc(count)
    task.dead_lettered.clear()
