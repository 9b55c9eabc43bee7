"""The sink's pure core: what one database transaction must write for a run of records.

Records are added in the order they were consumed; the batch keeps
- the timeline entries, first occurrence of each (account, event_id) only (the
  store ignores one it already has, so "first wins" holds across batches too);
- one `StateWrite` per (account, conversation): the highest snapshot version seen since the
  last tombstone, and whether a tombstone asks to delete the stored row first;
- the next offset to read per (topic, partition), which the store writes in the
  same transaction, so data and positions can never disagree.

It must never do I/O, read a clock or know about Kafka clients or SQL: the shell
(runner.py) feeds it decoded records and the store (store.py) writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas import keys
from schemas.model import (
    ConversationState,
    DeliveryState,
    DeliveryStatus,
    ReadReceipt,
    TimelineEntry,
)

TopicPartition = tuple[str, int]
Source = tuple[str, int, int]  # topic, partition, offset of one consumed record


@dataclass(frozen=True, slots=True)
class StateWrite:
    """What to do with one conversation's row in conversation_states.

    `delete_first`: a tombstone arrived, so the stored row goes (whatever its
    version); then `state`, if any, is upserted only if newer than what is stored.
    `account_id` None: a tombstone keyed the way versions before account scoping
    keyed conversation-state (bare conversation_id), which deletes that
    conversation_id in every account, as it did then.
    """

    account_id: str | None
    conversation_id: str
    delete_first: bool = False
    state: ConversationState | None = None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on the compacted conversation-state topic: the conversation is gone."""

    account_id: str | None  # None: keyed the old way, by conversation_id alone
    conversation_id: str

    @classmethod
    def of_key(cls, key: str) -> Tombstone:
        """From the record key: `account|conversation` (schemas/keys.py), or legacy."""
        account, separator, conversation = key.partition(keys.SEPARATOR)
        return cls(account, conversation) if separator else cls(None, key)


StateChange = ConversationState | Tombstone
# One consumed record as the batch keeps it, so that it can be written again alone.
Change = TimelineEntry | ConversationState | Tombstone | ReadReceipt | DeliveryStatus


def fold_state(current: StateWrite | None, change: StateChange) -> StateWrite:
    """One conversation's pending write after one more snapshot or tombstone.

    Equal versions keep the earlier snapshot, like the store's strict `>` guard:
    a replayed snapshot never overwrites the one already applied.
    """
    if isinstance(change, Tombstone):
        return StateWrite(change.account_id, change.conversation_id, delete_first=True)
    if current is None:
        return StateWrite(change.account_id, change.conversation_id, state=change)
    if current.state is not None and current.state.version >= change.version:
        return current
    return StateWrite(change.account_id, change.conversation_id, current.delete_first, change)


def coalesce_states(changes: Iterable[StateChange]) -> list[StateWrite]:
    """One `StateWrite` per conversation, in the order conversations first appeared.

    PostgreSQL refuses an INSERT ... ON CONFLICT DO UPDATE that touches one row
    twice, and writing only the newest snapshot is also less work.
    """
    writes: dict[tuple[str | None, str], StateWrite] = {}
    for change in changes:
        fold_into(writes, change)
    return list(writes.values())


def fold_into(writes: dict[tuple[str | None, str], StateWrite], change: StateChange) -> None:
    """Fold one change into the pending writes, keyed by (account, conversation).

    A tombstone keyed the old way (account None) deletes the conversation in every
    account, before any upsert of the batch: the snapshots it follows go with it.
    """
    if isinstance(change, Tombstone) and change.account_id is None:
        for key in [k for k in writes if k[1] == change.conversation_id and k[0] is not None]:
            del writes[key]
    key = (change.account_id, change.conversation_id)
    writes[key] = fold_state(writes.get(key), change)


# Delivery states by how far they got; the store applies the same order in SQL.
STATE_RANK = {
    DeliveryState.SENT: 0,
    DeliveryState.DELIVERED: 1,
    DeliveryState.FAILED: 1,
    DeliveryState.BOUNCED: 1,
    DeliveryState.COMPLAINED: 2,
}


def receipt_progress(receipt: ReadReceipt) -> int:
    """Views only add up (processors/receipts/core.py): more views is newer."""
    return receipt.view_count + receipt.automated_view_count


def status_progress(status: DeliveryStatus) -> tuple[int, int]:
    return STATE_RANK[status.state], int(status.updated_at.timestamp() * 1000)


