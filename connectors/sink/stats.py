"""What one `run_sink` call did, as counted by the sink (its summary line and tests)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SinkStats:
    """Counters of one `run_sink` call (records, not rows: duplicates count once each)."""

    records: int = 0
    timeline_entries: int = 0
    states: int = 0
    tombstones: int = 0
    receipts: int = 0
    statuses: int = 0
    dead_lettered: int = 0
    refused: int = 0  # by the database (also in dead_lettered)
    batches: int = 0
    discarded: int = 0  # consumed, then dropped because their partitions were lost
    retries: int = 0  # database writes retried after an outage
    dlq_by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.timeline_entries + self.states + self.tombstones + self.receipts + self.statuses

    def describe(self) -> str:
        return (
            f"{self.records} records in {self.batches} batches: {self.timeline_entries} "
            f"timeline entries, {self.states} states, {self.tombstones} tombstones, "
            f"{self.receipts} read receipts, {self.statuses} delivery statuses, "
            f"{self.dead_lettered} dead-lettered ({self.refused} refused by the database)"
        )
