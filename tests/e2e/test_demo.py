"""The demo command, run as a user would, against the session's broker and registry."""

import os
import subprocess
import sys

import pytest

from convotrail.settings import Settings

pytestmark = pytest.mark.e2e


def test_demo_once_sends_records_and_reads_them_back(settings: Settings) -> None:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(settings.partitions),
    )
    result = subprocess.run(
        [sys.executable, "-m", "convotrail", "demo", "--once", "--count", "4"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "4 of 4 records came back through the broker." in result.stdout
    assert result.stdout.count("read back") == 4
    assert f"Kafka bootstrap servers  {settings.bootstrap_servers}" in result.stdout
    assert f"{settings.topics.conversation_events}" in result.stdout
