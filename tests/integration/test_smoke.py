"""Smoke tests against the real broker and registry of the test session."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource

from convotrail.errors import StackError, TopicError
from convotrail.settings import Settings
from convotrail.stack import Endpoints, LocalStack
from convotrail.topics import admin_client, ensure_topics, topic_specs
from schemas.errors import UnknownSchemaId
from schemas.registry import Registry, value_subject
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration

ORDER_SCHEMA = {
    "type": "record",
    "name": "SmokeRecord",
    "namespace": "dev.convotrail.test",
    "fields": [
        {"name": "conversation_id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def test_produce_and_consume_through_the_broker(topics: Settings) -> None:
    topic = topics.topics.conversation_events
    producer = Producer(topics.kafka_config({"enable.idempotence": True, "acks": "all"}))
    sent = {f"cnv-{n}".encode(): f"payload-{n}".encode() for n in range(20)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    received = consume(topics, topic, len(sent))
    assert {m.key(): m.value() for m in received} == sent  # type: ignore[attr-defined]
    # Keyed by conversation: one key always lands on one partition.
    partitions: dict[bytes, set[int]] = {}
    for m in received:
        partitions.setdefault(m.key(), set()).add(m.partition())  # type: ignore[attr-defined]
    assert all(len(found) == 1 for found in partitions.values())


def test_register_a_schema_and_read_it_back(settings: Settings) -> None:
    registry = Registry(settings.registry_url)
    subject = value_subject(f"{settings.topics.prefix}smoke")
    schema_id = registry.register(subject, ORDER_SCHEMA)
    fresh = Registry(settings.registry_url)  # no cache: the answer comes from the server
    latest_id, version, text = fresh.latest(subject)
    assert (latest_id, version) == (schema_id, 1)
    assert fresh.schema_text(schema_id) and "SmokeRecord" in fresh.schema_text(schema_id)
    assert "SmokeRecord" in text
    assert registry.register(subject, ORDER_SCHEMA) == schema_id  # same schema, same id
    assert registry.set_compatibility("BACKWARD", subject) == "BACKWARD"
    assert fresh.compatibility(subject) == "BACKWARD"


def test_unknown_schema_id_is_a_typed_error(settings: Settings) -> None:
    with pytest.raises(UnknownSchemaId):
        Registry(settings.registry_url).schema_text(987_654_321)


def test_avro_record_round_trips_with_confluent_framing(topics: Settings) -> None:
    topic = topics.topics.conversation_timeline
    serde = AvroSerde(Registry(topics.registry_url))
    encode = serde.encoder(topic, ORDER_SCHEMA)
    at = datetime(2026, 11, 25, 9, 30, 15, 123000, tzinfo=UTC)
    record = {"conversation_id": "cnv-42", "at": at, "tags": ["vip", "billing"]}
    framed = encode(record)
    assert framed[0] == 0
    producer = Producer(topics.kafka_config())
    producer.produce(topic, key=b"cnv-42", value=framed)
    assert producer.flush(30) == 0
    (message,) = consume(topics, topic, 1)
    value = message.value()  # type: ignore[attr-defined]
    assert value == framed
    reader = AvroSerde(Registry(topics.registry_url))  # decodes by id, via the registry
    assert reader.decode(value) == record


def test_topics_create_is_idempotent_with_the_right_policies(settings: Settings) -> None:
    admin = admin_client(settings)
    first = ensure_topics(admin, topic_specs(settings))
    assert all(outcome.created for outcome in first)
    again = ensure_topics(admin, topic_specs(settings))
    assert not any(outcome.created for outcome in again)
    assert {o.partitions for o in again} == {settings.partitions}
    names = settings.topics
    wanted = (names.conversation_state, names.read_receipts, names.conversation_timeline)
    resources = [ConfigResource("topic", name) for name in wanted]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    assert configs[names.conversation_state]["cleanup.policy"].value == "compact"
    assert configs[names.read_receipts]["cleanup.policy"].value == "compact"
    assert configs[names.conversation_timeline]["cleanup.policy"].value == "delete"


def test_a_partition_count_mismatch_is_refused(settings: Settings) -> None:
    admin = admin_client(settings)
    ensure_topics(admin, topic_specs(settings))
    with pytest.raises(TopicError, match="co-partitioned"):
        ensure_topics(admin, topic_specs(replace(settings, partitions=settings.partitions + 1)))


def test_starting_the_stack_twice_starts_nothing_new(
    local_stack: LocalStack, kafka_endpoints: Endpoints
) -> None:
    if not local_stack.is_running():
        pytest.skip("the session uses an external cluster or testcontainers")
    before = {s.name: s.pid for s in local_stack.status()}
    assert local_stack.start(timeout=60) == kafka_endpoints
    after = {s.name: s.pid for s in local_stack.status()}
    assert before == after
    assert all(pid for pid in after.values())


def test_a_taken_port_is_one_line_error(local_stack: LocalStack, tmp_path: object) -> None:
    if not local_stack.is_running():
        pytest.skip("the session uses an external cluster or testcontainers")
    kafka_port, controller_port = free_ports(2)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        settings = replace(
            local_stack.settings,
            home=local_stack.settings.home / "second",
            kafka_port=kafka_port,
            controller_port=controller_port,
            registry_port=taken,
        )
        with pytest.raises(StackError) as caught:
            LocalStack(settings).start(timeout=30)
    message = str(caught.value)
    assert message == (
        f"port {taken} for the registry is taken by another process: "
        "stop that process or set CONVOTRAIL_REGISTRY_PORT to a free port"
    )
    assert not LocalStack(settings).is_running()
