"""`convotrail serve` and `convotrail delivery serve` on a port that is taken: one line
on stderr naming the port and the fix, exit 1, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sink.store import store_at

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("command", [["serve"], ["delivery", "serve"]])
def test_a_port_in_use_is_one_line_and_exit_1(command: list[str], tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sink.db'}"
    with store_at(database):
        pass  # creates the schema, as the sink would
    env = {
        **os.environ,
        # Never contacted before the port is bound.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "SCHEMA_REGISTRY_URL": "http://127.0.0.1:9",
        "CONVOTRAIL_HOME": str(tmp_path / "home"),
    }
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        extra = ["--database-url", database] if command == ["serve"] else []
        result = subprocess.run(
            [sys.executable, "-m", "convotrail", *command, "--port", str(port), *extra],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {'read API' if command == ['serve'] else 'delivery intake'}: port {port} on "
        "127.0.0.1 is already in use; stop what holds it or choose another with --port"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["serve"], ["delivery", "serve"]])
def test_sigterm_stops_the_server_cleanly(command: list[str], tmp_path: Path) -> None:
    """What `docker stop` and Kubernetes send: the server closes and exits 0 at once,
    not after the grace period's SIGKILL."""
    import signal
    import time
    import urllib.request

    from tests.support.ports import free_ports

    database = f"sqlite:///{tmp_path / 'sink.db'}"
    with store_at(database):
        pass
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "SCHEMA_REGISTRY_URL": "http://127.0.0.1:9",
        "CONVOTRAIL_HOME": str(tmp_path / "home"),
    }
    (port,) = free_ports(1)
    extra = ["--database-url", database] if command == ["serve"] else []
    process = subprocess.Popen(
        [sys.executable, "-m", "convotrail", *command, "--port", str(port), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the server never answered /healthz"
                time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