class SinkBatch:
    """Records consumed since the last commit, for one consumer group."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._timeline: dict[tuple[str, str], TimelineEntry] = {}
        self._states: dict[tuple[str | None, str], StateWrite] = {}
        self._next_offsets: dict[TopicPartition, int] = {}
        self._receipts: dict[tuple[str, str, str, str], ReadReceipt] = {}
        self._statuses: dict[tuple[str, str, str], DeliveryStatus] = {}
        self.records = 0
        self.timeline_records = 0
        self.state_records = 0
        self.tombstones = 0
        self.receipt_records = 0
        self.status_records = 0
        self.skipped = 0
        # Every stored change in consumption order: when the database refuses the
        # batch, each record is tried alone (`singles`) and the rest rebuilt (`without`).
        self._log: list[tuple[Source, Change]] = []

    def __len__(self) -> int:
        return self.records

    def __bool__(self) -> bool:
        return self.records > 0

    def _advance(self, topic: str, partition: int, offset: int, change: Change | None) -> None:
        if change is not None:
            self._log.append(((topic, partition, offset), change))
        self.records += 1
        position = (topic, partition)
        # max(): a record read twice (after a seek) must not move the position back.
        self._next_offsets[position] = max(self._next_offsets.get(position, 0), offset + 1)

    def add_timeline_entry(
        self, entry: TimelineEntry, topic: str, partition: int, offset: int
    ) -> None:
        self._advance(topic, partition, offset, entry)
        self.timeline_records += 1
        self._timeline.setdefault((entry.account_id, entry.event_id), entry)

    def add_state(self, state: ConversationState, topic: str, partition: int, offset: int) -> None:
        self._advance(topic, partition, offset, state)
        self.state_records += 1
        self._fold(state)

    def add_tombstone(self, key: str, topic: str, partition: int, offset: int) -> None:
        """`key`: the tombstone's record key as text (Tombstone.of_key)."""
        self._add_tombstone(Tombstone.of_key(key), topic, partition, offset)

    def _add_tombstone(self, tombstone: Tombstone, topic: str, partition: int, offset: int) -> None:
        self._advance(topic, partition, offset, tombstone)
        self.tombstones += 1
        self._fold(tombstone)

    def add_receipt(self, receipt: ReadReceipt, topic: str, partition: int, offset: int) -> None:
        """Keep the furthest receipt per message and viewer (a replayed older one loses)."""
        self._advance(topic, partition, offset, receipt)
        self.receipt_records += 1
        key = (receipt.account_id, receipt.message_id, receipt.viewer_kind.value,
               receipt.viewer_id)  # fmt: skip
        current = self._receipts.get(key)
        if current is None or receipt_progress(receipt) >= receipt_progress(current):
            self._receipts[key] = receipt

    def add_status(self, status: DeliveryStatus, topic: str, partition: int, offset: int) -> None:
        """Keep the furthest status per message and recipient."""
        self._advance(topic, partition, offset, status)
        self.status_records += 1
        key = (status.account_id, status.message_id, status.recipient)
        current = self._statuses.get(key)
        if current is None or status_progress(status) >= status_progress(current):
            self._statuses[key] = status

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """A record that was dead-lettered: only the position moves past it."""
        self._advance(topic, partition, offset, None)
        self.skipped += 1

    def add(self, change: Change, topic: str, partition: int, offset: int) -> None:
        """Any stored change, by its type."""
        if isinstance(change, TimelineEntry):
            self.add_timeline_entry(change, topic, partition, offset)
        elif isinstance(change, ConversationState):
            self.add_state(change, topic, partition, offset)
        elif isinstance(change, Tombstone):
            self._add_tombstone(change, topic, partition, offset)
        elif isinstance(change, ReadReceipt):
            self.add_receipt(change, topic, partition, offset)
        else:
            self.add_status(change, topic, partition, offset)

    def singles(self) -> list[tuple[Source, SinkBatch]]:
        """Each stored record alone, in consumption order, without positions.

        Written one after the other they leave the same rows as the whole batch:
        every write is guarded (first event_id wins, higher version, more views,
        further status), which is what the batch's folding does in memory.
        """
        parts = []
        for source, change in self._log:
            part = SinkBatch(self.group)
            part.add(change, *source)
            part._next_offsets.clear()
            parts.append((source, part))
        return parts

    def without(self, refused: Iterable[Source]) -> SinkBatch:
        """The same batch with `refused` records skipped: their positions still move on."""
        dropped = set(refused)
        rebuilt = SinkBatch(self.group)
        for source, change in self._log:
            if source in dropped:
                rebuilt.skip(*source)
            else:
                rebuilt.add(change, *source)
        # Records dead-lettered before the database saw them (undecodable) stay skipped.
        rebuilt.skipped += self.skipped
        rebuilt.records += self.skipped
        for position, offset in self._next_offsets.items():
            rebuilt._next_offsets[position] = max(rebuilt._next_offsets.get(position, 0), offset)
        return rebuilt

    def _fold(self, change: StateChange) -> None:
        fold_into(self._states, change)

    @property
    def timeline_entries(self) -> list[TimelineEntry]:
        return list(self._timeline.values())

    @property
    def state_writes(self) -> list[StateWrite]:
        return list(self._states.values())

    @property
    def receipts(self) -> list[ReadReceipt]:
        return list(self._receipts.values())

    @property
    def statuses(self) -> list[DeliveryStatus]:
        return list(self._statuses.values())

    @property
    def next_offsets(self) -> dict[TopicPartition, int]:
        return dict(self._next_offsets)
