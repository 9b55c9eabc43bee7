"""Restore: the conversation store with a million conversations' state, from an empty
disk and after a crash, with the real runtime code.

Set-up: fresh topics; the changelog `<prefix>convotrail-conversations-conversation-
memory-changelog` is created as a worker would (preflight.check: 6 partitions,
compacted) and filled directly by an idempotent producer with one record per
conversation: key schemas.keys.conversation(...), value encode_memory(Memory) of a
realistic memory (the traffic generator's conversations evolved by the core, placed
two days ahead so that no timer is due during the run; their encodings are reused
round-robin under distinct keys), on the partition the key's murmur2 gives.

  (0) baseline: a bare confluent-kafka consumer reading the changelog from the
      beginning, consume(10000) as the restorer does, doing nothing with it;
  (i) from an empty disk:
      - in process: processors.runtime.tasks.Tasks + restore.Restorer (the stream
        loop's own objects, a stub in place of the group consumer) bring the six
        store partitions up to date: records/s and CPU us/record, and apart the
        time of Tasks.add (what the loop's on_assign does: open the stores, ask
        each changelog partition's offsets, assign it) and of the restore steps;
      - the real worker (`convotrail worker`, timers on unless --no-timers: the
        store then rebuilds its timer index while restoring): time from process
        start to /readyz 200, and the restore's span (from the first /metrics
        sample, every 50 ms, that shows a task restoring, which is after Tasks.add,
        to ready) with its records/s;
  (ii) after a crash: that worker is SIGKILLed, --suffix more changelog records
      (updates of existing conversations) are appended, and a worker with the same
      state directory starts: time to ready (target under 60 s at 1,000,000) and
      records restored (only the suffix). The dead member's session (10 s) is in
      that time: the group waits for it before it rebalances. (iii) the same after
      a clean stop (SIGTERM: the member leaves the group) for comparison.

    python -m bench.restore [--conversations 1000000] [--suffix 10000] [--no-timers]
        [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from bench.common import bench_settings, fresh_topics, save
from bench.kafka_tools import bare_consume
from bench.processes import Worker, disk_mib, rss_mib
from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from processors.conversation import shell as conversation
from processors.conversation.core import Memory, evolve
from processors.conversation.memory_codec import encode_memory
from processors.runtime import preflight
from processors.runtime.config import RESTORE_GUARANTEES
from processors.runtime.restore import Restorer
from processors.runtime.tasks import Tasks
from processors.runtime.topology import Topology
from schemas import keys


def memories(conversations: int = 3000) -> list[bytes]:
    """Encoded memories of generated conversations whose timers lie days ahead."""
    start = datetime.now(UTC) + timedelta(days=2)
    by_conversation: dict[str, Memory] = {}
    for event in generate(seed=1, conversations=conversations, start=start):
        before = by_conversation.get(event.conversation_id)
        by_conversation[event.conversation_id], _ = evolve(before, event, event.occurred_at)
    return [encode_memory(memory) for memory in by_conversation.values() if memory.state]


def fill(settings: Settings, topic: str, keys_: range, values: list[bytes]) -> float:
    """One record per key, on its murmur2 partition; seconds until all are acknowledged."""
    producer = clients.producer(settings, {"linger.ms": 50, "compression.type": "lz4",
                                           "batch.size": 1_000_000,
                                           "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    started = time.perf_counter()
    for i, value in zip(keys_, itertools.cycle(values), strict=False):
        key = keys.conversation("acct", f"cnv-{i:07d}")
        while True:
            try:
                partition = keys.partition_of(key, settings.partitions)
                producer.produce(topic, key=key, value=value, partition=partition)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(300) == 0
    return time.perf_counter() - started


class _Paused:
    """The group consumer's part in Tasks (pause, resume, seek) with nothing to pause."""

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...


class _NoOutput:
    def send(self, *args: object, **kwargs: object) -> None: ...


