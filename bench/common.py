"""Shared set-up for the benchmarks: a real broker and registry, fresh topics, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from convotrail.settings import Settings
from convotrail.stack import LocalStack
from convotrail.topics import admin_client, ensure_topics, topic_specs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


def bench_settings(partitions: int = 6) -> tuple[Settings, LocalStack | None]:
    """Settings for a benchmark run: the configured cluster, or the local stack (started)."""
    settings = Settings.from_env()
    local = None
    if settings.uses_local_stack:
        local = LocalStack(settings)
        local.start()
    return replace(settings, partitions=partitions), local


def fresh_topics(settings: Settings, label: str) -> Settings:
    """The same settings with a new topic prefix, every topic created."""
    prefixed = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": settings.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": f"bench-{label}-{uuid.uuid4().hex[:8]}.",
            "CONVOTRAIL_PARTITIONS": str(settings.partitions),
        }
    )
    ensure_topics(admin_client(prefixed), topic_specs(prefixed))
    return prefixed


def best_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """The median of `runs` measurements (each a rate), and all of them."""
    rates = [measure() for _ in range(runs)]
    return statistics.median(rates), rates


def timed(action: Callable[..., Any], *args: Any) -> float:
    """Seconds `action(*args)` takes."""
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def rotated(items: list[T], by: int) -> list[T]:
    """`items` starting at `by`: round n of a run measures the contestants in another
    order, so none is always first (cold) or last (after the others' garbage)."""
    shift = by % len(items)
    return items[shift:] + items[:shift]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def distribution(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of `values` (and how many there were)."""
    return {
        "count": len(values),
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, default=str))
    return path
