"""The runtime's options and the client settings its guarantees rest on.

Defaults can be overridden through KAFKA_<NAME> variables (convotrail/clients.py);
the guarantees cannot: they are what exactly-once means here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from convotrail.settings import KafkaValue

CONSUMER_GUARANTEES: dict[str, KafkaValue] = {
    # Never read what an aborted transaction wrote (ours or an upstream processor's).
    "isolation.level": "read_committed",
    # Positions are committed only inside transactions (send_offsets_to_transaction).
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}
CONSUMER_DEFAULTS: dict[str, KafkaValue] = {
    # A dead worker's partitions move after 10 s (librdkafka's default is 45 s).
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 2_000,
    # Idle fetches return within 100 ms, which bounds the wait for a commit marker.
    "fetch.wait.max.ms": 100,
}
PRODUCER_DEFAULTS: dict[str, KafkaValue] = {
    "linger.ms": 5,
    "compression.type": "lz4",
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 500_000,
    # A transaction of a dead instance blocks read_committed readers until then.
    "transaction.timeout.ms": 30_000,
}
RESTORE_GUARANTEES: dict[str, KafkaValue] = {
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # A caught-up changelog answers a fetch only after this wait, and the offset
    # queries of the next partition queue behind it (bench/restore.py: 0.5 s each).
    "fetch.wait.max.ms": 10,
}


@dataclass(frozen=True)
class RuntimeOptions:
    instance_id: str
    state_dir: Path
    commit_interval: float = 0.1  # seconds
    # The same, for a transaction that wrote to an input topic (derived events, fired
    # timers): until it commits, later records of that partition are invisible.
    input_commit_interval: float = 0.02
    commit_records: int = 5_000
    max_batch: int = 1_000
    # consume() waits its whole timeout unless the batch fills, so a short one, and
    # never past the open transaction's commit deadline.
    poll_timeout: float = 0.02
    tick: float = 0.1  # how often scheduled entries (timers) are looked at
    # How long a crashed instance keeps its partitions. librdkafka heartbeats from its
    # own thread, so a slow batch never counts against it (max.poll.interval.ms does);
    # 6 s is the broker's minimum by default and what the sink uses.
    session_timeout_ms: int = 6_000
    lag_interval: float = 2.0
    # Seconds between full garbage collections, run when the loop is idle.
    full_gc_interval: float = 300.0