def in_process(settings: Settings, topology: Topology[Any], state: Path) -> dict[str, Any]:
    """Tasks + Restorer from an empty directory until every partition is up to date."""
    consumer = clients.consumer(settings, f"{topology.app_id}-restore-bench",
                                guarantees=RESTORE_GUARANTEES)  # fmt: skip
    restorer = Restorer(consumer, topology.app_id)
    tasks = Tasks(topology, _Paused(), restorer, _NoOutput(), state)  # type: ignore[arg-type]
    events = settings.topics.conversation_events
    started, cpu = time.perf_counter(), time.process_time()
    # What the loop's on_assign does: open each store, ask its changelog's offsets, assign.
    tasks.add([TopicPartition(events, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
    added = time.perf_counter()
    while tasks.restoring:
        tasks.step()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stores = [store for task in tasks.all() for store in task.stores.values()]
    restored = sum(store.checkpoint or 0 for store in stores)
    tasks.close()
    restorer.close()
    steps = seconds - (added - started)
    return {"records": restored, "seconds": seconds, "records_per_s": restored / seconds,
            "add_s": added - started, "steps_s": steps, "steps_records_per_s": restored / steps,
            "cpu_us_per_record": cpu / restored * 1e6}  # fmt: skip


def worker_restore(worker: Worker, timeout: float = 1800) -> dict[str, Any]:
    """From process start to /readyz 200; the restore's span from its first progress."""
    began: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        worker.cpu.sample()
        if worker.ready():
            ready = time.time()
            break
        if began is None and worker.metric("convotrail_tasks_restoring") > 0:
            began = time.time()
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready after {timeout} s")
        time.sleep(0.05)
    restored = worker.metric("convotrail_restore_records_total")
    began = began or ready
    span = ready - began
    cpu = worker.cpu.at(ready) - worker.cpu.at(began)
    return {"time_to_ready_s": ready - worker.started, "restore_span_s": span,
            "records_restored": restored,
            "records_per_s": restored / span if span > 0 else float("nan"),
            "cpu_us_per_record": cpu / restored * 1e6 if restored else float("nan"),
            "rss_mib": rss_mib(worker.pid)}  # fmt: skip


def _show(label: str, text: str) -> None:
    print(f"  {label:<36}: {text}")


def _restored(run: dict[str, Any]) -> str:
    return (
        f"ready in {run['time_to_ready_s']:.1f} s; restore {run['restore_span_s']:.1f} s, "
        f"{run['records_restored']:,.0f} records at {run['records_per_s']:,.0f}/s, "
        f"{run['cpu_us_per_record']:.1f} us CPU/record, RSS {run['rss_mib']:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--suffix", type=int, default=10_000)
    parser.add_argument("--timers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 20,000 and 2,000")
    args = parser.parse_args()
    if args.quick:
        args.conversations, args.suffix = min(args.conversations, 20_000), min(args.suffix, 2000)
    n, suffix = args.conversations, args.suffix
    base, local = bench_settings()
    settings = fresh_topics(base, "restore")
    topology = conversation.topology(settings, conversation.ConversationOptions(timers=args.timers))
    preflight.check(settings, topology)
    changelog = topology.changelog(conversation.MEMORY)
    values = memories()
    size = sum(map(len, values)) / len(values)
    timers = "on" if args.timers else "off"
    print(f"{n:,} conversations into {changelog} ({len(values):,} distinct memories, "
          f"{size:,.0f} bytes on average); timers {timers}")  # fmt: skip
    fill_s = fill(settings, changelog, range(n), values)
    print(f"  filled in {fill_s:.1f} s ({n / fill_s:,.0f} records/s)")
    result: dict[str, Any] = {
        "conversations": n, "suffix": suffix, "timers": args.timers, "quick": args.quick,
        "value_bytes_mean": size, "fill_s": fill_s,
    }  # fmt: skip
    bare = bare_consume(settings, changelog, n, lambda _value: None, batch=10_000)
    result["bare"] = {"records_per_s": bare.per_s, "cpu_us_per_record": bare.cpu_us}
    _show("(0) bare consumer, whole changelog", f"{bare.per_s:,.0f} records/s, "
          f"{bare.cpu_us:.1f} us CPU/record")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="convotrail-restore-") as tmp:
        work = Path(tmp)
        inproc = result["in_process"] = in_process(settings, topology, work / "in-process")
        rate, cpu, took = inproc["records_per_s"], inproc["cpu_us_per_record"], inproc["seconds"]
        _show("(i) Tasks + Restorer, in process",
              f"{rate:,.0f} records/s, {cpu:.1f} us CPU/record, {took:.1f} s")  # fmt: skip
        _show("    of which Tasks.add (open, offsets)", f"{inproc['add_s']:.2f} s; the steps "
              f"{inproc['steps_records_per_s']:,.0f} records/s")  # fmt: skip
        home = work / "worker"
        worker = Worker(settings, home, instance_id="bench-restore", timers=args.timers)
        try:
            cold = result["worker_empty_disk"] = worker_restore(worker)
            result["state_dir_mib"] = disk_mib(home / "state")
            _show("(i) worker, empty disk", _restored(cold))
            _show("    its store on disk", f"{result['state_dir_mib']:,.0f} MiB")
            for label in ("(ii) worker after SIGKILL", "(iii) worker after SIGTERM"):
                if "KILL" in label:
                    worker.kill()  # a crash: no commit, no leaving the group
                else:
                    worker.stop()  # a clean stop: commit, leave the group
                fill(settings, changelog, range(suffix), values[1:] + values[:1])
                worker = Worker(settings, home, instance_id="bench-restore", timers=args.timers)
                again = worker_restore(worker)
                key = "worker_after_crash" if "KILL" in label else "worker_after_clean_stop"
                result[key] = again
                _show(label, _restored(again) + " (target: ready < 60 s)")
        finally:
            worker.stop()
    result["ratios"] = {
        "in_process/bare": inproc["records_per_s"] / bare.per_s,
        "worker_empty_disk/bare": cold["records_per_s"] / bare.per_s,
    }
    for name, value in result["ratios"].items():
        print(f"  ratio {name:<23}: {value:.3f}")
    print(f"results: {save('restore', result)}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


if __name__ == "__main__":
    main()
