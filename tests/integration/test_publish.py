"""The producer SDK and CLI against the real broker and registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connectors.publisher import EventPublisher
from convotrail.settings import Settings
from schemas import contract, keys
from schemas.codecs import ModelCodec
from schemas.errors import BadMagicByte, TruncatedRecord, UnknownSchemaId
from schemas.examples import EXAMPLES
from schemas.model import ConversationEvent, EventType
from schemas.registration import check_against_registry, register_contract, subject_plan
from schemas.registry import Registry
from schemas.serde import AvroSerde
from schemas.validation import InvalidEvent, event_from_json
from tests.support.kafka import consume

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _fixed_clock() -> datetime:
    return NOW


def _reader(settings: Settings) -> ModelCodec[ConversationEvent]:
    # A fresh registry client: decoding must go through the server, not a cache.
    return ModelCodec(
        AvroSerde(Registry(settings.registry_url)),
        settings.topics.conversation_events,
        ConversationEvent,
    )


def test_every_event_type_is_published_and_read_back_identical(topics: Settings) -> None:
    events = [event_from_json(raw, NOW) for raw in EXAMPLES.values()]
    with EventPublisher(topics, clock=_fixed_clock) as publisher:
        futures = [publisher.publish(event) for event in events]
        publisher.flush()
        reports = [future.result(timeout=30) for future in futures]
    assert [r.event_id for r in reports] == [e.event_id for e in events]
    messages = consume(topics, topics.topics.conversation_events, len(events), settle=1.0)
    assert len(messages) == len(events)
    reader = _reader(topics)
    received = {}
    for message in messages:
        event = reader.decode(message.value())
        assert message.key() == keys.of_event(event)  # account|conversation
        assert dict(message.headers() or [])["event_type"] == event.type.encode()
        received[event.event_id] = event
    assert received == {event.event_id: event for event in events}
    assert {event.type for event in received.values()} == set(EventType)


def test_an_invalid_event_never_reaches_kafka(topics: Settings) -> None:
    bad = dict(EXAMPLES["TAG_ADDED"], event_id="evt-bad", payload={"tag": ""})
    good = dict(EXAMPLES["TAG_ADDED"], event_id="evt-good")
    with EventPublisher(topics, clock=_fixed_clock) as publisher:
        with pytest.raises(InvalidEvent, match=r"event evt-bad: payload\.tag: must not be empty"):
            publisher.publish_json(bad)
        publisher.publish_json(good).result(timeout=30)
    messages = consume(topics, topics.topics.conversation_events, 2, timeout=5, settle=1.0)
    assert [_reader(topics).decode(m.value()).event_id for m in messages] == ["evt-good"]


def test_decoding_bad_bytes_raises_typed_errors(settings: Settings) -> None:
    reader = _reader(settings)
    with pytest.raises(BadMagicByte):
        reader.decode(b'{"event_id": "json, not avro"}')
    with pytest.raises(TruncatedRecord):
        reader.decode(b"\x00\x00")
    with pytest.raises(UnknownSchemaId):
        reader.decode(b"\x00\x7f\xff\xff\xf0" + b"\x02")


def _run_produce(
    settings: Settings, args: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "convotrail", "produce", *args],
        input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def _recent(raw: dict[str, object], event_id: str) -> dict[str, object]:
    # The CLI validates against the wall clock: keep the events in the recent past.
    return dict(raw, event_id=event_id, occurred_at=datetime.now(UTC).isoformat())


def test_produce_cli_sends_valid_lines_and_reports_invalid_ones(
    topics: Settings, tmp_path: Path
) -> None:
    lines = [
        json.dumps(_recent(EXAMPLES["CONVERSATION_CREATED"], "evt-l1")),
        json.dumps(_recent(EXAMPLES["TAG_ADDED"], "evt-l2") | {"type": "TAG_RENAMED"}),
        "",
        json.dumps(_recent(EXAMPLES["REASSIGNED"], "evt-l4")),
        '{"event_id": "evt-l5", ',
        json.dumps(_recent(EXAMPLES["RESOLVED"], "evt-l6")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = _run_produce(topics, ["--file", str(path)])
    assert result.returncode == 3, result.stderr  # some lines refused, the rest acknowledged
    refusals = [line for line in result.stderr.splitlines() if line.startswith("refused")]
    assert refusals == [
        "refused line 2: event evt-l2: type: 'TAG_RENAMED' is not a known EventType "
        "(see docs/events.md)",
        "refused line 5: not valid JSON: Expecting property name enclosed in double quotes "
        "at column 23",
    ]
    assert "sent 3, refused 2, failed 0" in result.stdout
    messages = consume(topics, topics.topics.conversation_events, 3, settle=1.0)
    ids = sorted(_reader(topics).decode(m.value()).event_id for m in messages)
    assert ids == ["evt-l1", "evt-l4", "evt-l6"]


def test_produce_cli_reads_standard_input(topics: Settings) -> None:
    text = json.dumps(_recent(EXAMPLES["TAG_ADDED"], "evt-stdin")) + "\n"
    result = _run_produce(topics, ["--file", "-"], stdin=text)
    assert result.returncode == 0, result.stderr
    assert "sent 1, refused 0, failed 0" in result.stdout
    (message,) = consume(topics, topics.topics.conversation_events, 1)
    assert _reader(topics).decode(message.value()).event_id == "evt-stdin"


def test_register_sets_compatibility_and_the_registry_enforces_it(settings: Settings) -> None:
    registry = Registry(settings.registry_url)
    first = register_contract(registry, settings.topics)
    assert [r.subject for r in first] == [p.subject for p in subject_plan(settings.topics)]
    assert {r.subject: r.compatibility for r in first} == {
        p.subject: p.compatibility for p in subject_plan(settings.topics)
    }
    again = register_contract(Registry(settings.registry_url), settings.topics)
    assert [r.schema_id for r in again] == [r.schema_id for r in first]
    assert check_against_registry(registry, settings.topics) == []
    # A new required field breaks FULL_TRANSITIVE: the registry itself refuses it.
    broken = contract.expand(contract.CONVERSATION_STATE)
    broken["fields"].append({"name": "priority", "type": "int"})
    subject = f"{settings.topics.conversation_state}-value"
    with pytest.raises(SchemaRegistryError) as refused:
        Registry(settings.registry_url).register(subject, broken)
    assert refused.value.http_status_code in (409, 422)


def test_schemas_check_cli_passes_on_the_current_contract(settings: Settings) -> None:
    register_contract(Registry(settings.registry_url), settings.topics)
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
    )
    result = subprocess.run(
        [sys.executable, "-m", "convotrail", "schemas", "check"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok     ConversationEvent vs v1: BACKWARD ok" in result.stdout
    assert "would accept every schema" in result.stdout


def test_partitions_match_the_processors_partitioner(topics: Settings) -> None:
    # Processors send derived events keyed like the publisher's, and Java producers
    # use murmur2: the publisher must put a conversation's events where
    # schemas.keys.partition_of (Java's murmur2) says, or state splits.
    from schemas.keys import partition_of

    template = EXAMPLES["TAG_ADDED"]
    with EventPublisher(topics, clock=_fixed_clock) as publisher:
        futures = {
            f"cnv-{n}": publisher.publish_json(
                dict(template, event_id=f"evt-p{n}", conversation_id=f"cnv-{n}")
            )
            for n in range(40)
        }
        publisher.flush()
        placed = {key: future.result(timeout=30).partition for key, future in futures.items()}
    account = template["account_id"]
    expected = {
        key: partition_of(keys.conversation(account, key), topics.partitions) for key in placed
    }
    assert placed == expected
    assert len(set(placed.values())) == topics.partitions  # the keys do spread
