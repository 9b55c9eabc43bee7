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
