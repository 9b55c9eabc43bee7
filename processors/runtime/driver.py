"""A topology in process, without Kafka, like Kafka Streams' TopologyTestDriver.

Records go in with `pipe`, what the handlers send is collected in `produced`, the
stores live in RocksDB under a directory of the caller's, and commits and timers
happen when the caller says (`commit`, `fire_due`). The same Task, store and
handler code as the stream loop runs; only the consumer and the transactional
producer are replaced. For unit tests of processor shells, and for the benchmark
of a processor's own work (decode, core, encode) on the same events as the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from processors.runtime.store import PartitionStore
from processors.runtime.task import Headers, Task, report_dead_letters
from processors.runtime.topology import Topology
from schemas.keys import partition_of

A = TypeVar("A")


@dataclass(frozen=True)
class Produced:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | str | None], ...] = ()
    partition: int | None = None

    def header(self, name: str) -> bytes | str | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass
class DriverRecord:
    """A consumed record, as the handlers see it (the Record protocol)."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] = field(default_factory=list)
    _timestamp: int = 0

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)


class TopologyDriver(Generic[A]):
    def __init__(
        self,
        topology: Topology[A],
        state_dir: Path,
        partitions: int = 1,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self.partitions = partitions
        self.clock = clock
        self.produced: list[Produced] = []
        self.changelog: list[Produced] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self._tasks: dict[int, Task[A]] = {}

    # The Output protocol.
    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self.produced.append(Produced(topic, key, value, tuple(headers or ()), partition))

    def task(self, partition: int) -> Task[A]:
        task = self._tasks.get(partition)
        if task is None:
            topology = self.topology
            clock = topology.clock
            if clock is None and self.clock is not None:
                fixed = self.clock
                clock = lambda _task: fixed()  # noqa: E731 - a one-line adapter
            task = Task(
                app_id=topology.app_id,
                partition=partition,
                app=topology.app,
                output=self,
                dead_letter_topics=dict(topology.dead_letters),
                clock=clock,
            )
            for spec in topology.stores:
                directory = self.state_dir / topology.changelog(spec.name) / str(partition)
                task.stores[spec.name] = PartitionStore(spec, directory, partition)
            self._tasks[partition] = task
        return task

    def pipe(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
        timestamp: int = 0,
    ) -> None:
        """One record through its topic's handler, as the loop would call it."""
        if partition is None:
            partition = partition_of(key, self.partitions) if key is not None else 0
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        record = DriverRecord(topic, partition, offset, key, value, list(headers), timestamp)
        self.topology.handlers[topic](self.task(partition), record)

    def fire_due(self) -> None:
        on_due = self.topology.on_due
        if on_due is None:
            return
        for task in self._tasks.values():
            now = task.now()
            for name, store in task.stores.items():
                for entry in store.due(now):
                    on_due(task, name, entry)

    def commit(self) -> None:
        """The loop's commit without Kafka: deferred outputs, changelog, stores."""
        for task in self._tasks.values():
            if self.topology.before_commit is not None:
                self.topology.before_commit(task)
            for name, store in task.stores.items():
                if not store.changed:
                    continue
                records = store.prepare()
                changelog = self.topology.changelog(name)
                for key, value in records:
                    self.changelog.append(Produced(changelog, key, value, (), task.partition))
                store.commit(records, None)
            task.pending.clear()
            report_dead_letters(task)

    def outputs(self, topic: str) -> list[Produced]:
        return [record for record in self.produced if record.topic == topic]

    def store(self, name: str, partition: int = 0) -> PartitionStore[Any]:
        return self.task(partition).store(name)

    def close(self) -> None:
        for task in self._tasks.values():
            for store in task.stores.values():
                store.close()
        self._tasks.clear()
