"""How the local stack fails: one line naming the problem and the fix, never a hang."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convotrail.settings import Settings
from convotrail.stack import LocalStack


def _convotrail(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convotrail", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def _bare_env(tmp_path: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCHEMA_"))}
    env.pop("JAVA_HOME", None)
    env.update(PATH=path, CONVOTRAIL_HOME=str(tmp_path / "home"),
               CONVOTRAIL_CACHE=str(tmp_path / "cache"))  # fmt: skip
    return env


def _dir_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only links to the named tools (and python for the CLI itself)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in tools:
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            (bindir / tool).symlink_to(found.stdout.strip())
    return str(bindir)


def test_missing_java_is_one_line_with_the_fix(tmp_path: Path) -> None:
    result = _convotrail(["stack", "start"], _bare_env(tmp_path, _dir_with(tmp_path, "mvn")))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Java 17+ not found: install a JDK (apt-get install openjdk-17-jdk-headless) "
        "or set JAVA_HOME to one"
    ]


def test_missing_maven_is_one_line_with_the_fix(tmp_path: Path) -> None:
    result = _convotrail(["stack", "fetch"], _bare_env(tmp_path, _dir_with(tmp_path, "java")))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Maven (mvn) not found on PATH: install it")


def test_stop_after_a_crash_removes_stale_pid_files(tmp_path: Path) -> None:
    stack = LocalStack(Settings.from_env({"CONVOTRAIL_HOME": str(tmp_path)}))
    stack.state_dir.mkdir(parents=True)
    # A pid that is certainly not our JVM: this test process itself.
    (stack.state_dir / "kafka.pid").write_text(f"{os.getpid()}\n")
    (stack.state_dir / "registry.pid").write_text("999999999\n")
    assert [s.state for s in stack.status()] == ["stale", "stale"]
    messages = stack.stop()
    assert any("removed stale pid file" in line for line in messages)
    assert not (stack.state_dir / "kafka.pid").exists()
    assert not (stack.state_dir / "registry.pid").exists()
    assert [s.state for s in stack.status()] == ["stopped", "stopped"]


def test_status_exit_code_says_not_running(tmp_path: Path) -> None:
    env = _bare_env(tmp_path, os.environ["PATH"])
    result = _convotrail(["stack", "status"], env)
    assert result.returncode == 3
    assert "kafka     stopped" in result.stdout
    assert "registry  stopped" in result.stdout


@pytest.mark.parametrize("variable", ["CONVOTRAIL_KAFKA_PORT", "CONVOTRAIL_REGISTRY_PORT"])
def test_bad_port_setting_is_rejected(tmp_path: Path, variable: str) -> None:
    env = _bare_env(tmp_path, os.environ["PATH"])
    env[variable] = "http"
    result = _convotrail(["stack", "status"], env)
    assert result.returncode == 1
    assert f"error: {variable}='http' is not an integer" in result.stderr
