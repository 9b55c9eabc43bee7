"""py-spy on a worker process for a measured window, and where its time went."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


class Profiler:
    """`py-spy record --threads --format raw` attached to `pid` until stopped. Idle
    samples (a thread waiting in consume(), a lock, a socket) are left out, so a
    thread's samples over (seconds x rate) is the share of the window it was busy.
    librdkafka's own threads are not Python threads and do not appear."""

    def __init__(self, pid: int, output: Path, rate: int = 200) -> None:
        self.output = output
        self.rate = rate
        self.started = time.monotonic()
        py_spy = str(Path(sys.executable).parent / "py-spy")
        command = [py_spy, "record", "--pid", str(pid), "--threads", "--rate", str(rate),
                   "--format", "raw", "-o", str(output)]  # fmt: skip
        self._log = output.with_suffix(".log").open("wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        finally:
            self._log.close()
        if not self.output.exists():
            log = self.output.with_suffix(".log").read_text(errors="replace")[-2000:]
            return {"error": f"py-spy wrote nothing: {log}"}
        return summarise(self.output, seconds * self.rate)


def summarise(path: Path, possible: float, top: int = 25) -> dict[str, Any]:
    """Where the busiest thread's time goes, from py-spy's collapsed stacks (--threads):
    its busy share of the window (`possible` samples), the frames that use its samples
    themselves (self) and the frames under which they are used (inclusive), as shares
    of its busy samples."""
    by_thread: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        by_thread.setdefault(thread, []).append((frames, int(count_text)))
    if not by_thread:
        return {"error": "no samples"}

    threads = {thread: sum(n for _, n in stacks) for thread, stacks in by_thread.items()}
    busiest = max(threads, key=lambda thread: threads[thread])
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in by_thread[busiest]:
        total += count
        if frames:
            # With its line: a call into C (consume, produce, fastavro) shows as the
            # Python line that makes it.
            own[_frame(frames[-1], line=True)] += count
        for frame in {_frame(f) for f in frames}:
            inclusive[frame] += count
    return {
        "path": str(path),
        "threads": threads,
        "busiest_thread": busiest,
        "busy_share": total / possible if possible else float("nan"),
        "self": [(frame, n / total) for frame, n in own.most_common(top)],
        "inclusive": [(frame, n / total) for frame, n in inclusive.most_common(top * 3)],
    }


def _frame(frame: str, line: bool = False) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)" or "(module.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    module = where if line else where.rsplit(":", 1)[0]
    module = module.rsplit("/", 1)[-1]
    return f"{name} ({module})" if module else name


def print_summary(summary: dict[str, Any], lines: int = 15) -> None:
    if "error" in summary:
        print(f"    profile: {summary['error']}")
        return
    print(f"    busiest thread {summary['busiest_thread']!r} busy {summary['busy_share']:.0%}")
    for frame, share in summary["self"][:lines]:
        print(f"    self {share:6.1%}  {frame}")
