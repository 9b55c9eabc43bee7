"""Pipeline throughput: the conversation processor on the stream runtime against a bare
confluent-kafka consumer, and against its own work without Kafka.

One run, one set of realistic events (connectors.traffic, seed 1, 3,000
conversations: about 56,000 events) published once with EventPublisher to a fresh
6-partition topic set, then, in rounds (contestants in rotated order; medians):

  (a)  a bare confluent-kafka consumer on that topic: consume(1000) and Avro decode
       of every value with fastavro into dicts (AvroSerde.decode): the reference
       baseline; (a') the same with the compiled codec into model objects
       (ModelCodec.decode), a second, stricter ceiling;
  (b)  the processor as a real process (`convotrail worker --no-timers`) on a copy
       of the same records (same bytes, keys, headers and partitions) in a fresh
       topic set, so every round starts from offset 0 with an empty changelog and
       empty outputs. Its window runs from its first processed record (the
       CreateTime of its first timeline output, produced by the handler of that
       record) to the moment the group's committed positions reach the end of the
       published records (AdminClient, every 50 ms): start-up, group join and the
       derived events it appends after them fall outside. CPU per event: utime +
       stime of the process, every thread, over the same window (/proc);
  (c)  the same topology in process without Kafka (processors.runtime.driver.
       TopologyDriver), the very same raw records piped in, a commit every 5,000
       records, timers off: the processor's own work (decode, core, encode,
       RocksDB).

Ratios: b/a (target >= 0.25), b/c (target >= 0.7), b/a', and b/a and b/c again
from CPU per event (steadier on shared cores). Each worker round's timeline is
counted against (c)'s (the derived events piped back afterwards).
(d) end to end: the worker plus `convotrail sink` into SQLite on a fresh copy, from
the worker's first record to the database holding every timeline entry (d/a).
--profile runs (b) once more with py-spy on the worker for the window.

    python -m bench.pipeline_throughput [--conversations 3000] [--rounds 3]
        [--commit-interval 0.1] [--no-e2e] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    bench_settings,
    fresh_topics,
    median,
    rotated,
    save,
)
from bench.kafka_tools import (
    Positions,
    RawRecord,
    bare_consume,
    copy_records,
    count_records,
    end_offsets,
    first_timestamps,
    publish,
    read_records,
)
from bench.processes import Sink, Worker, commit_summary
from bench.profiling import Profiler, print_summary
from bench.sink_tools import TimelineRows
from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from processors.conversation import shell as conversation
from processors.runtime.driver import TopologyDriver
from schemas.codecs import ModelCodec
from schemas.model import ConversationEvent
from schemas.serde import AvroSerde

START = datetime(2026, 11, 1, tzinfo=UTC)
APP = conversation.ConversationOptions().app_id


# -- (c) the processor's own work, in process ---------------------------------------------


def driver_run(topics: Settings, records: list[RawRecord], commit_every: int) -> dict[str, Any]:
    """The topology on the driver; the timeline entries it makes, derived events included
    (piped back after the timed part, as the log would bring them)."""
    topology = conversation.topology(
        topics, conversation.ConversationOptions(timers=False), clients.registry(topics)
    )
    events_topic = topics.topics.conversation_events
    timeline_topic = topics.topics.conversation_timeline
    timeline = 0
    derived: list[Any] = []

    def commit(driver: TopologyDriver[Any]) -> None:
        nonlocal timeline
        driver.commit()
        for out in driver.produced:
            if out.topic == timeline_topic:
                timeline += 1
            elif out.topic == events_topic:
                derived.append(out)
        driver.produced.clear()
        driver.changelog.clear()

    with tempfile.TemporaryDirectory(prefix="convotrail-driver-") as state:
        driver = TopologyDriver(topology, Path(state), partitions=topics.partitions)
        started, cpu = time.perf_counter(), time.process_time()
        for n, record in enumerate(records, 1):
            driver.pipe(events_topic, record.value, record.key, record.headers,
                        record.partition, record.timestamp)  # fmt: skip
            if n % commit_every == 0:
                commit(driver)
        commit(driver)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        timed_timeline, replayed = timeline, list(derived)
        for out in replayed:
            driver.pipe(events_topic, out.value, out.key, list(out.headers), out.partition)
        commit(driver)
        driver.close()
    count = len(records)
    return {"events": count, "seconds": seconds, "events_per_s": count / seconds,
            "cpu_us_per_event": cpu / count * 1e6, "timeline_entries": timed_timeline,
            "derived": len(replayed), "expected_timeline": timeline}  # fmt: skip


# -- (b) the worker process ---------------------------------------------------------------


def worker_window(
    topics: Settings, worker: Worker, ends: dict[int, int], timeout: float = 900
) -> dict[str, Any]:
    """From the worker's first processed record to its positions reaching `ends`."""
    positions = Positions(topics)
    group = f"{topics.topics.prefix}{APP}"
    topic = topics.topics.conversation_events
    ready = worker.wait_ready()
    deadline = time.monotonic() + timeout
    while True:
        worker.cpu.sample()
        if positions.reached(group, topic, ends):
            done = time.time()
            worker.cpu.sample()
            break
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker: positions short of {ends} after {timeout} s")
        time.sleep(0.05)
    stamps = first_timestamps(topics, topics.topics.conversation_timeline)
    first = stamps[0] if stamps else ready
    count = sum(ends.values())
    seconds = done - first
    cpu = worker.cpu.at(done) - worker.cpu.at(first)
    return {"events": count, "seconds": seconds, "events_per_s": count / seconds,
            "cpu_us_per_event": cpu / count * 1e6, "cpu_share": cpu / seconds,
            "ready_to_first_record_s": first - ready, "start_to_ready_s": ready - worker.started,
            **commit_summary(worker)}  # fmt: skip


