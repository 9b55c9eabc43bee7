"""Dead letters count on convotrail_dlq_records_total when their transaction commits:
an aborted transaction's records are processed again, and would otherwise count twice."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from processors.runtime.task import Headers, Task, report_dead_letters


class _Output:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None,
             headers: Headers | None = None, partition: int | None = None) -> None:  # fmt: skip
        self.sent.append((topic, key))


class _Record:
    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


def _count() -> float:
    labels = {"app": "test-dlq-app", "topic": "in", "reason": "bad"}
    return REGISTRY.get_sample_value("convotrail_dlq_records_total", labels) or 0.0


def test_a_dead_letter_counts_once_when_its_transaction_commits() -> None:
    output = _Output()
    task: Task[Any] = Task("test-dlq-app", 0, None, output, {"in": "in.dlq"})
    before = _count()
    task.dead_letter(_Record(), "bad", "why")
    assert output.sent == [("in.dlq", b"k")] and _count() == before
    task.dead_lettered.clear()  # the transaction aborted: what the loop does
    task.dead_letter(_Record(), "bad", "why")  # the record again, after the rewind
    report_dead_letters(task)  # committed
    assert _count() == before + 1
    report_dead_letters(task)
    assert _count() == before + 1
