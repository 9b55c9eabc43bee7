"""Upgrading state written before account scoping, on a real broker: `convotrail rekey`
moves a conversation memory and a state snapshot keyed by the bare conversation id to
`account|conversation` (the partition that key hashes to), tombstones the legacy keys,
refuses while a worker runs, and a worker started afterwards continues the
conversation from its old memory (not "never created")."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.publisher import EventPublisher
from convotrail import clients
from convotrail.settings import Settings
from convotrail.topics import TopicSpec, admin_client, ensure_topics
from processors.conversation.core import evolve
from processors.conversation.memory_codec import encode_memory
from schemas import keys
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.serde import AvroSerde
from tests.support.metrics import ready
from tests.support.ports import free_ports
from tests.support.topics import read_all
from tests.support.waiting import wait_until
from tests.support.worker import start_worker, stop_worker
from tests.unit.processors.test_conversation_core import T0, Script

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _rekey(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "SCHEMA_REGISTRY_URL": settings.registry_url,
           "CONVOTRAIL_TOPIC_PREFIX": settings.topics.prefix,
           "CONVOTRAIL_PARTITIONS": str(settings.partitions),
           "CONVOTRAIL_HOME": str(settings.home)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "convotrail", "rekey", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def _live(settings: Settings, topic: str) -> dict[bytes, tuple[int, bytes | None]]:
    found: dict[bytes, tuple[int, bytes | None]] = {}
    for message in read_all(settings, topic):
        found[message.key() or b""] = (message.partition() or 0, message.value())
    return found


def test_legacy_state_moves_to_account_keys_and_a_worker_continues_from_it(
    topics: Settings, tmp_path: Path
) -> None:
    register_contract(clients.registry(topics), topics.topics)
    changelog = f"{topics.topics.prefix}convotrail-conversations-conversation-memory-changelog"
    ensure_topics(admin_client(topics), [TopicSpec(
        changelog, topics.partitions, topics.replication_factor, {"cleanup.policy": "compact"}
    )])  # fmt: skip
    script = Script("cnv-legacy", "acct-old")
    created = script.created()
    memory, _ = evolve(None, created, T0)
    assert memory.state is not None
    states = ModelCodec(AvroSerde(clients.registry(topics)), topics.topics.conversation_state,
                        m.ConversationState)  # fmt: skip
    producer = clients.producer(topics)
    legacy = b"cnv-legacy"  # how an earlier version keyed it
    producer.produce(changelog, encode_memory(memory), legacy)
    producer.produce(topics.topics.conversation_state, states.encode(memory.state), legacy)
    assert producer.flush(30) == 0

    (port,) = free_ports(1)
    worker = start_worker(topics, tmp_path / "worker", metrics_port=port)
    try:
        wait_until(lambda: ready(port), timeout=60, what="the worker ready")
        refused = _rekey(topics)
        assert refused.returncode == 1, refused
        assert refused.stderr.startswith("error: stop the workers first"), refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        stop_worker(worker)

    dry = _rekey(topics, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would move: {changelog}: 1 re-keyed" in dry.stdout
    assert legacy in _live(topics, changelog)  # nothing written

    done = _rekey(topics)
    assert done.returncode == 0, done.stderr
    assert f"{changelog}: 1 re-keyed, 0 already new, 0 unresolved" in done.stdout
    assert f"{topics.topics.conversation_state}: 1 re-keyed" in done.stdout
    new = keys.conversation("acct-old", "cnv-legacy")
    for topic in (changelog, topics.topics.conversation_state):
        live = _live(topics, topic)
        assert live[legacy][1] is None  # tombstoned
        partition, value = live[new]
        assert partition == keys.partition_of(new, topics.partitions) and value is not None
    again = _rekey(topics)
    assert again.returncode == 0 and f"{changelog}: 0 re-keyed, 1 already new" in again.stdout

    # The upgraded worker continues the conversation: the tag is applied to the old
    # memory (sequence 2), not refused as "never created".
    tagged = script(m.TagAdded(tag="vip"))
    with EventPublisher(topics, clock=lambda: datetime.now(UTC)) as publisher:
        publisher.publish(tagged)
    worker = start_worker(topics, tmp_path / "worker", metrics_port=port, log_name="after.log")
    try:
        timeline = ModelCodec(AvroSerde(clients.registry(topics)),
                              topics.topics.conversation_timeline, m.TimelineEntry)  # fmt: skip

        def tag_entry() -> m.TimelineEntry | None:
            for message in read_all(topics, topics.topics.conversation_timeline, timeout=10):
                entry = timeline.decode(message.value())
                if entry.event_id == tagged.event_id:
                    return entry
            return None

        entry = wait_until(tag_entry, timeout=60, what="the tag's timeline entry")
        assert entry.sequence == 2 and entry.account_id == "acct-old"
        assert read_all(topics, topics.topics.conversation_events_dlq, timeout=5) == []
    finally:
        stop_worker(worker)