def worker_run(
    base: Settings, records: list[RawRecord], n: int, work: Path, expected: int | None,
    commit_interval: float, profile: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    topics = fresh_topics(base, f"pipeline-b{n}")
    ends = copy_records(topics, topics.topics.conversation_events, records)
    extra = ("--commit-interval", str(commit_interval))
    worker = Worker(topics, work / f"b{n}", instance_id=f"bench-{n}", extra=extra)
    profiler = None
    try:
        if profile is not None:
            worker.wait_ready()
            profiler = Profiler(worker.pid, profile)
        result = worker_window(topics, worker, ends)
        if profiler is not None:
            result["profile"] = profiler.stop()
        result["timeline_records"] = wait_count(
            topics, topics.topics.conversation_timeline, expected
        )
    finally:
        worker.stop()
    return result


def wait_count(topics: Settings, topic: str, expected: int | None, timeout: float = 30) -> int:
    """Records on `topic` once `expected` are there (or it stops growing)."""
    deadline = time.monotonic() + timeout
    found = -1
    while True:
        previous, found = found, count_records(topics, topic)
        if found == expected or (expected is None and found == previous):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(1.0)


# -- (d) end to end into SQLite -----------------------------------------------------------


def end_to_end(
    base: Settings, records: list[RawRecord], expected: int, work: Path, commit_interval: float
) -> dict[str, Any]:
    topics = fresh_topics(base, "pipeline-e2e")
    ends = copy_records(topics, topics.topics.conversation_events, records)
    path = work / "e2e.db"
    group = f"bench-e2e-{topics.topics.prefix}"
    sink = Sink(topics, work / "e2e-sink", f"sqlite:///{path}", group=group)
    worker = None
    rows = TimelineRows(path)
    extra = ("--commit-interval", str(commit_interval))
    try:
        Positions(topics).wait_stable(group)  # the sink reads before the worker writes
        worker = Worker(topics, work / "e2e-worker", instance_id="bench-e2e", extra=extra)
        worker.wait_ready()
        deadline = time.monotonic() + 900
        count = 0
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.1)
            count = rows.count()
            worker.check()
            sink.check()
        done = time.time()
        stamps = first_timestamps(topics, topics.topics.conversation_timeline)
        events = sum(ends.values())
        seconds = done - stamps[0]
        return {"events": events, "seconds": seconds, "events_per_s": events / seconds,
                "rows": count, "expected_rows": expected}  # fmt: skip
    finally:
        rows.close()
        if worker is not None:
            worker.stop()
        sink.stop()


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commit-every", type=int, default=5000, help="(c): records per commit")
    parser.add_argument(
        "--commit-interval", type=float, default=0.1, help="(b), (d): the worker's, in seconds"
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip (d)")
    parser.add_argument("--profile", action="store_true", help="(b) once more under py-spy")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 300 conversations")
    args = parser.parse_args()
    if args.quick:
        args.conversations = min(args.conversations, 300)

    base, local = bench_settings()
    events = generate(seed=args.seed, conversations=args.conversations, start=START)
    topics = fresh_topics(base, "pipeline")
    count, publish_rate = publish(topics, events)
    topic = topics.topics.conversation_events
    ends = end_offsets(topics, topic)
    assert sum(ends.values()) == count, ends
    records = read_records(topics, topic, ends)
    print(f"{count:,} events of {args.conversations:,} conversations (seed {args.seed}), "
          f"published at {publish_rate:,.0f}/s; {args.rounds} rounds")  # fmt: skip
    serde = AvroSerde(clients.registry(topics))
    codec = ModelCodec(serde, topic, ConversationEvent)

    runs: dict[str, list[dict[str, Any]]] = {"a": [], "a_model": [], "b": [], "c": []}
    expected: int | None = None
    with tempfile.TemporaryDirectory(prefix="convotrail-bench-") as tmp:
        work = Path(tmp)
        for n in range(args.rounds):
            for contestant in rotated(list(runs), n):
                if contestant in ("a", "a_model"):
                    decode = serde.decode if contestant == "a" else codec.decode
                    bare = bare_consume(topics, topic, count, decode)
                    result: dict[str, Any] = {
                        "events_per_s": bare.per_s,
                        "cpu_us_per_event": bare.cpu_us,
                    }
                elif contestant == "b":
                    result = worker_run(base, records, n, work, expected, args.commit_interval)
                else:
                    result = driver_run(topics, records, args.commit_every)
                    expected = int(result["expected_timeline"])
                runs[contestant].append(result)
                print(f"  round {n + 1} {contestant:<8}: {result['events_per_s']:>9,.0f} events/s,"
                      f" {result['cpu_us_per_event']:>6.0f} us CPU/event")  # fmt: skip
        e2e = None
        if not args.no_e2e and expected is not None:
            e2e = end_to_end(base, records, expected, work, args.commit_interval)
        profile = None
        if args.profile:
            RESULTS_DIR.mkdir(exist_ok=True)
            path = RESULTS_DIR / f"worker-profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
            profile = worker_run(
                base, records, args.rounds, work, expected, args.commit_interval, profile=path
            )

    rate = {k: median([r["events_per_s"] for r in v]) for k, v in runs.items()}
    cpu = {k: median([r["cpu_us_per_event"] for r in v]) for k, v in runs.items()}
    ratios = {"b/a": rate["b"] / rate["a"], "b/c": rate["b"] / rate["c"],
              "b/a'": rate["b"] / rate["a_model"],
              # The same ratios from CPU per event: steadier on shared cores, where a
              # contestant may not get a whole core for its window.
              "b/a by CPU": cpu["a"] / cpu["b"], "b/c by CPU": cpu["c"] / cpu["b"]}  # fmt: skip
    labels = {
        "a": "(a) bare consumer + fastavro dicts",
        "a_model": "(a') bare + compiled codec",
        "b": "(b) conversation worker process",
        "c": "(c) TopologyDriver, no Kafka",
    }
    print(f"medians of {args.rounds} rounds:")
    for key, label in labels.items():
        print(f"  {label:<36}: {rate[key]:>9,.0f} events/s, {cpu[key]:>6.0f} us CPU/event")
    if e2e is not None:
        ratios["d/a"] = e2e["events_per_s"] / rate["a"]
        print(f"  {'(d) worker + sink into SQLite':<36}: {e2e['events_per_s']:>9,.0f} events/s "
              f"({e2e['rows']:,} of {e2e['expected_rows']:,} rows)")  # fmt: skip
    for name, value, target in (("b/a", ratios["b/a"], 0.25), ("b/c", ratios["b/c"], 0.7)):
        print(f"  ratio {name:<4}: {value:.3f} (target >= {target})")
    extra = f"; d/a: {ratios['d/a']:.3f}" if e2e is not None else ""
    strict = ratios["b/a'"]
    print(f"  ratio b/a': {strict:.3f}{extra}")
    print(f"  by CPU per event: b/a {ratios['b/a by CPU']:.3f}, b/c {ratios['b/c by CPU']:.3f}")
    # Checked here: in the first round the worker may run before the driver.
    for run in [*runs["b"], *([profile] if profile else [])]:
        run["timeline_matches_driver"] = run["timeline_records"] == expected
    mismatched = [r["timeline_records"] for r in runs["b"] if not r["timeline_matches_driver"]]
    if mismatched:
        print(f"  note: worker timelines {mismatched} differ from the driver's {expected}")
    if profile is not None:
        print(f"profile ({profile['events_per_s']:,.0f} events/s under py-spy):")
        print_summary(profile["profile"])
    saved: dict[str, Any] = {
        "events": count, "conversations": args.conversations, "seed": args.seed,
        "worker_commit_interval_s": args.commit_interval, "rounds": args.rounds,
        "quick": args.quick, "medians": rate, "cpu_us_per_event": cpu, "ratios": ratios,
        "runs": runs, "expected_timeline": expected, "d_end_to_end_sqlite": e2e,
        "profile": profile,
    }  # fmt: skip
    print(f"results: {save('pipeline', saved)}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


if __name__ == "__main__":
    main()
