"""What the stream loop does when the group moves partitions (librdkafka calls these
from inside `consume`, on the loop's thread).

- assigned: the open transaction is committed first (a restore may take long, and a
  transaction must not outlive transaction.timeout.ms); then the group's committed
  positions are fetched, which under read_committed waits for a pending
  transactional commit of those partitions (a dead instance's), so the changelog
  the restore reads and the positions agree; then the tasks are created, paused
  until restored (tasks.py).
- revoked: what was read from them is committed before they go, then their tasks
  close (stores stay on disk).
- lost (the group moved on without this instance: a long pause, a partition): the
  open transaction is aborted, it may no longer commit, and the partitions that
  remain are rewound to their committed positions.

Errors are kept and raised from the loop after `consume` returns: an exception
escaping a rebalance callback would leave librdkafka's assignment half done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, TopicPartition

from processors.runtime import metrics
from processors.runtime.errors import AbortableError

if TYPE_CHECKING:
    from processors.runtime.loop import StreamLoop

log = logging.getLogger(__name__)


def describe(partitions: list[TopicPartition], offsets: bool = True) -> str:
    if not partitions:
        return "nothing"
    if not offsets:
        return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
    return ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions)


class Rebalancing:
    def __init__(self, loop: StreamLoop) -> None:
        self.loop = loop

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        loop = self.loop
        try:
            action()
        except AbortableError as exc:
            log.warning("%s: aborting the transaction: %s", what, exc)
            try:
                loop.abort()
            except BaseException as inner:
                loop.defer(inner)
        except BaseException as exc:
            loop.defer(exc)

    def _unassign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.loop.tasks.remove(partitions)
        metrics.forget_lag(self.loop.app, partitions)
        if self.loop.cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        loop = self.loop

        def assign() -> None:
            if not loop.failed:
                loop.commit("assign")
            committed = loop.committed(partitions)
            if loop.cooperative:
                consumer.incremental_assign(committed)
            else:
                consumer.assign(committed)
            loop.tasks.add(committed)
            log.info("assigned %s", describe(committed))

        self._guarded("assignment", assign)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        loop = self.loop

        def revoke() -> None:
            if loop.failed:
                loop.abort()
            else:
                loop.commit("revoke")
            self._unassign(consumer, partitions)
            log.info("revoked %s", describe(partitions, offsets=False))

        self._guarded("revocation", revoke)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        loop = self.loop

        def lost() -> None:
            log.warning("lost %s (the group moved on): aborting the open transaction",
                        describe(partitions, offsets=False))  # fmt: skip
            loop.abort()
            self._unassign(consumer, partitions)
            loop.rewind()

        self._guarded("lost partitions", lost)
