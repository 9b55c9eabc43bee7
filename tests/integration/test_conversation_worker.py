"""The conversation worker through the real broker and registry: a scripted history in,
timeline, state and dead letters out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from connectors.publisher import GUARANTEES, EventPublisher
from convotrail.settings import Settings
from schemas.codecs import ModelCodec
from schemas.examples import EXAMPLES
from schemas.model import ConversationState, TimelineEntry
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def worker(topics: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    register_contract(Registry(topics.registry_url), topics.topics)
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=topics.bootstrap_servers,
        SCHEMA_REGISTRY_URL=topics.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=topics.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(topics.partitions),
        CONVOTRAIL_HOME=str(tmp_path / "worker-home"),
        # The scripted history lies in the past: its chats' timers would all fire at
        # once. Timers have tests of their own (tests/integration/test_timers.py).
        CONVOTRAIL_TIMERS="false",
        # Structured logs: every line this worker writes must be one JSON object.
        CONVOTRAIL_LOG_FORMAT="json",
    )
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "convotrail", "worker", "--verbose"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _events(*names: str, conversation_id: str = "cnv-1042") -> list[dict[str, object]]:
    return [dict(EXAMPLES[name], conversation_id=conversation_id) for name in names]


def test_a_scripted_history_becomes_timeline_state_and_dead_letters(
    topics: Settings, worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    history = _events("CONVERSATION_CREATED", "REASSIGNED", "TAG_ADDED", "RESOLVED")
    merge = dict(EXAMPLES["MERGED"], event_id="evt-merge", occurred_at="2026-11-25T09:40:00Z")
    target = dict(EXAMPLES["CONVERSATION_CREATED"], event_id="evt-target",
                  conversation_id="cnv-0977")  # fmt: skip
    orphan = dict(EXAMPLES["TAG_ADDED"], event_id="evt-orphan", conversation_id="cnv-nobody")
    with EventPublisher(topics, clock=lambda: NOW) as publisher:
        for raw in [target, *history, history[2], orphan, merge]:  # history[2]: a duplicate
            publisher.publish_json(raw)
    garbage = Producer(topics.kafka_config(GUARANTEES))
    garbage.produce(topics.topics.conversation_events, key=b"cnv-1042", value=b"not avro")
    assert garbage.flush(30) == 0

    serde = AvroSerde(Registry(topics.registry_url))
    timeline_codec = ModelCodec(serde, topics.topics.conversation_timeline, TimelineEntry)
    state_codec = ModelCodec(serde, topics.topics.conversation_state, ConversationState)
    # created x2, reassigned, tag, resolved, merged on the source; merge received on the target
    entries = [
        timeline_codec.decode(m.value())
        for m in consume(topics, topics.topics.conversation_timeline, 7, timeout=90, settle=2.0)
    ]
    texts = {(e.conversation_id, e.text) for e in entries}
    assert len(entries) == 7, sorted(texts)
    assert ("cnv-1042", "Dana reassigned this conversation from Lee to Sam") in texts
    assert ("cnv-1042", "Dana merged this conversation into cnv-0977") in texts
    assert ("cnv-0977", "Conversation cnv-1042 was merged into this conversation") in texts
    states = [
        state_codec.decode(m.value()) for m in consume(topics, topics.topics.conversation_state, 7)
    ]
    final = {s.conversation_id: s for s in sorted(states, key=lambda s: s.version)}
    assert final["cnv-1042"].merged_into == "cnv-0977" and final["cnv-1042"].tags == ("billing",)
    assert final["cnv-0977"].merged_from == ("cnv-1042",)
    dead = consume(topics, topics.topics.conversation_events_dlq, 2, timeout=30, settle=1.0)
    reasons = sorted(dict(m.headers() or [])["dlq.error"].decode().split(":")[0] for m in dead)
    assert reasons == ["bad-magic-byte", "not-created"]
    for message in dead:
        headers = dict(message.headers() or [])
        assert headers["dlq.source.topic"] == topics.topics.conversation_events.encode()
        assert int(headers["dlq.source.offset"]) >= 0
    assert worker.poll() is None, "the worker is still running after bad input"
    _check_json_log(tmp_path / "worker.log", topics, dead, orphan)


def _check_json_log(
    path: Path, topics: Settings, dead: list[Message], orphan: dict[str, object]
) -> None:
    """--log-format json: every line is a JSON object; each dead letter's line names its
    record (topic, partition, offset) and, when the event decoded, its account."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    letters = {
        (line["partition"], line["offset"]): line
        for line in lines
        if line["logger"] == "processors.runtime.task" and "-> " in line["message"]
    }
    for message in dead:
        headers = dict(message.headers() or [])
        source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
        line = letters[source]
        assert line["topic"] == topics.topics.conversation_events, line
        assert line["level"] == "WARNING"
        if "not-created" in line["message"]:
            assert line["account"] == orphan["account_id"], line
            assert line["conversation"] == "cnv-nobody", line
        else:
            assert "bad-magic-byte" in line["message"] and "account" not in line, line
