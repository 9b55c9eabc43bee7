"""Bring stores up to date from their changelogs before their partitions are processed.

A store restores from its checkpoint (rule 2 of store.py) to the end of its
changelog partition as a read_committed consumer sees it: `enable.partition.eof`
reports the end, past the last transaction marker. The restorer reads a bounded
number of records per `step`, so the stream loop keeps polling (the group does not
think the process died) and the tasks that are running keep running while others
restore, as Kafka Streams does.

A checkpoint the changelog cannot continue from (the topic was recreated, or its
start was deleted) is not trusted: the store is wiped and restored in full.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

from processors.runtime.errors import RuntimeFailure
from processors.runtime.store import PartitionStore

log = logging.getLogger(__name__)

RESTORED = Counter(
    "convotrail_restore_records_total", "Changelog records restored into local stores", ["app"]
)
RESTORE_REMAINING = Gauge(
    "convotrail_restore_remaining_records",
    "Changelog records left to restore, per store partition being restored",
    ["app", "changelog", "partition"],
)
# A changelog partition that reports no end for this long is a broker problem.
STALL_AFTER = 120.0


@dataclass
class _Restoring:
    store: PartitionStore[object]
    topic: str
    end: int  # the high watermark when the restore began (progress only)
    position: int
    since: float


class Restorer:
    def __init__(self, consumer: Consumer, app_id: str) -> None:
        self.consumer = consumer
        self.app_id = app_id
        self._active: dict[tuple[str, int], _Restoring] = {}

    def __bool__(self) -> bool:
        return bool(self._active)

    def add(self, store: PartitionStore[object], topic: str) -> bool:
        """Start restoring `store` from `topic`; False when it is up to date already."""
        partition = store.partition
        try:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
        except KafkaException as exc:
            raise RuntimeFailure(f"changelog {topic}[{partition}]: no offsets: {exc}") from exc
        start = store.checkpoint
        if start is not None and not low <= start <= high:
            log.warning("%s[%d]: checkpoint %d is outside the changelog (%d..%d): the local "
                        "store is rebuilt in full", topic, partition, start, low, high)  # fmt: skip
            store.reset()
            start = None
        if start is not None and start >= high:
            return False  # nothing written since the checkpoint
        if start is None and low == high:
            store.restore([], high)  # an empty changelog
            return False
        begin = OFFSET_BEGINNING if start is None else start
        self._active[(topic, partition)] = _Restoring(
            store, topic, high, low if start is None else start, time.monotonic()
        )
        RESTORE_REMAINING.labels(self.app_id, topic, str(partition)).set(
            high - (low if start is None else start)
        )
        self.consumer.incremental_assign([TopicPartition(topic, partition, begin)])
        log.info("restoring %s[%d] from %s to about %d", topic, partition,
                 "the beginning" if start is None else start, high)  # fmt: skip
        return True

    def remove(self, store: PartitionStore[object], topic: str) -> None:
        """The partition went away mid-restore."""
        entry = self._active.pop((topic, store.partition), None)
        if entry is not None:
            self.consumer.incremental_unassign([TopicPartition(topic, store.partition)])
            RESTORE_REMAINING.remove(self.app_id, topic, str(store.partition))

    def step(
        self, max_records: int = 10_000, timeout: float = 0.05
    ) -> list[PartitionStore[object]]:
        """Read what is there (up to `max_records`); return the stores now complete."""
        if not self._active:
            return []
        records: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = defaultdict(list)
        ends: dict[tuple[str, int], int] = {}
        for message in self.consumer.consume(max_records, timeout):
            slot = (message.topic() or "", message.partition() or 0)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends[slot] = message.offset() or 0
                    continue
                if error.fatal():
                    raise RuntimeFailure(f"restore consumer failed: {error.str()}")
                log.warning("restoring %s[%s]: %s", slot[0], slot[1], error.str())
                continue
            key = message.key()
            if key is None or slot not in self._active:
                continue
            records[slot].append((key, message.value()))
            self._active[slot].position = (message.offset() or 0) + 1
        done: list[PartitionStore[object]] = []
        now = time.monotonic()
        for slot, entry in list(self._active.items()):
            batch = records.get(slot, [])
            if slot in ends:
                entry.store.restore(batch, ends[slot])
                self._finish(slot, entry)
                done.append(entry.store)
            elif batch:
                entry.store.restore(batch, entry.position)
                entry.since = now
            elif now - entry.since > STALL_AFTER:
                raise RuntimeFailure(
                    f"changelog {slot[0]}[{slot[1]}] gave nothing for {STALL_AFTER:.0f} s "
                    f"while restoring (at {entry.position}, end about {entry.end})"
                )
            if batch:
                RESTORED.labels(self.app_id).inc(len(batch))
                if slot in self._active:
                    RESTORE_REMAINING.labels(self.app_id, slot[0], str(slot[1])).set(
                        max(0, entry.end - entry.position)
                    )
        return done

    def _finish(self, slot: tuple[str, int], entry: _Restoring) -> None:
        del self._active[slot]
        self.consumer.incremental_unassign([TopicPartition(*slot)])
        RESTORE_REMAINING.remove(self.app_id, slot[0], str(slot[1]))
        log.info("restored %s[%d] up to %s", slot[0], slot[1], entry.store.checkpoint)

    def close(self) -> None:
        self.consumer.close()
