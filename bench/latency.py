"""Latency at a steady load: an event's send to its timeline record on Kafka and to its
row in SQLite, through the running conversation worker and `convotrail sink`.

Each run: fresh topics; `convotrail worker --no-timers --commit-interval C` and
`convotrail sink --batch-timeout B` into SQLite are started and waited for (the
worker's /readyz, the sink's group stable); then realistic events (connectors.
traffic, in time order) are published with EventPublisher at a steady RATE for
SECONDS (after WARMUP seconds that are not counted). Each event's send time is
taken when it is produced (the Kafka record's CreateTime is set then). In this
process, meanwhile:

  - a read_committed consumer (poll(): no batching delay) notes when each event
    arrives on conversation-events (the floor: what any consumer of the log sees,
    the baseline of the ratios) and when its timeline entry (TimelineEntry.
    event_id) arrives on conversation-timeline: (i) send -> timeline record;
  - a reader of the SQLite file (WAL: it never blocks the sink) looks for new
    timeline_entries rows every POLL seconds and notes when each event_id first
    appears: (ii) send -> row (the poll interval is part of that figure).

Reported per run: p50/p90/p99/max of the floor, (i) and (ii), their ratios to the
floor, and the worker's records per transaction and commit time. Targets at 1,000
events/s: p99 <= 250 ms to the topic, <= 500 ms to the row. By default each rate
runs with the sink's default batch timeout (0.5 s) and with 0.1 s.

    python -m bench.latency [--rates 1000,300] [--seconds 30] [--batch-timeouts 0.5,0.1]
        [--commit-interval 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.common import bench_settings, distribution, fresh_topics, save
from bench.kafka_tools import Positions
from bench.processes import Sink, Worker, commit_summary
from bench.sink_tools import TimelineRows
from connectors.publisher import EventPublisher
from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from schemas.codecs import ModelCodec
from schemas.model import ConversationEvent, TimelineEntry
from schemas.serde import AvroSerde

START = datetime(2026, 11, 1, tzinfo=UTC)


class Arrivals(threading.Thread):
    """When each event_id first arrives on conversation-events and on the timeline."""

    def __init__(self, topics: Settings) -> None:
        super().__init__(name="arrivals", daemon=True)
        self.stop = threading.Event()
        self.events: dict[str, float] = {}
        self.timeline: dict[str, float] = {}
        serde = AvroSerde(clients.registry(topics))
        names = topics.topics
        self.decoders: dict[str, tuple[Callable[[bytes | None], Any], dict[str, float]]] = {
            names.conversation_events: (
                ModelCodec(serde, names.conversation_events, ConversationEvent).decode,
                self.events,
            ),
            names.conversation_timeline: (
                ModelCodec(serde, names.conversation_timeline, TimelineEntry).decode,
                self.timeline,
            ),
        }
        self.consumer = Consumer(topics.kafka_config({
            "group.id": f"bench-latency-{uuid.uuid4()}", "enable.auto.commit": False,
            "isolation.level": "read_committed", "fetch.wait.max.ms": 10,
        }))  # fmt: skip
        partitions = range(topics.partitions)
        self.consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in self.decoders for p in partitions]
        )

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                message = self.consumer.poll(0.1)
                if message is None or message.error() is not None:
                    continue
                arrived = time.time()
                decode, seen = self.decoders[message.topic() or ""]
                seen.setdefault(decode(message.value()).event_id, arrived)
        finally:
            self.consumer.close()


class Rows(threading.Thread):
    """When each event_id's timeline row first appears in the SQLite file."""

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(name="rows", daemon=True)
        self.stop = threading.Event()
        self.interval = interval
        self.reader = TimelineRows(path)
        self.seen: dict[str, float] = {}

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                looked, event_ids = self.reader.new()
                for event_id in event_ids:
                    self.seen.setdefault(event_id, looked)
                time.sleep(self.interval)
        finally:
            self.reader.close()


def send(topics: Settings, events: list[ConversationEvent], rate: float) -> dict[str, float]:
    """Publish at `rate`, each event when its turn comes; its send time by event_id."""
    latest = max(event.occurred_at for event in events)
    sent: dict[str, float] = {}
    with EventPublisher(topics, clock=lambda: latest) as publisher:
        began = time.perf_counter()
        for i, event in enumerate(events):
            wait = began + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent[event.event_id] = time.time()
            publisher.publish(event)
    return sent


