"""Pipeline throughput: the conversation processor and the SQL sink against bare ceilings.

One run, one set of realistic events (connectors.traffic, fixed seed), published
once with EventPublisher to a fresh conversation-events topic, then read by:

  (a) a bare confluent-kafka Consumer that polls and decodes (ModelCodec.decode):
      the ceiling;
  (b) a faust agent that decodes and does nothing else, with the worker's own
      faust settings (processors.conversation.worker.app_settings): faust's
      ceiling, event by event (stream.events()) and in the worker's take_events
      batches;
  (c) the real processor (processors.conversation.worker.create_app): decode,
      evolve, table write, outputs, with its own delivery guarantee (at least once,
      outputs acknowledged before the table write; --exactly-once adds faust's
      transactional mode for comparison);
  (d) end to end: the processor plus the SQL sink (connectors.sink.runner.run_sink)
      into SQLite and into PostgreSQL, until the database holds every row. The
      sink needs empty output topics, so (d) publishes the same events to fresh
      topics of its own.

Plus the sink alone, on the timeline and state records (c) produced, against a
bare consumer decoding the same records. Faust runs in a child process (this
module with --child) that counts events with a faust Sensor: its time runs from
the first event the agent sees to the last input event it finishes, so start-up
and group join are excluded. The sink's time runs from its first record to its
last committed batch; (d) runs from the processor's first event to the sink's
last batch. Each faust run also reports the worker's CPU time per event (every
thread), steadier than events/s on two shared cores. --profile runs the
processor once more with py-spy attached for the measured window only and
prints where the busiest thread's time goes (raw collapsed stacks, which
speedscope and flamegraph.pl read, in bench/results/).

    python -m bench.pipeline_throughput [--conversations 2500] [--exactly-once]
        [--no-postgres] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from faust.sensors import Sensor

from bench.common import RESULTS_DIR, bench_settings, fresh_topics, save
from connectors.publisher import EventPublisher
from connectors.sink.runner import run_sink
from connectors.sink.store import conversation_states, timeline_entries
from connectors.traffic import generate
from convotrail.settings import Settings
from processors.conversation.core import Memory, evolve
from processors.conversation.memory_codec import decode_memory, encode_memory
from processors.conversation.worker import (
    BATCH_SIZE,
    BATCH_WITHIN,
    WorkerOptions,
    app_settings,
    create_app,
    install_logging_fix,
)
from schemas.codecs import ModelCodec
from schemas.model import ConversationEvent, ConversationState, TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde

START = datetime(2026, 11, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
SINK_LOGGER = "connectors.sink.runner"


# -- the expected outcome, from the pure core ------------------------------------------


@dataclass
class Expected:
    timeline: int = 0
    states: int = 0
    version_sum: int = 0
    derived: int = 0


def simulate(events: list[ConversationEvent]) -> tuple[Expected, dict[str, float]]:
    """What the processor must produce, replayed in process (derived events last, as
    on the log: they are appended after every published event). Also times evolve
    per event and the memory codec on each conversation's final memory."""
    memory: dict[str, Memory] = {}
    expected = Expected()
    queue: deque[ConversationEvent] = deque(events)
    now = datetime.now(UTC)
    started = time.perf_counter()
    while queue:
        event = queue.popleft()
        after, outputs = evolve(memory.get(event.conversation_id), event, now)
        memory[event.conversation_id] = after
        expected.timeline += len(outputs.timeline)
        expected.derived += len(outputs.derived)
        queue.extend(outputs.derived)
    evolve_s = time.perf_counter() - started
    states = [m.state for m in memory.values() if m.state is not None]
    expected.states = len(states)
    expected.version_sum = sum(state.version for state in states)
    stored = [encode_memory(m) for m in memory.values()]
    started = time.perf_counter()
    for data in stored:
        decode_memory(data)
    decode_memory_s = (time.perf_counter() - started) / len(stored)
    started = time.perf_counter()
    for m in memory.values():
        encode_memory(m)
    encode_memory_s = (time.perf_counter() - started) / len(memory)
    per_event = {
        "evolve_us": evolve_s / (len(events) + expected.derived) * 1e6,
        "memory_decode_us_final_size": decode_memory_s * 1e6,
        "memory_encode_us_final_size": encode_memory_s * 1e6,
    }
    return expected, per_event


# -- publishing and the bare consumer -------------------------------------------------


