"""Delivery throughput: the bounce and receipts processors on the stream runtime against
bare consumers doing only the parse or the decode, in one run on one broker.

Each round (fresh topics; contestants in rotated order; medians over rounds):

  bounces: N outbound emails (MESSAGE_ADDED) are published and a real `convotrail
      worker --processor bounces` learns their 3N routes (two message refs and the
      recipient's index entry each), then stops cleanly. N SES
      notifications (SNS envelope; 9 deliveries to 1 hard bounce) about those
      messages go on delivery-notifications, keyed by message ref, and the worker
      starts again (its ledger restored from its local store): it parses each,
      finds its route, appends a delivery fact (delivery-facts, keyed by recipient),
      applies escalation and suppression, and appends the delivery event to
      conversation-events, all in its transactions. Window: from the CreateTime of
      its first delivery fact (produced by the handler of its first notification)
      to the moment a read_committed consumer has seen all N delivery events.
      Baseline: a bare confluent-kafka consumer on delivery-notifications that
      parses every body with the same parser (PARSERS["ses"].parse).
  receipts: N customer views (MESSAGE_VIEWED, distinct messages, one in ten from a
      scanner's user agent) on conversation-events, then `convotrail worker
      --processor receipts`. Its outputs go out at commit, so its window is read
      from the group's committed positions (every 50 ms): from the first commit to
      the one that covers all N, over the records between them. Baseline: a bare
      consumer decoding every event with fastavro into dicts (as the pipeline's
      (a)); the compiled codec into model objects is shown too.

CPU per notification or view: utime + stime of the worker process, every thread,
over its window (/proc); the baselines' CPU is this process's over theirs.

    python -m bench.delivery_throughput [--messages 20000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import bench_settings, fresh_topics, median, rotated, save
from bench.kafka_tools import (
    Positions,
    bare_consume,
    end_offsets,
    first_timestamps,
    publish,
)
from bench.processes import Worker, commit_summary
from connectors.delivery_samples import ses_via_sns
from connectors.publisher import GUARANTEES
from convotrail import clients
from convotrail.settings import Settings
from processors.delivery.providers import PARSERS
from processors.delivery.shell import BounceOptions
from processors.receipts.shell import ReceiptsOptions
from schemas import headers as h
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.serde import AvroSerde

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DELIVERY_TYPES = {
    t.value.encode()
    for t in (m.EventType.MESSAGE_DELIVERED, m.EventType.BOUNCE_DETECTED,
              m.EventType.DELIVERY_FAILED, m.EventType.CUSTOMER_MARKED_SPAM)
}  # fmt: skip


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


def publish_notifications(settings: Settings, bodies: list[bytes]) -> None:
    """Raw, keyed by each body's message ref, with the provider header, as the intake does."""
    producer = Producer(settings.kafka_config({"linger.ms": 20, **GUARANTEES}))
    for body in bodies:
        key = PARSERS["ses"].parse(body)[0].message_refs[0].encode()
        while True:
            try:
                producer.produce(settings.topics.delivery_notifications, key=key, value=body,
                                 headers=[(h.PROVIDER, b"ses")])  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def _wait_metric(worker: Worker, name: str, wanted: float, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while worker.metric(name) < wanted:
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} short of {wanted} after {timeout} s")
        time.sleep(0.2)


# -- bounces --------------------------------------------------------------------------------


def prepare_bounces(base: Settings, n: int, work: Path) -> Settings:
    """Fresh topics with N routed messages (learned by a worker that then stopped) and N
    notifications about them waiting on delivery-notifications."""
    settings = fresh_topics(base, "bounces")
    publish(settings, [outbound(i) for i in range(n)])
    learner = Worker(settings, work, processor="bounces", instance_id="bench")
    try:  # N events and the 3N routes they teach, committed
        _wait_metric(learner, "convotrail_records_processed_total", 4 * n)
    finally:
        learner.stop()
    publish_notifications(settings, [notification(i) for i in range(n)])
    return settings


def delivery_events(settings: Settings) -> Consumer:
    """A read_committed consumer on conversation-events from its current end."""
    consumer = Consumer(settings.kafka_config({
        "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False,
        "isolation.level": "read_committed", "fetch.wait.max.ms": 20,
    }))  # fmt: skip
    topic = settings.topics.conversation_events
    consumer.assign(
        [TopicPartition(topic, p, end) for p, end in end_offsets(settings, topic).items()]
    )
    return consumer


def run_bounces(settings: Settings, n: int, work: Path) -> dict[str, Any]:
    seen = 0
    watch = delivery_events(settings)
    worker = Worker(settings, work, processor="bounces", instance_id="bench")
    try:
        ready = worker.wait_ready()
        deadline = time.monotonic() + 900
        while seen < n:
            worker.cpu.sample()
            for message in watch.consume(1000, timeout=0.05):
                if message.error() is None and _header(message, h.EVENT_TYPE) in DELIVERY_TYPES:
                    seen += 1
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"bounces: {seen} of {n} delivery events after 900 s")
        done = time.time()
        worker.cpu.sample()
        summary = commit_summary(worker)
    finally:
        watch.close()
        worker.stop()
    stamps = first_timestamps(settings, settings.topics.delivery_facts)
    first = stamps[0] if stamps else ready
    seconds = done - first
    cpu = worker.cpu.at(done) - worker.cpu.at(first)
    return {"per_s": n / seconds, "seconds": seconds, "cpu_us": cpu / n * 1e6,
            "cpu_share": cpu / seconds, **summary}  # fmt: skip


