"""`convotrail doctor` against the session's real broker and registry, SQLite and
PostgreSQL: a healthy installation passes every check (exit 0, `--json` parses);
each way of breaking one (a topic deleted, grown, its cleanup policy changed, a
subject deleted, a database never migrated, groups left behind, the broker gone) is
exit 1 with exactly one problem line naming the thing and the fix. The lines
themselves are unit-tested in tests/unit/test_doctor.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourceType,
)

from connectors.sink.store import open_store, sink_offsets
from convotrail import clients
from convotrail.cli import main
from convotrail.settings import Settings
from convotrail.topics import admin_client
from schemas.registration import register_contract
from tests.support.group_offsets import commit, produce
from tests.support.ports import free_ports
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _env(settings: Settings) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": settings.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix,
            "CONVOTRAIL_PARTITIONS": str(settings.partitions),
            "CONVOTRAIL_HOME": str(settings.home)}  # fmt: skip


@dataclass
class Installation:
    settings: Settings
    database_url: str

    @property
    def sink_group(self) -> str:
        return f"{self.settings.topics.prefix}convotrail-sink"

    def args(self, *more: str) -> list[str]:
        return ["doctor", "--database-url", self.database_url, "--sink-group", self.sink_group,
                *more]  # fmt: skip


@pytest.fixture
def healthy(topics: Settings, tmp_path: Path) -> Installation:
    """What `convotrail topics create`, `schemas register` and a first sink run leave."""
    register_contract(clients.registry(topics), topics.topics)
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    open_store(url).close()
    return Installation(topics, url)


def _problems(output: str) -> list[str]:
    return [line.removeprefix("PROBLEM  ") for line in output.splitlines()
            if line.startswith("PROBLEM  ")]  # fmt: skip


def test_a_healthy_installation_passes_every_check(healthy: Installation) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convotrail", *healthy.args()], cwd=REPO,
        env={**os.environ, **_env(healthy.settings)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "doctor: no problem found"
    # kafka, topics, registry, subjects, four groups, the database: each one line, ok
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 9, done.stdout
    prefix = healthy.settings.topics.prefix
    assert (
        f"ok       group {prefix}convotrail-conversations: 0 records behind (0 member(s))" in lines
    )
    assert f"ok       sink database {healthy.database_url}: at the head revision 0003" in lines

    as_json = CliRunner().invoke(main, healthy.args("--json"), env=_env(healthy.settings))
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["ok"] is True and body["problems"] == 0
    assert [f["check"] for f in body["findings"]] == [
        "kafka", "topics", "registry", "subjects", "group", "group", "group", "group", "database"
    ]  # fmt: skip


# -- one way of breaking the installation per case: it breaks it, returns the line --


def _delete_topic(installation: Installation, _request: pytest.FixtureRequest) -> str:
    name = installation.settings.topics.delivery_facts
    admin = admin_client(installation.settings)
    admin.delete_topics([name], operation_timeout=30)[name].result()
    wait_until(lambda: name not in admin.list_topics(timeout=10).topics, what=f"{name} gone")
    return (f"topic {name} is missing: run `convotrail topics create` (it creates every "
            "missing topic and changes none)")  # fmt: skip


def _grow_topic(installation: Installation, _request: pytest.FixtureRequest) -> str:
    name = installation.settings.topics.conversation_state
    admin = admin_client(installation.settings)
    admin.create_partitions([NewPartitions(name, 4)])[name].result()
    wait_until(lambda: len(admin.list_topics(name, timeout=10).topics[name].partitions) == 4)
    bootstrap = installation.settings.bootstrap_servers
    return (f"topic {name} has 4 partitions, expected 3: `convotrail topics create` never "
            "changes an existing topic; a topic cannot shrink: delete it (`kafka-topics.sh "
            f"--bootstrap-server {bootstrap} --delete --topic {name}`, its records are lost) "
            "and run `convotrail topics create`")  # fmt: skip


def _stop_compacting(installation: Installation, _request: pytest.FixtureRequest) -> str:
    name = installation.settings.topics.read_receipts
    admin = admin_client(installation.settings)
    change = ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[change])
    admin.incremental_alter_configs([resource])[resource].result()

    def policy() -> bool:
        probe = ConfigResource(ResourceType.TOPIC, name)
        return admin.describe_configs([probe])[probe].result()["cleanup.policy"].value == "delete"

    wait_until(policy, what="cleanup.policy=delete")
    bootstrap = installation.settings.bootstrap_servers
    return (f"topic {name} has cleanup.policy=delete, expected compact (a table's topic keeps "
            f"the latest record per key, for ever): run `kafka-configs.sh --bootstrap-server "
            f"{bootstrap} --alter --entity-type topics --entity-name {name} --add-config "
            "cleanup.policy=compact`")  # fmt: skip


def _delete_subject(installation: Installation, _request: pytest.FixtureRequest) -> str:
    subject = f"{installation.settings.topics.delivery_facts}-value"
    client = clients.registry(installation.settings).client
    client.delete_subject(subject)
    client.delete_subject(subject, permanent=True)
    return (f"subject {subject} is not registered: run `convotrail schemas register` (it also "
            "sets its compatibility level, BACKWARD_TRANSITIVE)")  # fmt: skip


def _unmigrated_postgres(installation: Installation, request: pytest.FixtureRequest) -> str:
    # A PostgreSQL database the sink never ran on: it exists, and has no schema revision.
    installation.database_url = request.getfixturevalue("postgres_url")
    shown = sa.make_url(installation.database_url).render_as_string(hide_password=True)
    return (
        f"sink database {shown} is at schema revision none, this code's head is 0003: "
        "start `convotrail sink` of this version once (it migrates the database on start)"
    )


def _groups_behind(installation: Installation, _request: pytest.FixtureRequest) -> str:
    settings = installation.settings
    events, timeline = settings.topics.conversation_events, settings.topics.conversation_timeline
    produce(settings, events, 0, 10)
    prefix = settings.topics.prefix
    commit(settings, f"{prefix}convotrail-conversations", {(events, 0): 4})
    for caught_up in ("convotrail-bounces", "convotrail-receipts"):
        commit(settings, f"{prefix}{caught_up}", {(events, 0): 10})
    # The sink's truth is its database: 1 there, although Kafka's advisory commit says 3.
    produce(settings, timeline, 0, 3)
    commit(settings, installation.sink_group, {(timeline, 0): 3})
    with open_store(installation.database_url) as store, store.engine.begin() as connection:
        connection.execute(
            sa.insert(sink_offsets).values(
                consumer_group=installation.sink_group, topic=timeline, partition=0, next_offset=1
            )
        )
    return "\n".join([
        f"group {prefix}convotrail-conversations is 6 records behind, more than --max-lag 1 "
        f"({events}[0] 6): nothing consumes it: start `convotrail worker --processor "
        "conversation`",
        f"group {installation.sink_group} is 2 records behind, more than --max-lag 1 "
        f"({timeline}[0] 2; positions from the sink database): nothing consumes it: start "
        "`convotrail sink`",
    ])  # fmt: skip


Breakage = Callable[[Installation, pytest.FixtureRequest], str]


@pytest.mark.parametrize(
    "breaks",
    [_delete_topic, _grow_topic, _stop_compacting, _delete_subject, _unmigrated_postgres,
     _groups_behind],
    ids=lambda breaks: breaks.__name__.strip("_"),
)  # fmt: skip
def test_each_problem_is_one_line_naming_the_thing_and_the_fix(
    healthy: Installation, breaks: Breakage, request: pytest.FixtureRequest
) -> None:
    expected = breaks(healthy, request).splitlines()
    result = CliRunner().invoke(main, healthy.args("--max-lag", "1"), env=_env(healthy.settings))
    assert result.exit_code == 1, result.output
    assert _problems(result.output) == expected, result.output
    assert result.output.splitlines()[-1] == f"doctor: {len(expected)} problem(s)"
    body = json.loads(
        CliRunner().invoke(main, healthy.args("--max-lag", "1", "--json"),
                           env=_env(healthy.settings)).output
    )  # fmt: skip
    assert body["ok"] is False
    assert [f["text"] for f in body["findings"] if f["status"] == "problem"] == expected


def test_an_unreachable_broker_is_one_line_within_seconds(healthy: Installation) -> None:
    (closed,) = free_ports(1)
    env = {**os.environ, **_env(healthy.settings), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "convotrail", *healthy.args()], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    (problem,) = _problems(done.stdout)
    assert problem.startswith(f"Kafka at 127.0.0.1:{closed} did not answer in 5 s: ")
    assert problem.endswith(": check KAFKA_BOOTSTRAP_SERVERS")
    assert "skipped  topics: not checked (Kafka did not answer)" in done.stdout.splitlines()
    # The 5 s default timeout plus the interpreter's start; librdkafka's own default
    # would have been a minute.
    assert elapsed < 15, elapsed
