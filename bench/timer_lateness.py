"""Timer lateness at load: 100,000 pending reminders in a real worker, firing.

One run, through the real broker: `conversations` conversations with `reminders`
each (N = their product) are published; `firing` of the reminders fall due in a
window that opens after the worker has taken them all in, the others an hour
later, so all N are pending while those fire. A real `convotrail worker` process
(timers on) loads them into its store's schedule index (RocksDB; loaded when its
group's committed positions reach the end of the published events), then fires
them from its stream loop (every 100 ms
it looks for what is due, in the transaction that marks them fired). A
read_committed consumer on conversation-events reads every REMINDER_TRIGGERED
event as it arrives: lateness = arrival at the consumer (wall clock, same
machine) minus the reminder's due time, so it includes the loop's 100 ms tick, the
transaction's commit and the consumer's fetch. Reported: p50 / p99 / max, how
many fired exactly once, the worker's own due-to-sent histogram (its mean), and
what holding N timers costs the worker (RSS, its state directory on disk).

The bare baseline of the run is the broker's own delivery latency: a produce
to consume round trip of one small record on the same topic and machine, its p50
and p99 (lateness cannot be lower).

    python -m bench.timer_lateness [--conversations 20000] [--reminders 5]
        [--firing 2000] [--window 40] [--lead 150] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.common import bench_settings, fresh_topics, percentile, save
from bench.kafka_tools import Positions, end_offsets
from bench.processes import Worker, disk_mib, rss_mib
from connectors.publisher import GUARANTEES, EventPublisher
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde

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
    parser.add_argument("--quick", action="store_true",
                        help="smoke: 10,000 timers, 500 firing in 10 s, 60 s lead")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.conversations, args.firing = min(args.conversations, 2000), min(args.firing, 500)
        args.window, args.lead = min(args.window, 10.0), min(args.lead, 60.0)

    settings, _local = bench_settings()
    topics = fresh_topics(settings, "timers")
    register_contract(Registry(topics.registry_url), topics.topics)
    total = args.conversations * args.reminders
    start = datetime.now(UTC) + timedelta(seconds=args.lead)
    firing = min(args.firing, total)
    events = history(args.conversations, args.reminders, start, args.window, firing)
    rtts = broker_round_trip(topics)
    print(f"broker round trip (the floor): p50 {statistics.median(rtts) * 1000:.1f} ms, "
          f"p99 {percentile(rtts, 0.99) * 1000:.1f} ms")  # fmt: skip

    # read_committed: a fired reminder counts when its transaction has committed, as
    # every reader of the log (the worker itself included) sees it.
    consumer = Consumer(topics.kafka_config({"group.id": f"lateness-{uuid.uuid4()}",
                                             "auto.offset.reset": "earliest",
                                             "isolation.level": "read_committed",
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

    ends = end_offsets(topics, topics.topics.conversation_events)
    positions = Positions(topics)
    group = f"{topics.topics.prefix}convotrail-conversations"
    with TemporaryDirectory(prefix="convotrail-timers-") as home:
        worker = Worker(topics, Path(home), instance_id="bench-timers", timers=True)
        lateness: dict[str, float] = {}
        repeats = 0
        loaded_at: float | None = None
        loaded: dict[str, float] = {}
        try:
            deadline = time.monotonic() + args.lead + args.window + 300
            next_look = 0.0
            while len(lateness) < firing and time.monotonic() < deadline:
                if loaded_at is None and time.monotonic() >= next_look:
                    next_look = time.monotonic() + 0.5
                    # Every published event committed: the store holds every timer.
                    if positions.reached(group, topics.topics.conversation_events, ends):
                        loaded_at = (start - datetime.now(UTC)).total_seconds()
                        time.sleep(0.5)  # the store's write follows the Kafka commit
                        loaded = {"rss_mib": rss_mib(worker.pid),
                                  "state_dir_mib": disk_mib(Path(home) / "state"),
                                  "timers_pending_gauge": worker.metric(
                                      "convotrail_timers_pending")}  # fmt: skip
                        print(f"worker holds {total:,} timers, {loaded_at:.0f} s before the "
                              f"first due; RSS {loaded['rss_mib']:.0f} MiB, state directory "
                              f"{loaded['state_dir_mib']:.0f} MiB on disk; its gauge "
                              f"convotrail_timers_pending says "
                              f"{loaded['timers_pending_gauge']:,.0f}")  # fmt: skip
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
            worker_rss = rss_mib(worker.pid)
            found = worker.metrics()
            count = found.get("convotrail_timer_lateness_seconds_count", 0.0)
            inside = (
                found.get("convotrail_timer_lateness_seconds_sum", 0.0) / count if count else None
            )
        finally:
            worker.stop()
            consumer.close()
    values = list(lateness.values())
    if loaded_at is None or loaded_at < 0:
        print("warning: the worker had not loaded every timer before the first due time; "
              "raise --lead")  # fmt: skip
    if not values:
        print("no reminder fired: see the worker's log")
        return
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
        "worker_due_to_sent_mean_s": inside,
        "broker_round_trip_s": {"p50": statistics.median(rtts), "p99": percentile(rtts, 0.99)},
        "ratio_p99_lateness/round_trip": percentile(values, 0.99) / percentile(rtts, 0.99),
        "loaded_seconds_before_first_due": loaded_at,
        "worker_when_loaded": loaded,
        "worker_rss_mib_at_end": worker_rss,
        "window_s": args.window,
        "quick": args.quick,
    }
    late = result["lateness_s"]
    p50, p99, most = (late[k] * 1000 for k in ("p50", "p99", "max"))
    print(f"fired {len(values):,} of {firing:,} due in {args.window:.0f} s, {total:,} pending "
          f"(repeats {repeats}); "
          f"lateness p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {most:.0f} ms "
          f"(p99 x{result['ratio_p99_lateness/round_trip']:.0f} the round trip's)")  # fmt: skip
    if inside is not None:
        print(f"the worker's own due -> sent: {inside * 1000:.0f} ms mean")
    print(f"worker RSS at the end: {worker_rss:.0f} MiB")
    print(f"results: {save('timers', result)}")


if __name__ == "__main__":
    main()
