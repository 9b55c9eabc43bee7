"""SASL/SCRAM-SHA-512 against the real broker: with credentials the pipeline works end to
end (topics, `convotrail produce`, a worker, a reader), without them or with a wrong
password every command stops at once with one line naming the setting to fix.

The session's local stack always has a SASL_PLAINTEXT listener (SCRAM-SHA-512) next to
its PLAINTEXT one; this module adds one SCRAM user to it. Against an external cluster
or testcontainers there is no such listener, and the module is skipped.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from convotrail import clients
from convotrail.settings import Settings
from convotrail.stack import Endpoints, LocalStack
from schemas.codecs import ModelCodec
from schemas.examples import EXAMPLES
from schemas.model import TimelineEntry
from schemas.serde import AvroSerde
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, worker_env

pytestmark = pytest.mark.integration

USER = f"convotrail-{uuid.uuid4().hex[:8]}"
PASSWORD = secrets.token_urlsafe(18)
WRONG_PASSWORD = secrets.token_urlsafe(18)
REFUSAL_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def scram_stack(kafka_endpoints: Endpoints, local_stack: LocalStack) -> LocalStack:
    """The session's local stack, with USER able to log in on its SASL listener."""
    if kafka_endpoints.bootstrap_servers != local_stack.endpoints.bootstrap_servers:
        pytest.skip("needs the project's local stack: only it has the SASL_PLAINTEXT listener")
    local_stack.add_scram_user(USER, PASSWORD)
    return local_stack


def _sasl_variables(password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD": password,
    }


@pytest.fixture
def sasl_settings(settings: Settings, scram_stack: LocalStack, tmp_path: Path) -> Settings:
    """The test's settings (topic prefix, registry), with Kafka reached over SASL/SCRAM."""
    return Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": scram_stack.sasl_bootstrap_servers,
            "SCHEMA_REGISTRY_URL": settings.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix,
            "CONVOTRAIL_HOME": str(tmp_path / "home"),
            "CONVOTRAIL_PARTITIONS": str(settings.partitions),
            **_sasl_variables(PASSWORD),
        }
    )


def _env(settings: Settings, home: Path, sasl: dict[str, str]) -> dict[str, str]:
    """A CLI process's environment: the worker's, with exactly the given SASL settings."""
    env = {
        key: value
        for key, value in worker_env(settings, home).items()
        if not key.startswith("KAFKA_") or key == "KAFKA_BOOTSTRAP_SERVERS"
    }
    return {**env, **sasl}


def _convotrail(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "convotrail", *args],
        env=env, capture_output=True, text=True, timeout=REFUSAL_TIMEOUT, check=False,
    )  # fmt: skip


def _history(path: Path, conversation_id: str) -> Path:
    """A short conversation as `convotrail produce` reads it, in the recent past."""
    names = ["CONVERSATION_CREATED", "REASSIGNED", "TAG_ADDED", "RESOLVED"]
    start = datetime.now(UTC) - timedelta(minutes=len(names) + 1)
    lines = [
        json.dumps(
            dict(EXAMPLES[name], conversation_id=conversation_id,
                 occurred_at=(start + timedelta(minutes=index)).isoformat())
        )
        for index, name in enumerate(names)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_pipeline_runs_over_sasl_scram(sasl_settings: Settings, tmp_path: Path) -> None:
    env = _env(sasl_settings, tmp_path / "cli-home", _sasl_variables(PASSWORD))
    created = _convotrail(["topics", "create"], env)
    assert created.returncode == 0, created.stderr
    conversation = f"cnv-{uuid.uuid4().hex[:8]}"
    events = _history(tmp_path / "events.jsonl", conversation)
    produced = _convotrail(["produce", "-q", "-f", str(events)], env)
    assert produced.returncode == 0, produced.stderr
    assert "sent 4, refused 0, failed 0" in produced.stdout

    # The reader is built by convotrail.clients from the same SASL settings.
    topic = sasl_settings.topics.conversation_timeline
    codec = ModelCodec(AvroSerde(clients.registry(sasl_settings)), topic, TimelineEntry)
    reader = clients.consumer(
        sasl_settings,
        f"test-{uuid.uuid4()}",
        defaults={"auto.offset.reset": "earliest", "enable.auto.commit": False},
    )
    entries: list[TimelineEntry] = []

    def four_entries() -> bool:
        message = reader.poll(0.5)
        if message is not None:
            assert message.error() is None, message.error()
            entries.append(codec.decode(message.value()))
        return len(entries) >= 4

    with running_worker(
        sasl_settings, tmp_path / "worker-home", extra_env=_sasl_variables(PASSWORD)
    ) as worker:
        try:
            reader.subscribe([topic])
            wait_until(four_entries, timeout=45, interval=0, what="4 timeline entries")
        finally:
            reader.close()
        assert worker.poll() is None, "the worker stopped: see worker-home/worker.log"
    assert {entry.conversation_id for entry in entries} == {conversation}
    texts = [entry.text for entry in entries]
    assert len(texts) == 4, texts
    assert "Dana reassigned this conversation from Lee to Sam" in texts


COMMANDS = {
    "worker": ["worker"],
    "produce": ["produce", "-q", "-f", "EVENTS"],
    "topics create": ["topics", "create"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("credentials", ["none", "wrong password"])
def test_the_sasl_listener_refuses_in_one_line(
    sasl_settings: Settings, tmp_path: Path, command: str, credentials: str
) -> None:
    sasl = {} if credentials == "none" else _sasl_variables(WRONG_PASSWORD)
    env = _env(sasl_settings, tmp_path / "home", sasl)
    events = str(_history(tmp_path / "events.jsonl", "cnv-refused"))
    args = [events if arg == "EVENTS" else arg for arg in COMMANDS[command]]
    started = time.monotonic()
    result = _convotrail(args, env)
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    # One line naming the problem and the setting to fix: no traceback, no librdkafka logs.
    assert len(lines) == 1, result.stderr
    address = sasl_settings.bootstrap_servers
    if credentials == "none":
        assert lines[0].startswith(
            f"error: Kafka at {address} closed the connection without answering: "
            "the listener probably requires authentication"
        ), lines[0]
        assert "KAFKA_SECURITY_PROTOCOL" in lines[0]
    else:
        assert lines[0].startswith(
            f"error: Kafka at {address} refused the credentials of {USER!r}: "
        ), lines[0]
        assert "invalid credentials" in lines[0]
        assert "KAFKA_SASL_PASSWORD" in lines[0]
        assert WRONG_PASSWORD not in result.stderr + result.stdout
    assert elapsed < 30, f"{command} took {elapsed:.0f} s to refuse"