def _header(message: Any, name: str) -> bytes | None:
    return next((v for k, v in message.headers() or [] if k == name), None)


# -- receipts -------------------------------------------------------------------------------


def run_receipts(settings: Settings, n: int, work: Path) -> dict[str, Any]:
    topic = settings.topics.conversation_events
    ends = end_offsets(settings, topic)
    group = f"{settings.topics.prefix}{ReceiptsOptions().app_id}"
    positions = Positions(settings)
    worker = Worker(settings, work, processor="receipts", instance_id="bench")
    first: tuple[float, int] | None = None
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 900
        while True:
            worker.cpu.sample()
            try:
                committed = sum(max(0, o) for o in positions.committed(group, topic, ends).values())
            except Exception:
                committed = 0
            now = time.time()
            if committed and first is None:
                first = (now, committed)
            if committed >= n:
                break
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"receipts: {committed} of {n} views committed after 900 s")
            time.sleep(0.05)
        summary = commit_summary(worker)
    finally:
        worker.stop()
    assert first is not None
    records, seconds = n - first[1], now - first[0]
    if records <= 0:  # everything in the first transaction: too small to measure
        return {"per_s": float("nan"), "seconds": 0.0, "cpu_us": float("nan"), **summary}
    cpu = worker.cpu.at(now) - worker.cpu.at(first[0])
    return {"per_s": records / seconds, "seconds": seconds, "cpu_us": cpu / records * 1e6,
            "records_in_window": records, "cpu_share": cpu / seconds, **summary}  # fmt: skip


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 5,000 messages")
    args = parser.parse_args()
    if args.quick:
        # Not less: the receipts window starts at the first commit, which may cover
        # a few thousand views.
        args.messages = min(args.messages, 5000)
    n = args.messages
    base, local = bench_settings()
    names = ("bare_parse", "bounces", "bare_decode", "bare_decode_model", "receipts")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    print(f"{n:,} notifications and {n:,} views per round, {args.rounds} rounds "
          f"(bounce wait {BounceOptions().wait})")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="convotrail-bench-") as tmp:
        for r in range(args.rounds):
            work = Path(tmp) / f"round-{r}"
            bounces = prepare_bounces(base, n, work / "bounces")
            receipts = fresh_topics(base, "receipts")
            publish(receipts, [view(i) for i in range(n)])
            serde = AvroSerde(clients.registry(receipts))
            codec = ModelCodec(serde, receipts.topics.conversation_events, m.ConversationEvent)
            for name in rotated(list(names), r):
                if name == "bounces":
                    result = run_bounces(bounces, n, work / "bounces")
                elif name == "receipts":
                    result = run_receipts(receipts, n, work / "receipts")
                else:
                    topic, work_of = {
                        "bare_parse": (bounces.topics.delivery_notifications,
                                       PARSERS["ses"].parse),
                        "bare_decode": (receipts.topics.conversation_events, serde.decode),
                        "bare_decode_model": (receipts.topics.conversation_events,
                                              codec.decode),
                    }[name]  # fmt: skip
                    settings = bounces if name == "bare_parse" else receipts
                    bare = bare_consume(settings, topic, n, work_of)
                    result = {"per_s": bare.per_s, "cpu_us": bare.cpu_us}
                runs[name].append(result)
                print(f"  round {r + 1} {name:<18}: {result['per_s']:>9,.0f}/s, "
                      f"{result['cpu_us']:>6.0f} us CPU each")  # fmt: skip
    rate = {k: median([x["per_s"] for x in v]) for k, v in runs.items()}
    cpu = {k: median([x["cpu_us"] for x in v]) for k, v in runs.items()}
    ratios = {
        "bounces/bare_parse": rate["bounces"] / rate["bare_parse"],
        "receipts/bare_decode": rate["receipts"] / rate["bare_decode"],
        "receipts/bare_decode_model": rate["receipts"] / rate["bare_decode_model"],
    }
    print(f"medians of {args.rounds} rounds:")
    for name in names:
        print(f"  {name:<18}: {rate[name]:>9,.0f}/s, {cpu[name]:>6.0f} us CPU each")
    for (name, value), target in zip(ratios.items(), (0.15, 0.25, None), strict=True):
        print(f"  ratio {name:<27}: {value:.3f}" + (f" (target >= {target})" if target else ""))
    path = save("delivery", {"messages": n, "rounds": args.rounds, "quick": args.quick,
                             "partitions": base.partitions, "medians": rate,
                             "cpu_us": cpu, "ratios": ratios, "runs": runs})  # fmt: skip
    print(f"results: {path}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


if __name__ == "__main__":
    main()
