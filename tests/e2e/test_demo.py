"""The demo command, run as a user would, against the session's broker and registry."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convotrail.settings import Settings
from tests.support.ports import free_ports

pytestmark = pytest.mark.e2e


def test_demo_once_runs_the_whole_slice(settings: Settings, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(settings.partitions),
        CONVOTRAIL_HOME=str(tmp_path / "home"),
        CONVOTRAIL_API_PORT=str(free_ports(1)[0]),
    )
    result = subprocess.run(
        [sys.executable, "-m", "convotrail", "demo", "--once", "--conversations", "20"],
        capture_output=True, text=True, timeout=400, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    published = re.search(r"Publishing (\d+) events of 20 generated conversations", result.stdout)
    assert published is not None, result.stdout
    count = int(published.group(1))
    assert count > 100
    assert f"  {count} events acknowledged" in result.stdout
    assert f"{count} of {count} events came back through the broker" in result.stdout
    assert "CONVERSATION_CREATED" in result.stdout
    assert f"Schema registered: {settings.topics.conversation_events}-value" in result.stdout
    # The worker and the sink ran: timelines were read back from the SQLite database.
    assert "Timeline of cnv-7-000000" in result.stdout
    assert "started this conversation by" in result.stdout
    assert "the sink has not stored everything yet" not in result.stdout
    assert "workers, sink and read API stopped" in result.stdout
    assert re.search(r"Conversation page +http://127\.0\.0\.1:\d+/accounts/\S+/conversations/"
                     r"\S+ \(answering; 'Viewed' shown\)", result.stdout)  # fmt: skip
    # The delivery side: three notifications through the bounce processor, their
    # statuses and a "Viewed" receipt read back from the database.
    assert "not every notification has reached the database yet" not in result.stdout
    assert re.search(
        r"msg-\S+: \S+@\S+: BOUNCED via ses at .*\(hard bounce; 5\.1\.1", result.stdout
    )
    assert re.search(
        r"msg-\S+: \S+@\S+: BOUNCED via dsn at .*\(hard bounce; 5\.1\.1", result.stdout
    )
    assert re.search(r"msg-\S+: \S+@\S+: DELIVERED via sendgrid at ", result.stdout)
    assert re.search(r"customer \S+: Viewed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", result.stdout)
    assert (tmp_path / "home" / "convotrail.db").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "home")], capture_output=True)
    assert leftovers.stdout == b""
    assert f"Kafka bootstrap servers  {settings.bootstrap_servers}" in result.stdout
    assert f"{settings.topics.conversation_events}" in result.stdout
