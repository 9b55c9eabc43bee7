"""Bounce parsing time per email: every email of the bounce corpora through
`dsn.split` and `dsn.parse`, as the bounce worker calls them (issue 14: no email over
50 ms).

Each email is parsed `--repetitions` times after one warm-up call, and its time is
the median of its repetitions (one slow repetition, a garbage collection or the
other processes on the machine, does not make an email slow). The bare baseline,
measured in the same run on the same bytes and interleaved with it (one baseline
call, one parse, for each repetition), is `email.message_from_bytes` alone: the
standard library's MIME parsing that every parse starts with, so the ratio is what
reading the bounce costs on top of reading the email. A refusal (NotificationError:
not a bounce, no recipient) is a normal outcome and is timed like the others.

Reported: the median, p99 and max over the emails of both, their ratios, the five
slowest emails, and whether every email stays under the target. No broker: pure CPU,
one core.

    python -m bench.bounce_parse [--repetitions 7] [--corpus DIR]...
"""

from __future__ import annotations

import argparse
import email
import email.policy
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import percentile, save
from processors.delivery.notification import NotificationError
from processors.delivery.providers import dsn

ROOT = Path(__file__).resolve().parents[1]
CORPORA = (
    ROOT / "tests" / "fixtures" / "bounces-sisimai" / "emails",  # sisimai's, ~70 families
    ROOT / "tests" / "fixtures" / "bounces",  # flufl.bounce's and modern ones
)
TARGET_MS = 50.0


def parse(body: bytes) -> str:
    """What the worker does with one bounce email; its outcome, for the summary."""
    outcome = "parsed"
    for unit in dsn.split(body):
        try:
            dsn.parse(unit)
        except NotificationError as exc:
            outcome = exc.reason
    return outcome


def baseline(body: bytes) -> None:
    email.message_from_bytes(body, policy=email.policy.compat32)


def measure(body: bytes, repetitions: int) -> tuple[float, float, str]:
    """Median ms of the parse and of the baseline on `body`, and the parse's outcome."""
    outcome = parse(body)  # warm-up (and the outcome)
    baseline(body)
    parsed, bare = [], []
    for _ in range(repetitions):
        started = time.perf_counter_ns()
        baseline(body)
        middle = time.perf_counter_ns()
        parse(body)
        ended = time.perf_counter_ns()
        bare.append((middle - started) / 1e6)
        parsed.append((ended - middle) / 1e6)
    return statistics.median(parsed), statistics.median(bare), outcome


def emails(corpora: list[Path]) -> list[Path]:
    found = [p for corpus in corpora for p in sorted(corpus.iterdir()) if p.is_file()]
    return [p for p in found if p.suffix in (".eml", ".txt")]


def run(corpora: list[Path], repetitions: int) -> dict[str, Any]:
    paths = emails(corpora)
    if not paths:
        raise SystemExit(f"no .eml or .txt email under {', '.join(map(str, corpora))}")
    per_email: dict[str, tuple[float, float]] = {}
    outcomes: Counter[str] = Counter()
    for path in paths:
        parsed, bare, outcome = measure(path.read_bytes(), repetitions)
        per_email[str(path.relative_to(ROOT))] = (parsed, bare)
        outcomes[outcome] += 1
    parsed_ms = [p for p, _ in per_email.values()]
    bare_ms = [b for _, b in per_email.values()]
    ratios = [p / b for p, b in per_email.values() if b > 0]
    stats = {
        name: {
            "median": statistics.median(values),
            "p99": percentile(values, 0.99),
            "max": max(values),
        }
        for name, values in (("parse", parsed_ms), ("baseline", bare_ms), ("ratio", ratios))
    }
    slowest = sorted(per_email.items(), key=lambda item: -item[1][0])[:5]
    return {
        "emails": len(paths),
        "repetitions": repetitions,
        "outcomes": dict(outcomes.most_common()),
        "ms_per_email": stats,
        "slowest": [{"file": f, "parse_ms": p, "baseline_ms": b} for f, (p, b) in slowest],
        "over_target": sorted(f for f, (p, _) in per_email.items() if p > TARGET_MS),
    }


def report(result: dict[str, Any]) -> str:
    stats = result["ms_per_email"]
    parse_ms, bare_ms, ratio = stats["parse"], stats["baseline"], stats["ratio"]
    lines = [
        f"bounce emails: {result['emails']}, each the median of {result['repetitions']} "
        f"repetitions; outcomes {result['outcomes']}",
        f"{'ms per email':<32}{'median':>9}{'p99':>9}{'max':>9}",
    ]
    for label, row in (("dsn.split + dsn.parse", parse_ms),
                       ("email.message_from_bytes (bare)", bare_ms)):  # fmt: skip
        lines.append(f"{label:<32}{row['median']:>9.3f}{row['p99']:>9.3f}{row['max']:>9.3f}")
    lines.append(f"{'ratio, email by email':<32}{ratio['median']:>8.1f}x{ratio['p99']:>8.1f}x"
                 f"{ratio['max']:>8.1f}x")  # fmt: skip
    lines.append("slowest:")
    for row in result["slowest"]:
        lines.append(
            f"  {row['parse_ms']:8.3f} ms  (bare {row['baseline_ms']:.3f} ms)  {row['file']}"
        )
    over = result["over_target"]
    verdict = "met" if not over else f"MISSED by {len(over)}: {', '.join(over)}"
    lines.append(f"target, no email over {TARGET_MS:g} ms: {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--corpus", type=Path, action="append",
                        help="a directory of .eml / .txt emails (repeatable; "
                        "default: the sisimai corpus and tests/fixtures/bounces)")  # fmt: skip
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    corpora = args.corpus or list(CORPORA)
    for corpus in corpora:
        if not corpus.is_dir():
            parser.error(f"--corpus {corpus}: not a directory")
    result = run([c.resolve() for c in corpora], args.repetitions)
    print(report(result))
    print(f"results: {save('bounce_parse', result)}")


if __name__ == "__main__":
    main()
