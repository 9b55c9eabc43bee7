"""The worker's in-memory index of pending timers, by due time, per partition.

The timers themselves are durable: they are a function of each conversation's
state (timers.py), which lives in the changelog-backed memory table. This index
is only a way to find the next due timer without scanning the table; it is
rebuilt from the table whenever partitions are assigned and recovered, and kept
up to date as the agent writes memories.

A timer handed out by `due` is "in flight" until the state stops arming it (the
derived event came back through the log and was applied); if that has not
happened after `retry_after`, it is handed out again. Firing twice is harmless:
the derived event's id comes from the timer's identity.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processors.conversation.timers import Timer


@dataclass
class TimerIndex:
    retry_after: timedelta = timedelta(seconds=30)
    _by_conversation: dict[str, tuple[int, frozenset[Timer]]] = field(default_factory=dict)
    # Per partition, (due_at, conversation_id, timer_id), lazily invalidated: an
    # entry whose timer is no longer in _by_conversation is skipped when popped.
    # One heap per partition because in replay mode each partition has its own clock.
    _heaps: dict[int, list[tuple[datetime, str, str]]] = field(default_factory=dict)
    _size: int = 0
    # Timers handed out and not yet disarmed, oldest first, for retries.
    _in_flight: dict[Timer, datetime] = field(default_factory=dict)
    _retries: deque[tuple[datetime, int, Timer]] = field(default_factory=deque)

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._by_conversation.clear()
        self._heaps.clear()
        self._in_flight.clear()
        self._retries.clear()
        self._size = 0

    def set(self, partition: int, conversation_id: str, timers: Iterable[Timer]) -> None:
        """The conversation's timers are now exactly `timers`."""
        new = frozenset(timers)
        _, old = self._by_conversation.get(conversation_id, (partition, frozenset()))
        if new == old:
            return
        if new:
            self._by_conversation[conversation_id] = (partition, new)
        else:
            self._by_conversation.pop(conversation_id, None)
        self._size += len(new) - len(old)
        for timer in old - new:
            self._in_flight.pop(timer, None)
        heap = self._heaps.setdefault(partition, [])
        for timer in new - old:
            heapq.heappush(heap, (timer.due_at, conversation_id, timer.timer_id))
        # A heap keeps stale entries until they surface; rebuild the heaps when
        # they outnumber the live timers, so that they do not grow without bound.
        if len(heap) > 1024 and sum(map(len, self._heaps.values())) > 4 * (self._size + 256):
            self._compact()

    def _compact(self) -> None:
        self._heaps = {}
        for conversation_id, (partition, timers) in self._by_conversation.items():
            heap = self._heaps.setdefault(partition, [])
            heap += [(t.due_at, conversation_id, t.timer_id) for t in timers]
        for heap in self._heaps.values():
            heapq.heapify(heap)

    def _live(self, conversation_id: str, timer: Timer) -> bool:
        return timer in self._by_conversation.get(conversation_id, (0, frozenset()))[1]

    def next_due(self) -> datetime | None:
        earliest: datetime | None = None
        for heap in self._heaps.values():
            while heap and not self._live(heap[0][1], Timer(*heap[0])):
                heapq.heappop(heap)
            if heap and (earliest is None or heap[0][0] < earliest):
                earliest = heap[0][0]
        return earliest

    def due(self, now: Callable[[int], datetime]) -> list[tuple[int, Timer]]:
        """Timers due at `now(partition)`, earliest first per partition. They are in
        flight from then on: handed out again after `retry_after` if still armed."""
        fired: list[tuple[int, Timer]] = []
        for partition, heap in self._heaps.items():
            moment = now(partition)
            while heap and heap[0][0] <= moment:
                timer = Timer(*heapq.heappop(heap))
                if self._live(timer.conversation_id, timer):
                    self._in_flight[timer] = moment
                    self._retries.append((moment, partition, timer))
                    fired.append((partition, timer))
        while self._retries:
            since, partition, timer = self._retries[0]
            if now(partition) - since < self.retry_after:
                break
            self._retries.popleft()
            if self._in_flight.get(timer) == since and self._live(timer.conversation_id, timer):
                self._in_flight[timer] = now(partition)
                self._retries.append((now(partition), partition, timer))
                fired.append((partition, timer))
        return fired
