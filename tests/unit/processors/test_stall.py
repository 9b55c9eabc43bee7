"""The stall detector (processors/stall.py): a partition that lags and does not move
is reseeked once, then given up on; progress or catching up clears it."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Awaitable, Callable
from typing import Any

from processors.shell import install_stall_guard
from processors.stall import StallDetector, Verdict

_TP = namedtuple("_TP", "topic partition")

TP = ("conversation-events", 1)


def test_a_partition_without_lag_is_fine_however_long_it_is_quiet() -> None:
    detector = StallDetector(stall_after=30)
    for now in (0, 40, 400):
        assert detector.observe(TP, position=120, end=120, now=now) is Verdict.FINE


def test_lag_without_progress_is_reseeked_once_then_given_up() -> None:
    detector = StallDetector(stall_after=30)
    assert detector.observe(TP, position=10, end=50, now=0) is Verdict.FINE
    assert detector.observe(TP, position=10, end=50, now=29) is Verdict.FINE
    assert detector.observe(TP, position=10, end=50, now=31) is Verdict.RESEEK
    assert detector.mark(TP) == 10
    assert detector.observe(TP, position=10, end=50, now=45) is Verdict.FINE  # time to act
    assert detector.observe(TP, position=10, end=50, now=62) is Verdict.GIVE_UP


def test_progress_keeps_a_busy_partition_fine() -> None:
    detector = StallDetector(stall_after=30)
    detector.observe(TP, position=0, end=10_000, now=0)
    for step in range(1, 20):
        detector.processed(TP, next_offset=step * 500, now=step * 20)
        assert detector.observe(TP, position=0, end=10_000, now=step * 20 + 5) is Verdict.FINE
    assert detector.mark(TP) == 9_500


def test_a_reseek_that_works_clears_the_partition() -> None:
    detector = StallDetector(stall_after=30)
    detector.observe(TP, position=10, end=50, now=0)
    assert detector.observe(TP, position=10, end=50, now=31) is Verdict.RESEEK
    detector.processed(TP, next_offset=50, now=33)
    assert detector.observe(TP, position=50, end=50, now=90) is Verdict.FINE
    assert detector.observe(TP, position=50, end=80, now=100) is Verdict.FINE  # new records
    assert detector.observe(TP, position=50, end=80, now=131) is Verdict.RESEEK  # fresh try


def test_progress_reported_out_of_order_never_moves_the_mark_back() -> None:
    detector = StallDetector()
    detector.processed(TP, next_offset=40, now=1)
    detector.processed(TP, next_offset=30, now=2)
    assert detector.mark(TP) == 40


def test_reset_forgets_everything_after_a_rebalance() -> None:
    detector = StallDetector(stall_after=30)
    detector.observe(TP, position=10, end=50, now=0)
    detector.reset()
    assert detector.mark(TP) is None
    assert detector.observe(TP, position=10, end=50, now=100) is Verdict.FINE


class _Consumer:
    """Just enough of faust's consumer for the guard: a rebalance starts mid-check."""

    flow_active = True

    def assignment(self) -> set[Any]:
        return {_TP("conversation-events", 0)}

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, 10)

    async def position(self, tp: Any) -> int:
        raise RuntimeError(f"Partition {tp} is not assigned")  # what aiokafka raises then


class _App:
    rebalancing = False
    in_recovery = False

    def __init__(self) -> None:
        self.consumer = _Consumer()
        self.timers: list[Callable[[], Awaitable[None]]] = []

    def timer(self, interval: float) -> Callable[[Any], Any]:
        def register(fun: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self.timers.append(fun)
            return fun

        return register


def test_an_error_inside_the_guard_never_escapes_into_the_worker() -> None:
    """An exception out of a faust timer crashes the app: the guard swallows its own
    (CI saw a rebalance begin between two of its awaits) and starts over."""
    app = _App()
    detector = install_stall_guard(app, {"conversation-events"})  # type: ignore[arg-type]
    detector.processed(("conversation-events", 0), 3, now=0)
    (guard,) = app.timers
    asyncio.run(guard())  # does not raise
    assert detector.mark(("conversation-events", 0)) is None  # reset: starts over
