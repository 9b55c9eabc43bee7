"""The tasks of one process: created when their partitions are assigned, restored,
then running; closed when their partitions are revoked or lost.

A newly assigned partition is paused on the consumer until every store of its task
has been restored (restore.py); then it is resumed and sought to the position the
group committed, so that nothing the consumer may have fetched before the pause is
skipped. Stores stay on disk when a task closes: if the partition comes back, only
what was written meanwhile is restored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client import Gauge

from processors.runtime.restore import Restorer
from processors.runtime.store import PartitionStore
from processors.runtime.task import Output, Task
from processors.runtime.topology import Topology

log = logging.getLogger(__name__)

ASSIGNED = Gauge(
    "convotrail_partitions_assigned", "Input partitions assigned to this process", ["app"]
)
RESTORING = Gauge("convotrail_tasks_restoring", "Tasks whose stores are restoring", ["app"])


@dataclass
class _Entry:
    task: Task[Any]
    # Input topic -> the committed position to start from once restored.
    inputs: dict[str, int] = field(default_factory=dict)
    restoring: set[str] = field(default_factory=set)  # store names still restoring


class Tasks:
    def __init__(
        self,
        topology: Topology[Any],
        consumer: Consumer,
        restorer: Restorer,
        output: Output,
        state_dir: Path,
    ) -> None:
        self.topology = topology
        self.consumer = consumer
        self.restorer = restorer
        self.output = output
        self.state_dir = state_dir
        self._entries: dict[int, _Entry] = {}
        self.running: dict[int, Task[Any]] = {}

    @property
    def restoring(self) -> bool:
        return bool(self.restorer)

    @property
    def ready(self) -> bool:
        return bool(self._entries) and not self.restorer

    def all(self) -> list[Task[Any]]:
        return [entry.task for entry in self._entries.values()]

    def assigned(self) -> list[TopicPartition]:
        return [
            TopicPartition(topic, partition, offset)
            for partition, entry in self._entries.items()
            for topic, offset in entry.inputs.items()
        ]

    def add(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions (with their committed positions) joined this process: paused
        until their task is restored."""
        for tp in partitions:
            entry = self._entries.get(tp.partition)
            if entry is None:
                entry = self._entries[tp.partition] = _Entry(self._new_task(tp.partition))
                self._restore(entry)
            entry.inputs[tp.topic] = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            if entry.restoring:
                self.consumer.pause([TopicPartition(tp.topic, tp.partition)])
            else:
                self.running[tp.partition] = entry.task
        self._gauges()

    def _new_task(self, partition: int) -> Task[Any]:
        topology = self.topology
        task: Task[Any] = Task(
            app_id=topology.app_id,
            partition=partition,
            app=topology.app,
            output=self.output,
            dead_letter_topics=dict(topology.dead_letters),
            clock=topology.clock,
        )
        for spec in topology.stores:
            changelog = topology.changelog(spec.name)
            task.stores[spec.name] = PartitionStore(
                spec, self.state_dir / changelog / str(partition), partition
            )
        return task

    def _restore(self, entry: _Entry) -> None:
        for spec in self.topology.stores:
            store = entry.task.stores[spec.name]
            if self.restorer.add(store, self.topology.changelog(spec.name)):
                entry.restoring.add(spec.name)

    def step(self) -> None:
        """Restore some more; resume the tasks that are complete."""
        for store in self.restorer.step():
            entry = self._entries.get(store.partition)
            if entry is None:
                continue
            entry.restoring.discard(store.spec.name)
            if not entry.restoring:
                self._resume(entry)
        self._gauges()

    def _resume(self, entry: _Entry) -> None:
        partitions = [TopicPartition(t, entry.task.partition) for t in entry.inputs]
        self.consumer.resume(partitions)
        for topic, offset in entry.inputs.items():
            # Anything fetched before the pause is discarded by the seek.
            self.consumer.seek(TopicPartition(topic, entry.task.partition, offset))
        self.running[entry.task.partition] = entry.task
        log.info("partition %d restored and running", entry.task.partition)

    def remove(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions left this process; a task whose last input left is closed."""
        for tp in partitions:
            entry = self._entries.get(tp.partition)
            if entry is None:
                continue
            entry.inputs.pop(tp.topic, None)
            if entry.inputs:
                continue
            for spec in self.topology.stores:
                changelog = self.topology.changelog(spec.name)
                self.restorer.remove(entry.task.stores[spec.name], changelog)
            for store in entry.task.stores.values():
                store.close()
            del self._entries[tp.partition]
            self.running.pop(tp.partition, None)
        self._gauges()

    def positions_after_abort(self, committed: Iterable[TopicPartition]) -> None:
        """Remember where each input restarts after a rewind (for tasks still restoring)."""
        for tp in committed:
            entry = self._entries.get(tp.partition)
            if entry is not None and tp.topic in entry.inputs:
                entry.inputs[tp.topic] = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING

    def close(self) -> None:
        self.remove(self.assigned())

    def _gauges(self) -> None:
        ASSIGNED.labels(self.topology.app_id).set(
            sum(len(entry.inputs) for entry in self._entries.values())
        )
        RESTORING.labels(self.topology.app_id).set(len(self._entries) - len(self.running))
