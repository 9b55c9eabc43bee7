"""`convotrail produce`: publish a JSON-lines file of events, one event per line.

Each line is validated on its own: a valid line is sent, an invalid line is
reported with its line number and reason and nothing of it is sent. The summary
counts what was sent (acknowledged by the broker), refused and failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from connectors.publisher import DeliveryReport, EventPublisher
from schemas.validation import InvalidEvent


@dataclass(frozen=True)
class LineRefusal:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ProduceSummary:
    sent: int = 0
    refused: list[LineRefusal] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"sent {self.sent}, refused {len(self.refused)}, failed {len(self.failed)} "
            f"in {self.seconds:.2f} s ({self.events_per_second:,.0f} events/s)"
        )


def produce_lines(
    lines: Iterable[str],
    publisher: EventPublisher,
    on_line: Callable[[str], None] = lambda _: None,
    on_refusal: Callable[[LineRefusal], None] = lambda _: None,
) -> ProduceSummary:
    """Validate and publish every line; wait for every delivery report before returning."""
    summary = ProduceSummary()
    started = time.perf_counter()

    def on_done(future: Future[DeliveryReport]) -> None:
        error = future.exception()
        if error is None:
            summary.sent += 1
        else:
            summary.failed.append(str(error))

    for number, line in enumerate(lines, start=1):
        on_line(line)
        text = line.strip()
        if not text:
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            refusal = LineRefusal(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
        else:
            try:
                publisher.publish_json(raw).add_done_callback(on_done)
                continue
            except InvalidEvent as exc:
                refusal = LineRefusal(number, str(exc))
        summary.refused.append(refusal)
        on_refusal(refusal)
    publisher.flush()
    summary.seconds = time.perf_counter() - started
    return summary