def settle(seen: list[dict[str, float]], quiet: float = 3.0, timeout: float = 60.0) -> None:
    """Until nothing new has arrived anywhere for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    sizes = [-1] * len(seen)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        now = [len(s) for s in seen]
        if now != sizes:
            sizes, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        time.sleep(0.2)


def measure(
    base: Settings, events: list[ConversationEvent], rate: float, warmup: float,
    batch_timeout: float, commit_interval: float, poll: float, work: Path,
) -> dict[str, Any]:  # fmt: skip
    topics = fresh_topics(base, f"latency-{int(rate)}")
    group = f"bench-latency-{topics.topics.prefix}"
    path = work / "sink.db"
    sink = Sink(topics, work, f"sqlite:///{path}", group=group, batch_timeout=batch_timeout)
    worker = Worker(topics, work, instance_id="bench-latency",
                    extra=("--commit-interval", str(commit_interval)))  # fmt: skip
    arrivals, rows = Arrivals(topics), Rows(path, poll)
    try:
        worker.wait_ready()
        Positions(topics).wait_stable(group)
        arrivals.start()
        rows.start()
        sent = send(topics, events, rate)
        settle([arrivals.events, arrivals.timeline, rows.seen])
        summary = commit_summary(worker)
        worker.check()
        sink.check()
    finally:
        arrivals.stop.set()
        rows.stop.set()
        worker.stop()
        sink.stop()
    arrivals.join(10)
    rows.join(10)
    counted_from = min(sent.values()) + warmup
    counted = {e: t for e, t in sent.items() if t >= counted_from}

    def latencies(seen: dict[str, float]) -> list[float]:
        return [seen[e] - t for e, t in counted.items() if e in seen]

    floor = distribution(latencies(arrivals.events))
    topic = distribution(latencies(arrivals.timeline))
    row = distribution(latencies(rows.seen))
    return {"rate": rate, "batch_timeout_s": batch_timeout, "commit_interval_s": commit_interval,
            "sent": len(sent), "counted": len(counted), "floor": floor,
            "to_topic": topic, "to_row": row,
            "ratios_p99": {"to_topic/floor": topic["p99"] / floor["p99"],
                           "to_row/floor": row["p99"] / floor["p99"]},
            "ratios_p50": {"to_topic/floor": topic["p50"] / floor["p50"],
                           "to_row/floor": row["p50"] / floor["p50"]},
            "worker": summary}  # fmt: skip


def _ms(d: dict[str, float]) -> str:
    return " / ".join(f"{d[k] * 1000:6.1f}" for k in ("p50", "p90", "p99", "max"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default="1000,300", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="counted seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent, not counted")
    parser.add_argument("--batch-timeouts", default="0.5,0.1", help="the sink's, comma-separated")
    parser.add_argument("--commit-interval", type=float, default=0.1, help="the worker's")
    parser.add_argument("--poll", type=float, default=0.02, help="SQLite look interval, s")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 8 s per run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 8.0), min(args.warmup, 2.0)
    rates = [float(r) for r in args.rates.split(",")]
    timeouts = [float(t) for t in args.batch_timeouts.split(",")]
    base, local = bench_settings()
    history = generate(seed=2, conversations=3000, start=START)
    runs = []
    print(f"{args.seconds:.0f} s counted per run after {args.warmup:.0f} s of warm-up; worker "
          f"commit interval {args.commit_interval} s; SQLite read every {args.poll} s")  # fmt: skip
    print("  p50 / p90 / p99 / max, ms")
    with tempfile.TemporaryDirectory(prefix="convotrail-latency-") as tmp:
        for timeout in timeouts:
            for rate in rates:
                wanted = int(rate * (args.seconds + args.warmup))
                if wanted > len(history):
                    raise SystemExit(f"{wanted} events wanted, {len(history)} generated")
                work = Path(tmp) / f"{int(rate)}-{timeout}"
                run = measure(base, history[:wanted], rate, args.warmup, timeout,
                              args.commit_interval, args.poll, work)  # fmt: skip
                runs.append(run)
                label = f"{rate:,.0f} events/s, sink batch timeout {timeout} s"
                print(f"  {label}: ({run['counted']:,} events counted)")
                print(f"    floor: send -> conversation-events : {_ms(run['floor'])}")
                print(f"    (i)  send -> timeline record       : {_ms(run['to_topic'])}"
                      f"  (p99 x{run['ratios_p99']['to_topic/floor']:.1f} the floor)")  # fmt: skip
                print(f"    (ii) send -> SQLite row            : {_ms(run['to_row'])}"
                      f"  (p99 x{run['ratios_p99']['to_row/floor']:.1f} the floor)")  # fmt: skip
                worker = run["worker"]
                print(f"    worker: {worker['records_per_transaction']:.0f} records per "
                      f"transaction, commit {worker['commit_ms_mean']:.1f} ms mean (outputs "
                      f"{worker['commit_outputs_ms_mean']:.1f}, kafka "
                      f"{worker['commit_kafka_ms_mean']:.1f}, stores "
                      f"{worker['commit_stores_ms_mean']:.1f})")  # fmt: skip
    print("targets at 1,000 events/s: p99 <= 250 ms to the topic, <= 500 ms to the row")
    path = save("latency", {"seconds": args.seconds, "warmup": args.warmup, "poll_s": args.poll,
                            "quick": args.quick, "runs": runs})  # fmt: skip
    print(f"results: {path}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


if __name__ == "__main__":
    main()
