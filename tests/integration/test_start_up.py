"""Starting `convotrail worker` and `convotrail sink` as a user does: a wrong setting is one
line on stderr naming it, with a non-zero exit and no traceback; two topic prefixes
share one CONVOTRAIL_HOME without touching each other's state."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.publisher import EventPublisher
from convotrail.settings import Settings, TopicNames
from convotrail.topics import admin_client, ensure_topics, topic_specs
from schemas.codecs import ModelCodec
from schemas.examples import EXAMPLES
from schemas.model import TimelineEntry
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.ports import free_ports
from tests.support.worker import running_worker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix,
        "CONVOTRAIL_PARTITIONS": str(settings.partitions),
        "CONVOTRAIL_HOME": str(settings.home),
        "CONVOTRAIL_TIMERS": "false",
        **extra,
    }


def run_cli(env: dict[str, str], *args: str, timeout: float = 90) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "convotrail", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr


def one_line(code: int, stderr: str, *names: str) -> str:
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_a_wrong_registry_url_is_one_line(topics: Settings, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = env_of(topics, SCHEMA_REGISTRY_URL=f"http://127.0.0.1:{port}")
    for command in (["sink", "--database-url", f"sqlite:///{tmp_path}/s.db"], ["worker"]):
        line = one_line(*run_cli(env, *command), "SCHEMA_REGISTRY_URL")
        print(command[0], line)


def test_a_wrong_bootstrap_address_is_one_line_after_a_bounded_wait(
    topics: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    # 4 s instead of the default 15: the same bounded wait, sooner.
    env = env_of(
        topics, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", CONVOTRAIL_CONNECT_TIMEOUT="4"
    )
    for command in (["worker"], ["sink", "--database-url", f"sqlite:///{tmp_path}/s.db"]):
        line = one_line(*run_cli(env, *command, timeout=60), "KAFKA_BOOTSTRAP_SERVERS")
        print(command[0], line)


def test_a_metrics_port_in_use_is_one_line(topics: Settings, tmp_path: Path) -> None:
    register_contract(Registry(topics.registry_url), topics.topics)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = env_of(topics)
        url = f"sqlite:///{tmp_path}/s.db"
        for command in (["sink", "--database-url", url], ["worker"]):
            line = one_line(*run_cli(env, *command, "--metrics-port", port),
                            "--metrics-port", "CONVOTRAIL_METRICS_PORT", port)  # fmt: skip
            print(command[0], line)


@pytest.mark.parametrize(
    "make_url",
    [
        lambda tmp: f"sqlite:///{tmp / 'a-directory'}",
        lambda tmp: f"sqlite:///{tmp / 'a-file' / 'sub' / 'sink.db'}",
        lambda tmp: f"sqlite:///{tmp / 'not-a-database.db'}",
    ],
    ids=["a directory", "under a file", "not a database"],
)
def test_an_sqlite_path_that_cannot_be_opened_is_one_line(
    topics: Settings, tmp_path: Path, make_url: object
) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("a file, not a directory")
    (tmp_path / "not-a-database.db").write_bytes(b"this is not an SQLite file" * 100)
    url = make_url(tmp_path)  # type: ignore[operator]
    line = one_line(*run_cli(env_of(topics), "sink", "--database-url", url),
                    "--database-url", "CONVOTRAIL_DATABASE_URL")  # fmt: skip
    print(line)


def test_two_topic_prefixes_share_one_home_without_colliding(
    settings: Settings, tmp_path: Path
) -> None:
    home = tmp_path / "shared-home"
    first = dataclasses.replace(settings, home=home)
    second = dataclasses.replace(
        settings, home=home, topics=TopicNames(prefix=f"{settings.topics.prefix}two-")
    )
    for each in (first, second):
        ensure_topics(admin_client(each), topic_specs(each))
        register_contract(Registry(each.registry_url), each.topics)
    with (
        running_worker(first, home, log_name="first.log") as one,
        running_worker(second, home, log_name="second.log") as two,
    ):
        for each, conversation in ((first, "cnv-first"), (second, "cnv-second")):
            with EventPublisher(each, clock=lambda: NOW) as publisher:
                created = dict(EXAMPLES["CONVERSATION_CREATED"], event_id=f"evt-{conversation}")
                publisher.publish_json({**created, "conversation_id": conversation})
        for each, conversation in ((first, "cnv-first"), (second, "cnv-second")):
            codec = ModelCodec(AvroSerde(Registry(each.registry_url)),
                               each.topics.conversation_timeline, TimelineEntry)  # fmt: skip
            found = consume(each, each.topics.conversation_timeline, 1, timeout=90, settle=1.0)
            assert [codec.decode(m.value()).conversation_id for m in found] == [conversation]
        assert one.poll() is None, (home / "first.log").read_text()[-3000:]
        assert two.poll() is None, (home / "second.log").read_text()[-3000:]
    # Each processor of each prefix has its own state directory.
    apps = sorted(path.name for path in (home / "state").iterdir())
    assert apps == sorted(
        [f"{first.topics.prefix}convotrail-conversations",
         f"{second.topics.prefix}convotrail-conversations"]
    ), apps  # fmt: skip
    for log in ("first.log", "second.log"):
        assert "Traceback" not in (home / log).read_text()
