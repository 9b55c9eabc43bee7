"""The worker never trusts the topic (issue 12): raw records written with a plain
Producer, past every check of the publisher, each reach conversation-events.dlq with
their reason; later good events are processed; the worker stays up; the DLQ counter
on /metrics agrees with the DLQ topic."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from connectors.publisher import GUARANTEES
from convotrail.settings import Settings
from processors.conversation.core import evolve
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.examples import EXAMPLES
from schemas.model import ConversationEvent, ConversationState, TimelineEntry
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from schemas.validation import event_from_json
from schemas.wire import frame
from tests.support.kafka import consume
from tests.support.metrics import scrape
from tests.support.nasty import RULE_BREAKERS, rule_breaker
from tests.support.ports import free_ports
from tests.support.waiting import wait_until
from tests.support.worker import running_worker

pytestmark = pytest.mark.integration

KIND = "test.kind"  # our own header: the DLQ keeps a record's headers, so each is traced


def _now() -> datetime:
    return datetime.now(UTC)


def _event(name: str, event_id: str, conversation_id: str) -> ConversationEvent:
    raw = dict(EXAMPLES[name], event_id=event_id, conversation_id=conversation_id,
               occurred_at=_now().isoformat())  # fmt: skip
    return event_from_json(raw, _now())


def test_raw_records_each_reach_the_dlq_with_their_reason(topics: Settings, tmp_path: Path) -> None:
    registry = Registry(topics.registry_url)
    register_contract(registry, topics.topics)
    serde = AvroSerde(registry)
    names = topics.topics
    events = ModelCodec(serde, names.conversation_events, ConversationEvent)
    state_codec = ModelCodec(serde, names.conversation_state, ConversationState)
    n = topics.partitions

    valid = _event("TAG_ADDED", "evt-valid-template", "cnv-template")
    body = events.encode(valid)
    created_template = _event("CONVERSATION_CREATED", "evt-template", "cnv-template")
    _, outputs = evolve(None, created_template, _now())
    assert outputs.state is not None and outputs.timeline
    timeline = ModelCodec(serde, names.conversation_timeline, TimelineEntry)
    # (kind, key, value, partition or None for murmur2, expected reason)
    raw: list[tuple[str, bytes | None, bytes | None, int | None, str]] = [
        ("empty-value", b"cnv-g1", b"", None, "truncated-record"),
        ("null-value", b"cnv-g2", None, None, "truncated-record"),
        ("one-byte", b"cnv-g3", b"\x00", None, "truncated-record"),
        ("four-bytes", b"cnv-g4", b"\x00\x00\x00\x01", None, "truncated-record"),
        ("text", b"cnv-g5", b"not avro at all", None, "bad-magic-byte"),
        ("json", b"cnv-g6", b'{"event_id": "evt-json"}', None, "bad-magic-byte"),
        ("magic-1", b"cnv-g7", b"\x01" + body[1:], None, "bad-magic-byte"),
        ("magic-ff", b"cnv-g8", b"\xff" * 64, None, "bad-magic-byte"),
        ("unknown-schema-id", b"cnv-g9", frame(0x7FFFFFF0, body[5:]), None, "unknown-schema-id"),
        ("truncated-body", b"cnv-g10", body[: len(body) // 2], None, "undecodable-body"),
        ("trailing-bytes", b"cnv-g11", body + b"\x00\x01", None, "undecodable-body"),
        ("random-body", b"cnv-g12", body[:5] + bytes(range(200, 256)) * 3, None,
         "undecodable-body"),
        ("header-only", b"cnv-g13", body[:5], None, "undecodable-body"),
        ("another-schema-state", b"cnv-g14", state_codec.encode(outputs.state), None,
         "undecodable-body"),
        ("another-schema-timeline", b"cnv-g16", timeline.encode(outputs.timeline[0]), None,
         "undecodable-body"),
        ("garbage-1mb", b"cnv-g15", b"\x00" + b"\xfe" * 1_000_000, None, "unknown-schema-id"),
        ("garbage-no-key", None, b"\x07garbage", None, "bad-magic-byte"),
        ("varint-overflow", b"cnv-g17", body[:5] + b"\xff" * 20, None, "undecodable-body"),
        ("negative-string-length", b"cnv-g18", body[:5] + b"\x01", None, "undecodable-body"),
    ]  # fmt: skip
    for index, (kind, event_type, breaker, _field) in enumerate(RULE_BREAKERS):
        event = rule_breaker(event_type, breaker, f"evt-rule-{index}")
        if event.occurred_at.year == 2026:  # the example's morning: keep it recent
            event = _with_time(event)
        raw.append((f"rule-{kind}", keys.of_event(event), events.encode(event), None,
                    "invalid-event"))  # fmt: skip
    # Keyed right, written elsewhere: never handled, whatever the value holds.
    for index, name in enumerate(
        ["CONVERSATION_CREATED", "TAG_ADDED", "RESOLVED", "MERGED", "REASSIGNED", "MESSAGE_ADDED"]
    ):
        event = _event(name, f"evt-misplaced-{index}", f"cnv-misplaced-{index}")
        key = keys.of_event(event)
        wrong = (keys.partition_of(key, n) + 1) % n
        raw.append((f"wrong-partition-{name}", key, events.encode(event), wrong,
                    "wrong-partition"))  # fmt: skip
    raw.append(("wrong-partition-garbage", b"cnv-wp", b"garbage",
                (keys.partition_of(b"cnv-wp", n) + 1) % n, "wrong-partition"))  # fmt: skip
    assert len(raw) >= 50

    # Issue 12, item 3: the creation, then an event of the same conversation on the wrong
    # partition in the same batch, then correct events: the conversation must live.
    created = _event("CONVERSATION_CREATED", "evt-live-1", "cnv-live")
    stray = _event("TAG_ADDED", "evt-live-stray", "cnv-live")
    later = [_event("TAG_ADDED", "evt-live-2", "cnv-live"), _event("RESOLVED", "evt-live-3",
                                                                   "cnv-live")]  # fmt: skip
    live_key = keys.of_event(created)
    stray_partition = (keys.partition_of(live_key, n) + 1) % n

    producer = Producer(topics.kafka_config({**GUARANTEES, "message.max.bytes": 2_000_000}))

    def send(kind: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        # -1: librdkafka's "unassigned", its partitioner (murmur2 here) decides.
        producer.produce(names.conversation_events, key=key, value=value,
                         headers=[(KIND, kind)],
                         partition=-1 if partition is None else partition)  # fmt: skip

    send("live-created", live_key, events.encode(created), None)
    send("live-stray", live_key, events.encode(stray), stray_partition)
    for kind, raw_key, value, partition, _ in raw:
        send(kind, raw_key, value, partition)
    for event in later:
        send(f"live-{event.event_id}", live_key, events.encode(event), None)
    assert producer.flush(30) == 0

    (port,) = free_ports(1)
    with running_worker(topics, tmp_path / "worker", metrics_port=port) as worker:
        expected = {kind: reason for kind, _, _, _, reason in raw}
        expected["live-stray"] = "wrong-partition"
        dead = consume(topics, names.conversation_events_dlq, len(expected), timeout=120,
                       settle=2.0)  # fmt: skip
        got: dict[str, str] = {}
        for message in dead:
            headers = _headers(message)
            error = headers["dlq.error"].decode()
            assert len(headers["dlq.error"]) <= 1024, error[:200]
            assert error.isprintable(), error[:200]
            got[headers[KIND].decode()] = error.split(":")[0]
            if error.startswith("wrong-partition"):
                placed = keys.partition_of(message.key() or b"", n)
                assert headers["dlq.expected.partition"] == str(placed).encode()
        assert got == expected
        assert len(dead) == len(expected), "one dead letter per bad record"
        by_kind = {_headers(m)[KIND].decode(): m for m in dead}
        # A record near the size limit: its dead letter carries what fits, and says so.
        huge = by_kind["garbage-1mb"]
        assert _headers(huge)["dlq.truncated"] == b"value 1000001 bytes"
        assert len(huge.value() or b"") == 256 * 1024
        for kind, _type, _breaker, field in RULE_BREAKERS:
            error = _headers(by_kind[f"rule-{kind}"])["dlq.error"].decode()
            assert f": {field}: " in error, error[:300]

        # Later good input is processed, the conversation created before the stray event
        # included: three timeline entries, no rejection.
        entries = [timeline.decode(m.value())
                   for m in consume(topics, names.conversation_timeline, 3, timeout=60,
                                    settle=1.0)]  # fmt: skip
        assert sorted(e.event_id for e in entries) == ["evt-live-1", "evt-live-2", "evt-live-3"]
        assert worker.poll() is None, "the worker is still running after bad input"

        app = f"{names.prefix}convotrail-conversations"
        reasons = Counter(expected.values())

        def counted() -> dict[str, float] | None:
            samples = scrape(port)
            found = {
                reason: samples.get(
                    f'convotrail_dlq_records_total{{app="{app}",reason="{reason}",'
                    f'topic="{names.conversation_events}"}}', 0.0)
                for reason in reasons
            }  # fmt: skip
            seen.update({name: value for name, value in samples.items() if "dlq_records" in name})
            return found if found == {r: float(c) for r, c in reasons.items()} else None

        seen: dict[str, float] = {}
        try:
            wait_until(counted, timeout=30, what=f"DLQ counters {dict(reasons)} on /metrics")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /metrics had {seen}") from None


def _headers(message: Message) -> dict[str, bytes]:
    return {name: value for name, value in dict(message.headers() or []).items()
            if isinstance(value, bytes)}  # fmt: skip


def _with_time(event: ConversationEvent) -> ConversationEvent:
    return dataclasses.replace(event, occurred_at=_now())
