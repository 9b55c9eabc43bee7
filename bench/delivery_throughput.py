"""Delivery throughput: the bounce processor and the receipts processor against the
bare-consumer ceiling, in one run on one broker.

  (a) notifications: N SES notifications (9 deliveries to 1 hard bounce) about N
      outbound emails whose routes the bounce worker has already learned. The
      bounce processor (processors.delivery.worker, a real `convotrail worker
      --processor bounces` process) parses each, finds its conversation, re-keys it
      by recipient (delivery-facts), applies escalation and suppression and appends
      the delivery event to conversation-events: three agents, two Kafka hops.
      Ceiling: a bare confluent-kafka consumer polling delivery-notifications and
      parsing each body with the same provider parser.
  (b) views: N customer views (MESSAGE_VIEWED, distinct messages) on
      conversation-events. The receipts processor (`--processor receipts`) folds each
      into its message's track and writes a ReadReceipt. Ceiling: a bare consumer
      polling conversation-events and decoding the Avro events.

A processor's rate is N over the span between the broker timestamps (CreateTime,
set by the worker) of its first and last output record: start-up and group join
fall outside, the first batch's latency inside. The inputs are on the topics
before the worker starts, so it runs flat out.

    python -m bench.delivery_throughput [--messages 20000] [--bare-runs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.common import bench_settings, best_of, fresh_topics, save
from connectors.delivery_samples import ses_via_sns
from connectors.publisher import GUARANTEES, EventPublisher
from convotrail.settings import Settings
from processors.delivery.providers import ses
from schemas import headers as h
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DELIVERY_TYPES = {
    t.value.encode()
    for t in (
        m.EventType.MESSAGE_DELIVERED,
        m.EventType.BOUNCE_DETECTED,
        m.EventType.MESSAGE_SENT,
        m.EventType.DELIVERY_FAILED,
        m.EventType.CUSTOMER_MARKED_SPAM,
    )
}


def outbound(i: int) -> m.ConversationEvent:
    return m.ConversationEvent(
        event_id=f"add-{i}", conversation_id=f"cnv-{i % 2000}", account_id="acct-bench",
        type=m.EventType.MESSAGE_ADDED, occurred_at=T0 + timedelta(seconds=i),
        actor=m.Actor(kind=m.ActorKind.STAFF, id="stf-1"),
        payload=m.MessageAdded(
            message_id=f"msg-{i}", direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY, channel=m.Channel.EMAIL,
            recipients=(f"cust{i}@example.com",), email_message_id=f"<m{i}@acme.example>",
        ),
    )  # fmt: skip


def view(i: int) -> m.ConversationEvent:
    agent = "Mozilla/5.0 (compatible; Mimecast)" if i % 10 == 0 else "Mozilla/5.0 (iPhone)"
    return m.ConversationEvent(
        event_id=f"view-{i}", conversation_id=f"cnv-{i % 2000}", account_id="acct-bench",
        type=m.EventType.MESSAGE_VIEWED, occurred_at=T0 + timedelta(seconds=i, hours=1),
        actor=m.Actor(kind=m.ActorKind.CUSTOMER, id=f"cus-{i}"),
        payload=m.MessageViewed(
            message_id=f"msg-{i}", viewer_kind=m.ViewerKind.CUSTOMER, viewer_id=f"cus-{i}",
            source=m.ViewSource.TRACKING_PIXEL, user_agent=agent,
        ),
    )  # fmt: skip


def notification(i: int) -> bytes:
    kind = "Bounce" if i % 10 == 0 else "Delivery"
    return ses_via_sns(
        kind, email_message_id=f"m{i}@acme.example", ses_message_id=f"ses-{i}",
        recipient=f"cust{i}@example.com", at=T0 + timedelta(seconds=i, milliseconds=900),
        notification_id=f"n-{i}",
    )  # fmt: skip


def publish_events(settings: Settings, events: list[m.ConversationEvent]) -> None:
    with EventPublisher(settings) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush(120)


def publish_notifications(settings: Settings, bodies: list[bytes]) -> None:
    """Raw, keyed by each body's message ref, as the intake would (records_of)."""
    producer = Producer(settings.kafka_config({"linger.ms": 20, **GUARANTEES}))
    for body in bodies:
        key = ses.parse(body)[0].message_refs[0].encode()
        producer.produce(settings.topics.delivery_notifications, key=key, value=body,
                         headers=[(h.PROVIDER, b"ses")])  # fmt: skip
        producer.poll(0)
    producer.flush(120)


def _consumer(settings: Settings, topic: str) -> Consumer:
    consumer = Consumer(settings.kafka_config({"group.id": f"bench-{uuid.uuid4()}",
                                               "enable.auto.commit": False}))  # fmt: skip
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)]
    )
    return consumer


