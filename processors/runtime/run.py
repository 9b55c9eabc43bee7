"""One processor process: lock its state, check its topics, serve its health, run its
loop until SIGTERM or SIGINT, and stop cleanly (commit, leave the group).

    run(settings, topology, RuntimeOptions(...), http=("0.0.0.0", 9300))

Failures the operator must fix are raised as RuntimeFailure with one line (the CLI
prints it and exits 1); nothing else in a processor installs signal handlers.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from convotrail.settings import Settings
from processors.runtime import health, preflight
from processors.runtime.config import RuntimeOptions
from processors.runtime.errors import StateDirLocked
from processors.runtime.health import LoopStatus
from processors.runtime.loop import StreamLoop
from processors.runtime.topology import Topology

log = logging.getLogger(__name__)


def default_instance_id(home: Path) -> str:
    """The host name plus a digest of the state home: stable across restarts of the same
    worker (a StatefulSet pod keeps both), distinct for two workers on one host."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:6]
    return f"{socket.gethostname()}-{digest}"


def state_dir(settings: Settings, instance_id: str, app_id: str) -> Path:
    """Where one worker keeps its stores: per processor (whose app_id carries the topic
    prefix) and instance, so that two prefixes or two processors sharing one
    CONVOTRAIL_HOME never share a directory, a lock or a store."""
    return settings.home / "state" / app_id / instance_id


@contextlib.contextmanager
def locked(directory: Path, app_id: str) -> Iterator[None]:
    """One process per (state directory, processor): a second one would share RocksDB."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{app_id}.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise StateDirLocked(
            f"{directory} is in use by {app_id} (pid {owner}): give each worker its own "
            "--instance-id or CONVOTRAIL_HOME"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run(
    settings: Settings,
    topology: Topology[Any],
    options: RuntimeOptions,
    http: tuple[str, int] | None = None,
    stop: threading.Event | None = None,
) -> None:
    stop = stop or threading.Event()
    with locked(options.state_dir, topology.app_id):
        preflight.check(settings, topology, settings.connect_timeout)
        status = LoopStatus()
        server = None
        if http is not None:
            probe = health.Probe(
                alive=lambda: health.since(status.last_beat),
                ready=lambda: (
                    status.ready and not status.stopping,
                    f"{status.assigned} partitions running" if status.ready
                    else "waiting for partitions or restoring",
                ),
            )  # fmt: skip
            server = health.serve(http[0], http[1], probe)
        loop = StreamLoop(settings, topology, options, status)
        quiet_garbage_collector()
        previous = _on_signals(stop)
        try:
            log.info("%s running as %s (state in %s)", topology.app_id,
                     loop.transactional_id, options.state_dir)  # fmt: skip
            loop.run(stop)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if server is not None:
                server.shutdown()
                server.server_close()


def quiet_garbage_collector() -> None:
    """Rare automatic collections: a processor's objects are acyclic records, and a
    full collection over thousands of cached memories stalled the loop for 195 ms
    (a latency tail). Young generations still collect; full collections run when
    the loop is idle (loop.py). What exists at start-up is frozen out of them."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000_000)


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: committing and stopping", signum)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
