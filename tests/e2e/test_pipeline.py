"""The whole slice, as deployed: producer SDK -> Kafka -> conversation worker -> Kafka ->
SQL sink -> SQLite and PostgreSQL, compared with the pure core's own account of the
same history (tests/support/oracle.py) and with hand-written expectations."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client import start_http_server

from connectors.publisher import GUARANTEES, EventPublisher
from connectors.sink.runner import run_sink
from connectors.sink.store import open_store
from connectors.traffic import TrafficProfile, generate
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.examples import EXAMPLES
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from schemas.validation import event_from_json
from tests.support.kafka import consume
from tests.support.metrics import scrape
from tests.support.oracle import NOW, expected_outcome, outcome_of_log
from tests.support.ports import free_ports
from tests.support.postgres import PostgresServer
from tests.support.worker import running_worker

pytestmark = pytest.mark.e2e


def _created(conversation_id: str, channel: str) -> m.ConversationEvent:
    raw = dict(EXAMPLES["CONVERSATION_CREATED"], event_id=f"evt-create-{conversation_id}",
               conversation_id=conversation_id, occurred_at="2026-11-25T08:00:00Z")  # fmt: skip
    raw["payload"] = dict(raw["payload"], channel=channel)
    return event_from_json(raw, NOW)


def scripted_history() -> list[m.ConversationEvent]:
    """Every event type at least once, merges across partitions, duplicates."""
    # The examples' merge (minute 19) freezes cnv-1042: its later reminder examples
    # would only be rejections, so they happen on the merge target instead.
    moved = {"REMINDER_ADDED", "REMINDER_CANCELLED", "REMINDER_TRIGGERED"}
    examples = [
        event_from_json(dict(raw, conversation_id="cnv-0977") if name in moved else raw, NOW)
        for name, raw in EXAMPLES.items()
    ]
    # A trigger applies only to the reminder it was fired for (causation = the add):
    # the script adds rem-2, which the example trigger fires.
    trigger = next(e for e in examples if e.type is m.EventType.REMINDER_TRIGGERED)
    assert isinstance(trigger.payload, m.ReminderTriggered)
    add_rem_2 = dataclasses.replace(
        next(e for e in examples if e.type is m.EventType.REMINDER_ADDED),
        event_id="evt-add-rem-2",
        payload=m.ReminderAdded(reminder_id="rem-2", due_at=trigger.payload.due_at,
                                for_staff=trigger.payload.for_staff, note=trigger.payload.note),
    )  # fmt: skip
    at = examples.index(trigger)
    examples[at : at + 1] = [add_rem_2, dataclasses.replace(trigger, causation_id="evt-add-rem-2")]
    others = [_created("cnv-0977", "EMAIL"), _created("cnv-2001", "CHAT"),
              _created("cnv-2002", "CHAT")]  # fmt: skip
    busy = TrafficProfile(accounts=2, duplicate_merge_share=0.6, returning_customer_share=0.7)
    traffic = generate(11, 25, datetime(2026, 11, 10, tzinfo=UTC), busy)
    history = [*others, *examples, *traffic]
    duplicates = [history[5], history[40], dataclasses.replace(history[60])]
    return [*history, *duplicates]


def _log_by_partition(settings: Settings) -> list[list[m.ConversationEvent]]:
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)),
                       settings.topics.conversation_events, m.ConversationEvent)  # fmt: skip
    by_partition: dict[int, list[m.ConversationEvent]] = defaultdict(list)
    for message in consume(settings, settings.topics.conversation_events, 10**6, timeout=5):
        with contextlib.suppress(SerdeError):  # the garbage records, dead-lettered
            by_partition[message.partition() or 0].append(codec.decode(message.value() or b""))
    return [by_partition[p] for p in sorted(by_partition)]


def test_history_lands_in_both_databases_exactly_as_the_core_says(
    topics: Settings, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    history = scripted_history()
    expected = expected_outcome(history)
    assert {e.type for e in expected.timeline.values()} == set(m.EventType)  # a thorough script
    assert any(d.type is m.EventType.MERGE_RECEIVED for d in expected.derived)
    assert expected.rejections  # the examples' merge makes later changes rejections

    register_contract(Registry(topics.registry_url), topics.topics)
    with EventPublisher(topics, clock=lambda: NOW) as publisher:
        for event in history:
            publisher.publish(event)
    raw = Producer(topics.kafka_config(GUARANTEES))
    for garbage in (b"not avro", b"\x00\x00\x00\x00"):
        raw.produce(topics.topics.conversation_events, key=b"cnv-1042", value=garbage)
    assert raw.flush(30) == 0

    (metrics_port,) = free_ports(1)
    with running_worker(topics, tmp_path / "worker", metrics_port=metrics_port) as worker:
        consume(topics, topics.topics.conversation_timeline, len(expected.timeline), timeout=120)
        dead = consume(topics, topics.topics.conversation_events_dlq,
                       len(expected.rejections) + 2, timeout=60, settle=1.0)  # fmt: skip
        assert worker.poll() is None
        # Ops scrape the worker: its counters agree with what happened.
        metrics = scrape(metrics_port)
        assert metrics['convotrail_conversation_events_total{outcome="rejected"}'] == len(
            expected.rejections
        )
        names = topics.topics
        app = f'app="{names.prefix}convotrail-conversations"'
        dlq = f'{app},reason="bad-magic-byte",topic="{names.conversation_events}"'
        assert metrics[f"convotrail_dlq_records_total{{{dlq}}}"] == 1
        timeline = f'{app},topic="{names.conversation_timeline}"'
        assert metrics[f"convotrail_records_produced_total{{{timeline}}}"] == len(expected.timeline)
    reasons = sorted(dict(d.headers() or [])["dlq.error"].decode().split(":")[0] for d in dead)
    assert reasons == sorted(
        [r.reason for r in expected.rejections] + ["bad-magic-byte", "truncated-record"]
    )

    # Merges from conversations on different partitions (keys are account|conversation)
    # reach their target in an order that depends on timing: the stored result must be
    # what the core makes of the log as it is (the same entries either way).
    expected = outcome_of_log(_log_by_partition(topics))
    assert set(expected.timeline) == set(expected_outcome(history).timeline)
    databases = {"sqlite": f"sqlite:///{tmp_path / 'convotrail.db'}", "postgresql": postgres_url}
    for name, url in databases.items():
        stats = run_sink(topics, url, group_id=f"{topics.topics.prefix}sink-{name}",
                         max_idle_seconds=3.0)  # fmt: skip
        assert stats.dead_lettered == 0, name
        with open_store(url) as store:
            for conversation_id, state in expected.states.items():
                assert store.state(conversation_id) == state, (name, conversation_id)
            stored = {
                entry.event_id: entry
                for conversation_id in expected.states
                for entry in store.timeline(conversation_id)
            }
        assert stored == expected.timeline, name

        # Hand-written expectations for the scripted part.
        texts = {(e.conversation_id, e.text) for e in stored.values()}
        assert ("cnv-1042", "Dana reassigned this conversation from Lee to Sam") in texts
        assert ("cnv-1042", "Dana merged this conversation into cnv-0977") in texts
        assert ("cnv-2001", "Dana ended the chat") in texts
        with open_store(url) as store:
            target = store.state("cnv-0977")
            source = store.state("cnv-1042")
        assert target is not None and "cnv-1042" in target.merged_from
        assert source is not None and source.merged_into == "cnv-0977"
    # The sink's counters (this process ran both sinks) add up to both databases' rows.
    (sink_port,) = free_ports(1)
    start_http_server(sink_port, addr="127.0.0.1")
    sink_metrics = scrape(sink_port)
    assert sink_metrics['convotrail_sink_records_total{kind="timeline"}'] >= 2 * len(
        expected.timeline
    )