def bare(settings: Settings, topic: str, count: int, work: Any) -> float:
    """Records/s of a bare consumer polling `topic` and applying `work` to each value."""
    consumer = _consumer(settings, topic)
    seen, first = 0, 0.0
    try:
        while seen < count:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if batch and not first:
                first = time.perf_counter()
            for message in batch:
                work(message.value())
                seen += 1
        return seen / (time.perf_counter() - first)
    finally:
        consumer.close()


def output_span(
    settings: Settings, topic: str, count: int, wanted: Any, timeout: float = 600
) -> tuple[int, float]:
    """Wait for `count` records of `topic` that `wanted(message)` accepts; return how many
    and the seconds between the first and last one's broker timestamps."""
    consumer = _consumer(settings, topic)
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(stamps) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(stamps)} of {count} outputs on {topic} in {timeout} s")
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if wanted(message):
                    stamps.append(message.timestamp()[1])
        return len(stamps), (max(stamps) - min(stamps)) / 1000
    finally:
        consumer.close()


def _header(message: Any, name: str) -> bytes | None:
    return next((v for k, v in message.headers() or [] if k == name), None)


def start_worker(settings: Settings, processor: str, home: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(settings.partitions),
        CONVOTRAIL_HOME=str(home),
    )
    home.mkdir(parents=True, exist_ok=True)
    log = (home / f"{processor}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "convotrail", "worker", "--processor", processor],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_bounces(base: Settings, n: int, runs: int, work: Path) -> dict[str, Any]:
    settings = fresh_topics(base, "bounces")
    register_contract(Registry(settings.registry_url), settings.topics)
    publish_events(settings, [outbound(i) for i in range(n)])
    worker = start_worker(settings, "bounces", work / "bounces")
    try:  # warm: every route learned before the first notification arrives
        output_span(settings, settings.topics.message_routes, 2 * n, lambda _: True)
        bodies = [notification(i) for i in range(n)]
        publish_notifications(settings, bodies)
        count, seconds = output_span(
            settings, settings.topics.conversation_events, n,
            lambda msg: _header(msg, h.EVENT_TYPE) in DELIVERY_TYPES,
        )  # fmt: skip
    finally:
        stop(worker)
    ceiling, rates = best_of(runs, lambda: bare(
        settings, settings.topics.delivery_notifications, n, ses.parse))  # fmt: skip
    rate = count / seconds
    return {"notifications": n, "seconds": seconds, "per_s": rate, "bare_per_s": ceiling,
            "bare_runs": rates, "ratio": rate / ceiling}  # fmt: skip


def measure_receipts(base: Settings, n: int, runs: int, work: Path) -> dict[str, Any]:
    settings = fresh_topics(base, "receipts")
    register_contract(Registry(settings.registry_url), settings.topics)
    publish_events(settings, [view(i) for i in range(n)])
    worker = start_worker(settings, "receipts", work / "receipts")
    try:
        count, seconds = output_span(settings, settings.topics.read_receipts, n, lambda _: True)
    finally:
        stop(worker)
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)),
                       settings.topics.conversation_events, m.ConversationEvent)  # fmt: skip
    ceiling, rates = best_of(runs, lambda: bare(
        settings, settings.topics.conversation_events, n, codec.decode))  # fmt: skip
    rate = count / seconds
    return {"views": n, "seconds": seconds, "per_s": rate, "bare_per_s": ceiling,
            "bare_runs": rates, "ratio": rate / ceiling}  # fmt: skip


def _line(name: str, unit: str, result: dict[str, Any], work: str) -> str:
    return (
        f"{name}: {result['per_s']:,.0f} {unit}/s ({result[unit]} in {result['seconds']:.1f} s);"
        f" bare consumer + {work} {result['bare_per_s']:,.0f}/s; ratio {result['ratio']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--bare-runs", type=int, default=3)
    args = parser.parse_args()
    base, local = bench_settings()
    try:
        with tempfile.TemporaryDirectory(prefix="convotrail-bench-") as tmp:
            work = Path(tmp)
            bounces = measure_bounces(base, args.messages, args.bare_runs, work)
            print(_line("bounce processor", "notifications", bounces, "parse"))
            receipts = measure_receipts(base, args.messages, args.bare_runs, work)
            print(_line("receipts processor", "views", receipts, "decode"))
        path = save("delivery", {"bounces": bounces, "receipts": receipts,
                                 "partitions": base.partitions})  # fmt: skip
        print(f"results: {path}")
    finally:
        if local is not None:
            local.stop()


if __name__ == "__main__":
    main()
