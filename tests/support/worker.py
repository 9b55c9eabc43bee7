"""Run `convotrail worker` as a real process against the session's broker and registry."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from convotrail.settings import Settings


def worker_env(
    settings: Settings,
    home: Path,
    timers: bool = False,
    timer_policy: Path | None = None,
    replay: bool = False,
) -> dict[str, str]:
    """The environment of a worker process. Timers are off unless asked for: the
    generated histories lie in the past, so their timers would all fire at once and
    the oracle (the core without timers) would not match; tests/integration/
    test_timers.py runs them."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(settings.partitions),
        CONVOTRAIL_HOME=str(home),
        CONVOTRAIL_TIMERS="true" if timers else "false",
        CONVOTRAIL_REPLAY="true" if replay else "false",
    )
    if timer_policy is not None:
        env["CONVOTRAIL_TIMER_POLICY"] = str(timer_policy)
    return env


def start_worker(
    settings: Settings,
    home: Path,
    log_name: str = "worker.log",
    metrics_port: int | None = None,
    timers: bool = False,
    timer_policy: Path | None = None,
    replay: bool = False,
    processor: str = "conversation",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    log = (home / log_name).open("ab")
    env = worker_env(settings, home, timers, timer_policy, replay)
    env["CONVOTRAIL_PROCESSOR"] = processor
    env.update(extra_env or {})
    if metrics_port is not None:
        env["CONVOTRAIL_METRICS_PORT"] = str(metrics_port)
    return subprocess.Popen(
        [sys.executable, "-m", "convotrail", "worker", "--verbose"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_worker(
    settings: Settings,
    home: Path,
    metrics_port: int | None = None,
    timers: bool = False,
    timer_policy: Path | None = None,
    replay: bool = False,
    processor: str = "conversation",
    extra_env: dict[str, str] | None = None,
    log_name: str = "worker.log",
) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(settings, home, log_name=log_name, metrics_port=metrics_port,
                           timers=timers, timer_policy=timer_policy, replay=replay,
                           processor=processor, extra_env=extra_env)  # fmt: skip
    try:
        yield process
    finally:
        stop_worker(process)
