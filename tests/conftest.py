"""Session-wide servers and per-test isolation.

One Kafka broker and one schema registry per test session:
- KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL set: those are used as they are;
- otherwise a Docker engine that answers (and CONVOTRAIL_TESTCONTAINERS != "0"):
  testcontainers' Kafka module plus an Apicurio container;
- otherwise (the path that must always work here): the project's own local stack,
  started by the same code as `convotrail stack start`, on free ports, with its
  state in a temporary directory and the artifact cache shared with the CLI.

Each test that touches Kafka gets its own topic prefix, so tests never see each
other's records. PostgreSQL is started from the installed server binaries, once,
only for the tests that ask for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from convotrail.settings import Settings
from convotrail.stack import Endpoints, LocalStack
from convotrail.topics import admin_client, ensure_topics, topic_specs
from tests.support.ports import free_ports
from tests.support.postgres import PostgresServer, start_postgres


def _docker_answers() -> bool:
    if os.environ.get("CONVOTRAIL_TESTCONTAINERS", "1") == "0" or not shutil.which("docker"):
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _testcontainers_stack() -> Iterator[Endpoints]:  # pragma: no cover - needs a Docker engine
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        DockerContainer("apicurio/apicurio-registry:3.0.9").with_exposed_ports(8080) as registry,
    ):
        wait_for_logs(registry, "Installed features", timeout=120)
        url = (
            f"http://{registry.get_container_host_ip()}:"
            f"{registry.get_exposed_port(8080)}/apis/ccompat/v7"
        )
        yield Endpoints(bootstrap_servers=kafka.get_bootstrap_server(), registry_url=url)


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the session's local stack (ports, state dir), whether or not it runs."""
    base = Settings.from_env({})
    kafka_port, kafka_sasl_port, controller_port, registry_port = free_ports(4)
    return replace(
        base,
        home=tmp_path_factory.mktemp("convotrail-home"),
        cache_dir=Path(os.environ.get("CONVOTRAIL_CACHE") or base.cache_dir),
        kafka_port=kafka_port,
        kafka_sasl_port=kafka_sasl_port,
        controller_port=controller_port,
        registry_port=registry_port,
    )


@pytest.fixture(scope="session")
def local_stack(stack_settings: Settings) -> LocalStack:
    return LocalStack(stack_settings)


@pytest.fixture(scope="session")
def kafka_endpoints(local_stack: LocalStack) -> Iterator[Endpoints]:
    external_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    external_registry = os.environ.get("SCHEMA_REGISTRY_URL")
    if external_bootstrap and external_registry:
        yield Endpoints(external_bootstrap, external_registry)
        return
    if _docker_answers():
        yield from _testcontainers_stack()
        return
    endpoints = local_stack.start(timeout=180)
    try:
        yield endpoints
    finally:
        local_stack.stop()


@pytest.fixture
def settings(kafka_endpoints: Endpoints, tmp_path: Path) -> Settings:
    """Settings pointing at the session's broker and registry, with a per-test topic prefix."""
    base = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_endpoints.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": kafka_endpoints.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
            "CONVOTRAIL_HOME": str(tmp_path / "home"),
            "CONVOTRAIL_PARTITIONS": "3",
        }
    )
    return base


@pytest.fixture
def topics(settings: Settings) -> Settings:
    """`settings`, with every project topic created under the test's prefix."""
    ensure_topics(admin_client(settings), topic_specs(settings))
    return settings


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    (port,) = free_ports(1)
    server = start_postgres(port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.url(name)
