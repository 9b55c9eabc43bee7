"""Noticing an input partition that lags while its worker reads nothing from it.

faust-streaming 0.15.3 (with aiokafka) can leave a partition it was just assigned
without fetch requests after a rebalance (faust-streaming issue #629): the worker is
"ready", the partition has records, and nothing arrives, silently, until someone
restarts it. The guard compares, every few seconds, each assigned input partition's
end offset (asked of the broker, not of the fetcher) with the worker's progress on
it; a partition that lags and has not moved for `stall_after` seconds is stalled.
The shell (processors/shell.py) then seeks it to where processing stands, which
makes the fetcher request it again, and if it is still stalled after another
period, exits the worker so that its supervisor restarts it (at least once plus the
crash guard make that safe: nothing is lost or doubled, only delayed).

Pure: offsets and times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    FINE = "fine"
    RESEEK = "reseek"  # stalled: seek it to the mark again
    GIVE_UP = "give-up"  # still stalled after a reseek: restart the worker


@dataclass
class _Partition:
    mark: int  # the next offset to process, as far as the guard knows
    since: float  # when the mark last moved (or lag first appeared)
    reseeked: bool = False


@dataclass
class StallDetector:
    stall_after: float = 30.0
    _partitions: dict[tuple[str, int], _Partition] = field(default_factory=dict)

    def reset(self) -> None:
        """After a rebalance: every partition starts over."""
        self._partitions.clear()

    def processed(self, tp: tuple[str, int], next_offset: int, now: float) -> None:
        """The agent finished records of `tp` up to `next_offset` (exclusive)."""
        state = self._partitions.get(tp)
        if state is None or next_offset > state.mark:
            self._partitions[tp] = _Partition(mark=next_offset, since=now)

    def observe(self, tp: tuple[str, int], position: int, end: int, now: float) -> Verdict:
        """One check of an assigned partition: `position` is where the consumer stands
        (used until the agent reports progress), `end` the broker's end offset."""
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _Partition(mark=position, since=now)
        if end <= state.mark:
            state.since, state.reseeked = now, False  # caught up: nothing to wait for
            return Verdict.FINE
        if now - state.since < self.stall_after:
            return Verdict.FINE
        if not state.reseeked:
            state.reseeked, state.since = True, now
            return Verdict.RESEEK
        return Verdict.GIVE_UP

    def mark(self, tp: tuple[str, int]) -> int | None:
        state = self._partitions.get(tp)
        return state.mark if state is not None else None
