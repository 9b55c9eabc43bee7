"""`convotrail demo`: bring the local pipeline up and show traffic going through it.

It starts the local stack (unless an external cluster is configured), creates the
topics, sends Avro records with Confluent framing through the real broker, reads
them back, and says where everything is. Without `--once` it keeps sending a
record every few seconds until Ctrl-C, then stops whatever it started.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from convotrail.settings import Settings
from convotrail.stack import LocalStack
from convotrail.topics import TopicSpec, admin_client, ensure_topics, topic_specs
from schemas.registry import Registry
from schemas.serde import AvroSerde

Echo = Callable[[str], None]

# A stack check only: its own topic and subject, so it never mixes with the
# conversation-events contract.
PING_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "StackPing",
    "namespace": "dev.convotrail.demo",
    "doc": "A record the demo sends to prove the broker and registry work end to end.",
    "fields": [
        {"name": "conversation_id", "type": "string", "doc": "Key of the record."},
        {"name": "sequence", "type": "long", "doc": "Position in the demo run."},
        {
            "name": "sent_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "When the demo sent it.",
        },
    ],
}


def ping_topic(settings: Settings) -> str:
    return f"{settings.topics.prefix}demo-pings"


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _produce_pings(
    producer: Producer,
    topic: str,
    encode: Callable[[dict[str, Any]], bytes],
    start: int,
    count: int,
    on_delivery: Callable[[KafkaError | None, Any], None],
) -> None:
    for sequence in range(start, start + count):
        conversation_id = f"cnv-demo-{sequence % 3}"
        record = {"conversation_id": conversation_id, "sequence": sequence,
                  "sent_at": datetime.now(UTC)}  # fmt: skip
        producer.produce(topic, key=conversation_id, value=encode(record), on_delivery=on_delivery)


def send_and_read_back(
    settings: Settings, serde: AvroSerde, count: int, start: int, echo: Echo, timeout: float = 30.0
) -> int:
    """Send `count` pings, read exactly those back, print them; return how many came back."""
    topic = ping_topic(settings)
    encode = serde.encoder(topic, PING_SCHEMA)
    producer = Producer(settings.kafka_config({"enable.idempotence": True, "acks": "all"}))
    delivered: list[tuple[int, int]] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is None:
            delivered.append((msg.partition(), msg.offset()))

    try:
        _produce_pings(producer, topic, encode, start, count, on_delivery)
    finally:
        producer.flush(timeout)
    if len(delivered) != count:
        echo(f"  only {len(delivered)} of {count} records were acknowledged by the broker")
    first: dict[int, int] = {}
    for partition, offset in delivered:
        first[partition] = min(offset, first.get(partition, offset))
    consumer = Consumer(
        settings.kafka_config(
            {"group.id": f"convotrail-demo-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )
    seen = 0
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in first.items()])
        wanted = set(delivered)
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if (msg.partition(), msg.offset()) not in wanted:
                continue
            wanted.discard((msg.partition(), msg.offset()))
            record = serde.decode(msg.value())
            seen += 1
            key = (msg.key() or b"").decode()
            sent_at = record["sent_at"].isoformat(timespec="milliseconds")
            echo(
                f"  read back  p{msg.partition()}@{msg.offset():<5} key={key}  "
                f"sequence={record['sequence']}  sent_at={sent_at}"
            )
    finally:
        consumer.close()
    return seen


def run_demo(settings: Settings, once: bool, count: int, echo: Echo) -> None:
    local = LocalStack(settings) if settings.uses_local_stack else None
    started_here = local is not None and not local.is_running()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        if local is not None:
            echo("Starting the local stack (the first run fetches Kafka and the registry) ...")
            local.start(progress=lambda line: echo(f"  {line}"))
        specs = [*topic_specs(settings), TopicSpec(ping_topic(settings), settings.partitions, 1)]
        created = ensure_topics(admin_client(settings), specs)
        echo(f"Topics ready: {', '.join(outcome.name for outcome in created)}")
        serde = AvroSerde(Registry(settings.registry_url))
        echo(f"Sending {count} Avro records to {ping_topic(settings)} and reading them back:")
        seen = send_and_read_back(settings, serde, count, 0, echo)
        echo(f"{seen} of {count} records came back through the broker.")
        _where_to_look(settings, local, echo)
        if once:
            return
        echo("Sending one record every 3 seconds; press Ctrl-C to stop.")
        sequence = count
        while True:
            time.sleep(3)
            send_and_read_back(settings, serde, 1, sequence, echo)
            sequence += 1
    except (KeyboardInterrupt, _Stop):
        echo("\nStopping ...")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if local is not None and started_here:
            for line in local.stop():
                echo(f"  {line}")
        elif local is not None:
            echo("The stack was already running before the demo; it is left running.")


def _where_to_look(settings: Settings, local: LocalStack | None, echo: Echo) -> None:
    echo("")
    echo("Where to look:")
    echo(f"  Kafka bootstrap servers  {settings.bootstrap_servers}")
    echo(f"  Schema registry          {settings.registry_url}/subjects")
    if local is not None:
        echo(f"  Logs                     {local.state_dir / 'logs'}")
        echo(f"  Broker and registry data {local.state_dir}")
    echo("  Commands                 convotrail topics list | convotrail stack status")
    echo("")
