"""`convotrail produce`: publish a JSON-lines file of events, one event per line.

The file is not trusted. It is read as bytes and only \\n ends a line (a lone CR
is part of its line, so line numbers match what `wc -l` and editors count); each
line is decoded on its own, so invalid UTF-8 refuses that line only; a line over
MAX_LINE_BYTES is refused without being held in memory. Each line is validated
on its own: a valid line is sent, an invalid one is refused with its number and
reason, and nothing of it is sent; nothing a bad line does stops the lines after
it. The summary counts what was acknowledged by the broker, refused, failed, and
left unacknowledged when the delivery timeout ran out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any

from connectors.publisher import DeliveryReport, EventPublisher
from schemas.errors import SerdeError

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1 << 20
_READ = 1 << 16

# Exit statuses of `convotrail produce` (README, --help).
EXIT_OK = 0  # every event acknowledged
EXIT_FAILED = 1  # some event not acknowledged, or nothing could be tried
EXIT_USAGE = 2  # click's usage errors
EXIT_REFUSED = 3  # some line refused; every valid line acknowledged


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
    submitted: int = 0
    seconds: float = 0.0

    @property
    def unacknowledged(self) -> int:
        """Events handed to the producer with no answer yet (the timeout ran out)."""
        return max(0, self.submitted - self.sent - len(self.failed))

    @property
    def events_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_status(self) -> int:
        if self.failed or self.unacknowledged:
            return EXIT_FAILED
        return EXIT_REFUSED if self.refused else EXIT_OK

    def describe(self) -> str:
        lost = f", unacknowledged {self.unacknowledged}" if self.unacknowledged else ""
        return (
            f"sent {self.sent}, refused {len(self.refused)}, failed {len(self.failed)}{lost} "
            f"in {self.seconds:.2f} s ({self.events_per_second:,.0f} events/s)"
        )


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the \\n), or None for a line over MAX_LINE_BYTES."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)  # binary readline: only \n ends a line
        if not line:
            return
        number += 1
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield number, line.rstrip(b"\n")
            continue
        # Too long: skip to its end without keeping it.
        while line and not line.endswith(b"\n"):
            line = stream.readline(_READ)
        yield number, None


class _Blank(Exception):
    pass


def parse_line(data: bytes | None) -> Any:
    """The JSON value of one line; raises ValueError with the reason, _Blank for blank."""
    if data is None:
        raise ValueError(f"longer than {MAX_LINE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start + 1})") from None
    text = text.rstrip(" \t\r")  # JSON's whitespace; kept at the front, so columns match
    if not text.lstrip(" \t\r"):
        raise _Blank
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"not valid JSON: {str(exc)[:120]}") from None


def produce_lines(
    lines: Iterator[tuple[int, bytes | None]],
    publisher: EventPublisher,
    on_line: Callable[[int], None] = lambda _: None,
    on_refusal: Callable[[LineRefusal], None] = lambda _: None,
    flush_timeout: float = 30.0,
) -> ProduceSummary:
    """Validate and publish every line; wait for the delivery reports (up to
    `flush_timeout` after the last line) before returning."""
    summary = ProduceSummary()
    started = time.perf_counter()

    def on_done(future: Future[DeliveryReport]) -> None:
        error = future.exception()
        if error is None:
            summary.sent += 1
        else:
            summary.failed.append(str(error))

    for number, data in lines:
        on_line(len(data or b"") + 1)
        try:
            raw = parse_line(data)
            future = publisher.publish_json(raw)
        except _Blank:
            continue
        except (ValueError, SerdeError) as exc:  # InvalidEvent is a ValueError
            reason = f"cannot be encoded: {exc}" if isinstance(exc, SerdeError) else str(exc)
            refusal = LineRefusal(number, reason)
            summary.refused.append(refusal)
            on_refusal(refusal)
            continue
        except Exception as exc:  # a bug must not cost the lines after this one
            log.debug("line %d", number, exc_info=True)
            summary.failed.append(f"line {number}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        summary.submitted += 1
        future.add_done_callback(on_done)
    if publisher.flush(flush_timeout) == 0:
        # Every report is served; the poller thread may still be running a callback.
        deadline = time.monotonic() + 1.0
        while summary.sent + len(summary.failed) < summary.submitted:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
    summary.seconds = time.perf_counter() - started
    return summary