def publish(topics: Settings, events: list[ConversationEvent]) -> tuple[dict[int, int], float]:
    """Publish every event; the end offset of each partition and the publish rate."""
    now = max(event.occurred_at for event in events)
    started = time.perf_counter()
    with EventPublisher(topics, clock=lambda: now) as publisher:
        for event in events:
            publisher.publish(event)
        assert publisher.flush(60) == 0
    rate = len(events) / (time.perf_counter() - started)
    return end_offsets(topics, topics.topics.conversation_events), rate


def end_offsets(topics: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(topics.kafka_config({"group.id": f"bench-offsets-{uuid.uuid4()}"}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(topics.partitions)
        }
    finally:
        consumer.close()


def count_records(topics: Settings, topic: str) -> int:
    """Committed records on `topic` now (offsets also count transaction markers)."""
    consumer = Consumer(
        topics.kafka_config(
            {
                "group.id": f"bench-count-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
    found = 0
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < topics.partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                error = message.error()
                if error is None:
                    found += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                else:
                    raise RuntimeError(f"counting {topic}: {error}")
    finally:
        consumer.close()
    return found


def bare_consume(
    topics: Settings, decoders: dict[str, Callable[[bytes | None], Any]], count: int
) -> float:
    """Records/s of a bare consumer polling and decoding `count` records of the topics."""
    consumer = Consumer(
        topics.kafka_config(
            {
                "group.id": f"bench-bare-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    consumer.assign(
        [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in decoders
            for p in range(topics.partitions)
        ]
    )
    seen = 0
    first = 0.0
    deadline = time.monotonic() + 120
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare consumer: {seen} of {count} records in 120 s")
            messages = consumer.consume(num_messages=min(1000, count - seen), timeout=1.0)
            if messages and not first:
                first = time.perf_counter()
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"bare consumer: {message.error()}")
                decoders[message.topic() or ""](message.value())
                seen += 1
        return seen / (time.perf_counter() - first)
    finally:
        consumer.close()


# -- faust, in a child process --------------------------------------------------------


@dataclass
class ChildSpec:
    kind: str  # "noop" (decode only) or "processor" (create_app)
    app_id: str
    data_dir: str
    result: str
    inputs: dict[int, int]  # partition -> end offset of the published events
    present: int  # records on the topic at launch (earlier runs' derived events too)
    exactly_once: bool = False


@dataclass
class ChildResult:
    pid: int
    first_in: float = 0.0  # wall clock: the agent's first event
    inputs_done: float = 0.0  # the last published event finished
    all_done: float = 0.0  # and every derived event it sent to itself
    processed: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    cpu_first: float = 0.0  # the worker's CPU seconds (every thread) at first_in
    cpu_done: float = 0.0  # and at inputs_done


class Progress(Sensor):  # type: ignore[misc]
    """Counts the agent's finished events; writes ChildResult when milestones pass."""

    def __init__(self, spec: ChildSpec, topic: str) -> None:
        super().__init__()
        self.spec = spec
        self.topic = topic
        self.wanted = sum(spec.inputs.values())
        self.inputs_seen = 0
        self.sent: Counter[str] = Counter()
        self.result = ChildResult(pid=os.getpid())
        self.write()

    def write(self) -> None:
        self.result.sent = dict(self.sent)
        path = Path(self.spec.result)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.result)))
        temporary.replace(path)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        if not self.result.first_in and tp.topic == self.topic:
            self.result.first_in = time.time()
            self.result.cpu_first = time.process_time()
            self.write()

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> None:
        self.sent[topic] += 1

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        if tp.topic != self.topic:
            return
        self.result.processed += 1
        if offset < self.spec.inputs[tp.partition]:
            self.inputs_seen += 1
            if self.inputs_seen == self.wanted:
                self.result.inputs_done = time.time()
                self.result.cpu_done = time.process_time()
                self.write()
        if (
            self.result.inputs_done
            and not self.result.all_done
            and self.result.processed == self.spec.present + self.sent[self.topic]
        ):
            self.result.all_done = time.time()
            self.write()


def noop_app(settings: Settings, options: WorkerOptions, *, batched: bool = False) -> faust.App:
    """The framework's ceiling: the worker's faust settings, an agent that only decodes,
    event by event (stream.events()) or, batched, in the worker's take_events batches."""
    topics = settings.topics
    app = faust.App(f"{topics.prefix}{options.app_id}", **app_settings(settings, options))
    install_logging_fix(app)
    events_topic = app.topic(
        topics.conversation_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    codec = ModelCodec(
        AvroSerde(Registry(settings.registry_url)), topics.conversation_events, ConversationEvent
    )

    @app.agent(events_topic)
    async def decode_only(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        if batched:
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):  # type: ignore[attr-defined]
                for event in events:
                    codec.decode(event.value)
                yield None
        else:
            async for event in stream.events():
                codec.decode(event.value)
                yield None

    return app


def child_main(spec_path: str) -> None:
    raw = json.loads(Path(spec_path).read_text())
    raw["inputs"] = {int(p): o for p, o in raw["inputs"].items()}
    spec = ChildSpec(**raw)
    settings = Settings.from_env()
    # Timers off: the generated history lies in the past, so every chat's timer would
    # fire at once and the run would measure a burst of derived events (the timer
    # benchmark, bench/timer_lateness.py, measures timers).
    options = WorkerOptions(
        app_id=spec.app_id, data_dir=spec.data_dir, exactly_once=spec.exactly_once, timers=False
    )
    makers: dict[str, Callable[[Settings, WorkerOptions], faust.App]] = {
        "processor": create_app,
        "noop": noop_app,
        "noop-batched": lambda s, o: noop_app(s, o, batched=True),
    }
    make = makers[spec.kind]
    app = make(settings, options)
    app.sensors.add(Progress(spec, settings.topics.conversation_events))
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


class Child:
    """A faust worker (noop or processor) in its own process, optionally under py-spy."""

    def __init__(
        self,
        topics: Settings,
        kind: str,
        inputs: dict[int, int],
        workdir: Path,
        *,
        exactly_once: bool = False,
    ) -> None:
        label = f"{kind}-{'eos' if exactly_once else 'alo'}-{uuid.uuid4().hex[:6]}"
        self.dir = workdir / label
        self.dir.mkdir(parents=True)
        self.result_path = self.dir / "result.json"
        spec = ChildSpec(
            kind=kind,
            app_id=f"bench-{label}",
            data_dir=str(self.dir / "data"),
            result=str(self.result_path),
            inputs=inputs,
            present=count_records(topics, topics.topics.conversation_events),
            exactly_once=exactly_once,
        )
        spec_path = self.dir / "spec.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        env = dict(os.environ)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=topics.bootstrap_servers,
            SCHEMA_REGISTRY_URL=topics.registry_url,
            CONVOTRAIL_TOPIC_PREFIX=topics.topics.prefix,
            CONVOTRAIL_PARTITIONS=str(topics.partitions),
            CONVOTRAIL_HOME=str(self.dir / "home"),
        )
        command = [sys.executable, "-m", "bench.pipeline_throughput", "--child", str(spec_path)]
        self.log = (self.dir / "worker.log").open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def profile(self, output: Path) -> subprocess.Popen[bytes]:
        """py-spy attached to the worker (every thread, idle time included) until interrupted."""
        pid = self.wait_for("first_in", timeout=120).pid
        py_spy = str(Path(sys.executable).parent / "py-spy")
        command = [py_spy, "record", "--pid", str(pid), "--idle", "--threads", "--rate", "250",
                   "--format", "raw", "-o", str(output)]  # fmt: skip
        log = (self.dir / "py-spy.log").open("wb")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def result(self) -> ChildResult | None:
        try:
            return ChildResult(**json.loads(self.result_path.read_text()))
        except FileNotFoundError:
            return None

    def wait_for(self, milestone: str, timeout: float = 300) -> ChildResult:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.result()
            if result is not None and getattr(result, milestone):
                return result
            if self.process.poll() is not None:
                self.log.close()
                tail = (self.dir / "worker.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"faust child exited early:\n{tail}")
            time.sleep(0.2)
        raise RuntimeError(f"faust child: no {milestone} in {timeout} s; log: {self.dir}")

    def stop(self) -> None:
        result = self.result()
        pid = result.pid if result is not None else self.process.pid
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            try:
                self.process.wait(timeout=45)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            self.process.kill()
            self.process.wait()
        self.log.close()


# -- the sink ---------------------------------------------------------------------------


class SinkClock(logging.Handler):
    """Wall-clock times of the sink's first batch start and of its last committed batch,
    read from its debug log lines (the sink has no other hook)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.first_record = 0.0
        self.last_write = 0.0
        self.batches = 0

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.msg, str):
            return
        if record.msg.endswith("starts a batch") and not self.first_record:
            self.first_record = record.created
        elif record.msg.startswith("batch of %d records written"):
            self.last_write = record.created
            self.batches += 1

    def __enter__(self) -> SinkClock:
        logger = logging.getLogger(SINK_LOGGER)
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logger = logging.getLogger(SINK_LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self._level)
        if not (self.first_record and self.last_write):
            raise RuntimeError("the sink's batch log lines were not seen: did they change?")


def database_counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        timeline = connection.execute(
            sa.select(sa.func.count()).select_from(timeline_entries)
        ).scalar_one()
        states, versions = connection.execute(
            sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(conversation_states.c.version), 0)
            )
        ).one()
    return int(timeline), int(states), int(versions)


def sink_alone(topics: Settings, url: str) -> dict[str, Any]:
    """The sink over the records the processor already produced, from first record to last batch."""
    with SinkClock() as clock:
        stats = run_sink(topics, url, group_id=f"bench-sink-{uuid.uuid4()}", max_idle_seconds=2.0)
    seconds = clock.last_write - clock.first_record
    engine = sa.create_engine(url)
    try:
        counts = database_counts(engine)
    finally:
        engine.dispose()
    return {
        "records": stats.records,
        "seconds": seconds,
        "records_per_s": stats.records / seconds,
        "batches": stats.batches,
        "rows": counts,
    }


def end_to_end(
    base: Settings,
    events: list[ConversationEvent],
    url: str,
    expected: tuple[int, int, int],
    workdir: Path,
) -> dict[str, Any]:
    """Processor + sink on fresh topics, from the processor's first event to the sink's
    batch that completes the database."""
    topics = fresh_topics(base, "e2e")
    inputs, _ = publish(topics, events)
    child = Child(topics, "processor", inputs, workdir)
    stop = threading.Event()
    failure: list[BaseException] = []

    def sink() -> None:
        try:
            run_sink(topics, url, group_id=f"bench-e2e-{uuid.uuid4()}", stop=stop)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    engine = sa.create_engine(url)
    thread = threading.Thread(target=sink, name="bench-sink")
    try:
        with SinkClock() as clock:
            thread.start()
            deadline = time.monotonic() + 600
            counts = (0, 0, 0)
            while counts != expected:
                if failure:
                    raise RuntimeError("the sink failed") from failure[0]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"end to end: {counts} rows, expected {expected}")
                if child.process.poll() is not None:
                    raise RuntimeError(f"processor exited early; log: {child.dir}")
                time.sleep(0.25)
                counts = database_counts(engine)
            stop.set()
            thread.join()
        result = child.wait_for("inputs_done", timeout=10)
    finally:
        stop.set()
        child.stop()
        engine.dispose()
    seconds = clock.last_write - result.first_in
    return {
        "events": len(events),
        "seconds": seconds,
        "events_per_s": len(events) / seconds,
        "processor_seconds": result.inputs_done - result.first_in,
        "rows": counts,
    }


# -- profile summary ----------------------------------------------------------------------


IDLE_FRAMES = ("EpollSelector.select (selectors.py)", "_shutdown (threading.py)")


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Where the busiest thread's time goes, from py-spy's collapsed stacks (--threads):
    its share of idle samples, the frames that use its samples themselves (self) and
    the frames under which they are used (inclusive)."""
    by_thread: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        by_thread.setdefault(thread, []).append(([_frame(f) for f in frames], int(count_text)))

    def busy(stacks: list[tuple[list[str], int]]) -> int:
        return sum(n for frames, n in stacks if frames and frames[-1] not in IDLE_FRAMES)

    threads = {
        thread: {"samples": sum(n for _, n in stacks), "busy": busy(stacks)}
        for thread, stacks in by_thread.items()
    }
    busiest = max(by_thread, key=lambda thread: threads[thread]["busy"])
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in by_thread[busiest]:
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {
        "threads": threads,
        "busiest_thread": busiest,
        "busy_share": threads[busiest]["busy"] / total,
        "self": [(frame, n / total) for frame, n in own.most_common(top)],
        "inclusive": [(frame, n / total) for frame, n in inclusive.most_common(top * 3)],
    }


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({module})" if module else name


# -- main --------------------------------------------------------------------------------


def faust_run(
    topics: Settings,
    kind: str,
    inputs: dict[int, int],
    workdir: Path,
    *,
    exactly_once: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    child = Child(topics, kind, inputs, workdir, exactly_once=exactly_once)
    try:
        if profile is not None:
            # Attached once the first event is in, interrupted when the last is done:
            # the profile covers the measured window only, not start-up or shutdown.
            py_spy = child.profile(profile)
            child.wait_for("inputs_done")
            py_spy.send_signal(signal.SIGINT)
            py_spy.wait(timeout=60)
        result = child.wait_for("all_done")
        if kind == "processor":
            # Let the last transaction commit (commit interval 2.8 s) before the sink reads.
            time.sleep(4.0)
    finally:
        child.stop()
    count = sum(inputs.values())
    seconds = result.inputs_done - result.first_in
    return {
        "events": count,
        "seconds": seconds,
        "events_per_s": count / seconds,
        "derived_processed": result.processed - count,
        "worker_cpu_us_per_event": (result.cpu_done - result.cpu_first) / count * 1e6,
        "worker_cpu_share": (result.cpu_done - result.cpu_first) / seconds,
        "sent": result.sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bare-runs", type=int, default=3)
    parser.add_argument(
        "--exactly-once",
        action="store_true",
        help="also run (b) and (c) with faust's processing_guarantee=exactly_once",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the processor once more with py-spy attached (bench/results/)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    settings, local = bench_settings()
    events = generate(seed=args.seed, conversations=args.conversations, start=START)
    count = len(events)
    simulated, per_event = simulate(events)
    print(
        f"{count} events from {args.conversations} conversations (seed {args.seed}); "
        f"the processor must derive {simulated.derived} more"
    )
    topics = fresh_topics(settings, "pipeline")
    inputs, publish_rate = publish(topics, events)
    assert sum(inputs.values()) == count, inputs
    names = topics.topics
    serde = AvroSerde(Registry(topics.registry_url))
    event_codec = ModelCodec(serde, names.conversation_events, ConversationEvent)
    timeline_codec = ModelCodec(serde, names.conversation_timeline, TimelineEntry)
    state_codec = ModelCodec(serde, names.conversation_state, ConversationState)
    print(f"published at {publish_rate:,.0f} events/s")

    results: dict[str, Any] = {
        "events": count,
        "conversations": args.conversations,
        "seed": args.seed,
        "expected": asdict(simulated),
        "in_process_per_event": per_event,
    }
    bare_runs = [
        bare_consume(topics, {names.conversation_events: event_codec.decode}, count)
        for _ in range(args.bare_runs)
    ]
    bare = statistics.median(bare_runs)
    results["a_bare"] = {"events_per_s": bare, "runs": bare_runs}
    runs = ", ".join(f"{rate:,.0f}" for rate in bare_runs)
    print(f"{'(a) bare consumer + decode':<34}: {bare:>8,.0f} events/s (runs {runs})")

    values = [m for m in _raw_values(topics, names.conversation_events, count)]
    started = time.perf_counter()
    for value in values:
        event_codec.decode(value)
    results["in_process_per_event"]["decode_us"] = (time.perf_counter() - started) / count * 1e6

    pg = None
    with tempfile.TemporaryDirectory(prefix="convotrail-bench-") as tmp:
        workdir = Path(tmp)
        noop = faust_run(topics, "noop", inputs, workdir)
        results["b_faust_noop"] = noop
        _print_faust("(b) faust agent, decode only", noop)
        noop_batched = faust_run(topics, "noop-batched", inputs, workdir)
        results["b_faust_noop_batched"] = noop_batched
        _print_faust("    the same, take_events batches", noop_batched)
        processor = faust_run(topics, "processor", inputs, workdir)
        results["c_processor"] = processor
        _print_faust("(c) processor", processor)

        sqlite_url = f"sqlite:///{workdir / 'sink-alone.db'}"
        alone = sink_alone(topics, sqlite_url)
        records = alone["records"]
        rows = tuple(alone["rows"])
        results["sink_alone_sqlite"] = alone
        results["expected_rows"] = rows
        sim_rows = (simulated.timeline, simulated.states, simulated.version_sum)
        if rows != sim_rows:
            print(f"  note: the processor's rows {rows} differ from the pure core's {sim_rows}")
        bare_outputs_runs = [
            bare_consume(
                topics,
                {
                    names.conversation_timeline: timeline_codec.decode,
                    names.conversation_state: state_codec.decode,
                },
                records,
            )
            for _ in range(args.bare_runs)
        ]
        bare_outputs = statistics.median(bare_outputs_runs)
        results["a_bare_outputs"] = {"records_per_s": bare_outputs, "runs": bare_outputs_runs}
        label = "    bare consumer, timeline+state"
        print(f"{label:<34}: {bare_outputs:>8,.0f} records/s ({records} records)")
        print(f"{'    sink alone, SQLite':<34}: {alone['records_per_s']:>8,.0f} records/s")
        if not args.no_postgres:
            from tests.support.ports import free_ports
            from tests.support.postgres import start_postgres

            pg = start_postgres(free_ports(1)[0])
        try:
            if pg is not None:
                _create_databases(pg.url(), ["sink_alone", "e2e"])
                alone_pg = sink_alone(topics, pg.url("sink_alone"))
                results["sink_alone_postgres"] = alone_pg
                rate = alone_pg["records_per_s"]
                print(f"{'    sink alone, PostgreSQL':<34}: {rate:>8,.0f} records/s")
            e2e = end_to_end(settings, events, f"sqlite:///{workdir / 'e2e.db'}", rows, workdir)
            results["d_end_to_end_sqlite"] = e2e
            print(f"{'(d) end to end, SQLite':<34}: {e2e['events_per_s']:>8,.0f} events/s")
            if pg is not None:
                e2e_pg = end_to_end(settings, events, pg.url("e2e"), rows, workdir)
                results["d_end_to_end_postgres"] = e2e_pg
                rate = e2e_pg["events_per_s"]
                print(f"{'(d) end to end, PostgreSQL':<34}: {rate:>8,.0f} events/s")
        finally:
            if pg is not None:
                pg.stop()

        if args.exactly_once:
            for kind, key, label in (
                ("noop", "b_faust_noop_eos", "(b) faust agent, exactly_once"),
                ("processor", "c_processor_eos", "(c) processor, exactly_once"),
            ):
                run = faust_run(topics, kind, inputs, workdir, exactly_once=True)
                results[key] = run
                _print_faust(label, run)

        if args.profile:
            RESULTS_DIR.mkdir(exist_ok=True)
            path = RESULTS_DIR / f"worker-profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
            run = faust_run(topics, "processor", inputs, workdir, profile=path)
            results["profile"] = {
                "path": str(path),
                "events_per_s_under_py_spy": run["events_per_s"],
                **summarise_profile(path),
            }
            print(f"profile ({run['events_per_s']:,.0f} events/s under py-spy): {path}")
            print(f"    busiest thread busy {results['profile']['busy_share']:.0%}")
            for frame, share in results["profile"]["self"][:15]:
                print(f"    self {share:6.1%}  {frame}")

    c = results["c_processor"]["events_per_s"]
    b = results["b_faust_noop"]["events_per_s"]
    ratios = {
        "c/a": c / bare,
        "c/b": c / b,
        "c/b (b in take_events batches)": c / results["b_faust_noop_batched"]["events_per_s"],
        "b/a": b / bare,
        "sink_alone_sqlite/bare_outputs": alone["records_per_s"] / bare_outputs,
    }
    if "sink_alone_postgres" in results:
        ratios["sink_alone_postgres/bare_outputs"] = (
            results["sink_alone_postgres"]["records_per_s"] / bare_outputs
        )
    for key in ("d_end_to_end_sqlite", "d_end_to_end_postgres"):
        if key in results:
            ratios[f"{key.removeprefix('d_end_to_end_')} d/a"] = results[key]["events_per_s"] / bare
    results["ratios"] = ratios
    for name, value in ratios.items():
        print(f"    {name:<30}: {value:.3f}")
    print(f"results: {save('pipeline', results)}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


def _print_faust(label: str, run: dict[str, Any]) -> None:
    print(
        f"{label:<34}: {run['events_per_s']:>8,.0f} events/s, "
        f"{run['worker_cpu_us_per_event']:,.0f} us CPU/event"
    )


def _raw_values(topics: Settings, topic: str, count: int) -> list[bytes | None]:
    consumer = Consumer(
        topics.kafka_config({"group.id": f"bench-raw-{uuid.uuid4()}", "enable.auto.commit": False})
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(topics.partitions)])
    values: list[bytes | None] = []
    try:
        while len(values) < count:
            values.extend(m.value() for m in consumer.consume(1000, timeout=1.0) if not m.error())
    finally:
        consumer.close()
    return values


def _create_databases(url: str, names: list[str]) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
