"""Timer lateness at load: 100,000 pending reminders in a real worker, firing.

One run:

1. in process, the memory the worker's timer index costs for N pending timers
   (tracemalloc around building a TimerIndex from N states' timers);
2. through the real broker: `conversations` conversations with `reminders` each
   (N = their product) are published; `firing` of the reminders fall due in a
   window that opens after the worker has taken them all in, the others an hour
   later, so all N are pending while those fire; a real `convotrail worker` process
   loads them (its metrics say how many timers are pending), then fires them.
   A consumer on conversation-events reads every REMINDER_TRIGGERED event as it
   arrives: lateness = arrival at the consumer (wall clock, same machine) minus
   the reminder's due time, so it includes the timer loop, the producer's linger
   and the consumer's fetch. Reported: p50 / p99 / max, and how many fired
   exactly once.

The bare baseline of the run is the broker's own delivery latency: a produce
to consume round trip of one small record on the same topic and machine, its p50
and p99 (lateness cannot be lower).

    python -m bench.timer_lateness [--conversations 20000] [--reminders 5]
        [--firing 2000] [--window 40] [--lead 150]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.common import bench_settings, fresh_topics, save
from connectors.publisher import GUARANTEES, EventPublisher
from convotrail.settings import Settings
from processors.conversation.core import Memory, evolve
from processors.conversation.timer_index import TimerIndex
from processors.conversation.timers import TimerPolicy, pending_timers
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.ports import free_ports
from tests.support.worker import worker_env

DANA = m.Actor(kind=m.ActorKind.STAFF, id="stf-dana", name="Dana")
JO = m.Actor(kind=m.ActorKind.CUSTOMER, id="cus-jo", name="Jo Park")
INBOX = m.InboxRef(id="inb-support", name="Support")


def history(
    conversations: int, reminders: int, start: datetime, window: float, firing: int
) -> list[m.ConversationEvent]:
    """Email conversations (no auto-resolve) with reminders: `firing` of them due
    in the window, spread evenly, the others an hour later (pending throughout)."""
    events = []
    total = conversations * reminders
    for c in range(conversations):
        cid = f"cnv-{c:06d}"
        events.append(m.ConversationEvent(
            event_id=f"{cid}-created", conversation_id=cid, account_id="acct-1",
            type=m.EventType.CONVERSATION_CREATED, occurred_at=start - timedelta(hours=1),
            actor=JO, payload=m.ConversationCreated(channel=m.Channel.EMAIL, inbox=INBOX,
                                                    customer_id="cus-jo"),
        ))  # fmt: skip
        for r in range(reminders):
            n = c * reminders + r
            # Interleaved so that the firing reminders belong to many conversations.
            slot = (n * 7919) % total
            if slot < firing:
                due = start + timedelta(seconds=window * slot / firing)
            else:
                due = start + timedelta(hours=1, seconds=slot / 1000)
            events.append(m.ConversationEvent(
                event_id=f"{cid}-r{r}", conversation_id=cid, account_id="acct-1",
                type=m.EventType.REMINDER_ADDED, occurred_at=start - timedelta(hours=1),
                actor=DANA, payload=m.ReminderAdded(reminder_id=f"r{r}", due_at=due),
            ))  # fmt: skip
    return events


def index_memory(events: list[m.ConversationEvent]) -> dict[str, float]:
    """Bytes the TimerIndex holds for these events' timers (states built beforehand)."""
    memories: dict[str, Memory] = {}
    for event in events:
        memories[event.conversation_id], _ = evolve(memories.get(event.conversation_id), event,
                                                    event.occurred_at)  # fmt: skip
    policy = TimerPolicy()
    timers = {cid: pending_timers(mem.state, policy) for cid, mem in memories.items()}
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    index = TimerIndex()
    for n, (cid, pending) in enumerate(timers.items()):
        index.set(n % 6, cid, pending)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The Timer objects themselves are built by pending_timers before the index
    # takes them; count them in, as the worker holds them only through the index.
    sample = next(iter(timers.values()))
    sizes = [sys.getsizeof(t) + sys.getsizeof(t.timer_id) for t in sample]
    per_timer = sum(sizes) / len(sizes)
    timer_count = len(index)
    return {
        "timers": timer_count,
        "index_bytes": after - before,
        "bytes_per_timer": (after - before) / timer_count + per_timer,
    }


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def broker_round_trip(settings: Settings, samples: int = 200) -> list[float]:
    """Produce-to-consume latency of one small record, seconds (the floor)."""
    topic = settings.topics.conversation_events_dlq  # an empty topic of the same broker
    consumer = Consumer(settings.kafka_config({"group.id": f"rtt-{uuid.uuid4()}",
                                               "auto.offset.reset": "latest",
                                               "fetch.wait.max.ms": 10}))  # fmt: skip
    consumer.subscribe([topic])
    while not consumer.assignment():
        consumer.poll(0.2)
    producer = Producer(settings.kafka_config({**GUARANTEES, "linger.ms": 5}))
    rtts = []
    for _ in range(samples):
        sent = time.time()
        producer.produce(topic, key=b"rtt", value=b"x")
        producer.flush(10)
        while (message := consumer.poll(5)) is None or message.error():
            pass
        rtts.append(time.time() - sent)
    consumer.close()
    return rtts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--reminders", type=int, default=5)
    parser.add_argument("--window", type=float, default=40.0, help="seconds the dues spread over")
    parser.add_argument("--firing", type=int, default=2_000,
                        help="timers due in the window (the rest stay pending); "
                             "--firing 100000 fires them all")  # fmt: skip
    parser.add_argument("--lead", type=float, default=150.0,
                        help="seconds from publishing to the first due time")  # fmt: skip
    args = parser.parse_args()

    settings, _local = bench_settings()
    topics = fresh_topics(settings, "timers")
    register_contract(Registry(topics.registry_url), topics.topics)
    total = args.conversations * args.reminders
    start = datetime.now(UTC) + timedelta(seconds=args.lead)
    firing = min(args.firing, total)
    events = history(args.conversations, args.reminders, start, args.window, firing)
    memory = index_memory(events)
    print(f"timer index: {memory['timers']:,} timers, {memory['index_bytes'] / 2**20:.1f} MiB "
          f"({memory['bytes_per_timer']:.0f} bytes per timer with its Timer object)")  # fmt: skip
    rtts = broker_round_trip(topics)
    print(f"broker round trip (the floor): p50 {statistics.median(rtts) * 1000:.1f} ms, "
          f"p99 {percentile(rtts, 0.99) * 1000:.1f} ms")  # fmt: skip

    consumer = Consumer(topics.kafka_config({"group.id": f"lateness-{uuid.uuid4()}",
                                             "auto.offset.reset": "earliest",
                                             "fetch.wait.max.ms": 10}))  # fmt: skip
    consumer.subscribe([topics.topics.conversation_events])
    decode = ModelCodec(AvroSerde(Registry(topics.registry_url)),
                        topics.topics.conversation_events, m.ConversationEvent).decode  # fmt: skip
    started = time.perf_counter()
    with EventPublisher(topics) as publisher:
        for event in events:
            publisher.publish(event)
    print(f"published {len(events):,} events in {time.perf_counter() - started:.1f} s; "
          f"first due in {(start - datetime.now(UTC)).total_seconds():.0f} s")  # fmt: skip

    port = free_ports(1)[0]
    with TemporaryDirectory(prefix="convotrail-timers-") as home:
        env = worker_env(topics, Path(home), timers=True)
        env["CONVOTRAIL_METRICS_PORT"] = str(port)
        log = (Path(home) / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "convotrail", "worker"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        lateness: dict[str, float] = {}
        repeats = 0
        loaded_at: float | None = None
        try:
            deadline = time.monotonic() + args.lead + args.window + 300
            while len(lateness) < firing and time.monotonic() < deadline:
                if loaded_at is None and (metric(port, "convotrail_timers_pending") or 0) >= total:
                    loaded_at = (start - datetime.now(UTC)).total_seconds()
                    print(f"worker holds {total:,} timers, {loaded_at:.0f} s before the first due")
                message = consumer.poll(0.05)
                if message is None or message.error():
                    continue
                arrived = datetime.now(UTC)
                if dict(message.headers() or []).get("event_type") != b"REMINDER_TRIGGERED":
                    continue
                event = decode(message.value())
                assert isinstance(event, m.ConversationEvent)
                assert isinstance(event.payload, m.ReminderTriggered)
                if event.event_id in lateness:
                    repeats += 1
                    continue
                lateness[event.event_id] = (arrived - event.payload.due_at).total_seconds()
            worker_rss = _rss_mib(worker.pid)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            consumer.close()
    values = list(lateness.values())
    if loaded_at is None or loaded_at < 0:
        print("warning: the worker had not loaded every timer before the first due time; "
              "raise --lead")  # fmt: skip
    result: dict[str, Any] = {
        "timers": total,
        "firing_in_window": firing,
        "fired": len(values),
        "fired_twice": repeats,
        "lateness_s": {
            "p50": statistics.median(values),
            "p99": percentile(values, 0.99),
            "max": max(values),
            "min": min(values),
        },
        "broker_round_trip_s": {"p50": statistics.median(rtts), "p99": percentile(rtts, 0.99)},
        "loaded_seconds_before_first_due": loaded_at,
        "worker_rss_mib": worker_rss,
        "index_memory": memory,
        "window_s": args.window,
    }
    late = result["lateness_s"]
    p50, p99, most = (late[k] * 1000 for k in ("p50", "p99", "max"))
    print(f"fired {len(values):,} of {firing:,} due in {args.window:.0f} s, {total:,} pending "
          f"(repeats {repeats}); "
          f"lateness p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {most:.0f} ms")  # fmt: skip
    print(f"worker RSS at the end: {worker_rss:.0f} MiB")
    print(f"results: {save('timers', result)}")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
