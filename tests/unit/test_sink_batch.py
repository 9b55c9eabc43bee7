"""The sink's pure core: deduplication, state coalescing and positions within a batch."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from connectors.sink.batch import SinkBatch, StateWrite, Tombstone, coalesce_states, fold_state
from schemas.model import ConversationState
from tests.support.sink import conversation_state, timeline_entry

TIMELINE, STATE = "conversation-timeline", "conversation-state"


def test_a_timeline_entry_seen_twice_is_kept_once_first_wins() -> None:
    batch = SinkBatch("g")
    first = timeline_entry("cnv-1", 1, text="first rendering")
    batch.add_timeline_entry(first, TIMELINE, 0, 10)
    batch.add_timeline_entry(timeline_entry("cnv-1", 2), TIMELINE, 0, 11)
    batch.add_timeline_entry(timeline_entry("cnv-1", 1, text="replayed"), TIMELINE, 0, 12)
    assert batch.timeline_entries == [first, timeline_entry("cnv-1", 2)]
    assert (len(batch), batch.timeline_records) == (3, 3)


def test_states_of_one_conversation_coalesce_to_the_highest_version() -> None:
    batch = SinkBatch("g")
    for offset, version in enumerate([2, 5, 3, 4]):
        batch.add_state(conversation_state("cnv-1", version), STATE, 1, offset)
    batch.add_state(conversation_state("cnv-2", 1), STATE, 2, 0)
    assert batch.state_writes == [
        StateWrite("acc-1", "cnv-1", False, conversation_state("cnv-1", 5)),
        StateWrite("acc-1", "cnv-2", False, conversation_state("cnv-2", 1)),
    ]
    assert batch.state_records == 5


def test_an_equal_version_keeps_the_snapshot_seen_first() -> None:
    first = conversation_state("cnv-1", 3, subject="first")
    again = conversation_state("cnv-1", 3, subject="replayed")
    assert coalesce_states([first, again]) == [StateWrite("acc-1", "cnv-1", False, first)]


def test_a_tombstone_deletes_first_and_later_snapshots_start_afresh() -> None:
    older = conversation_state("cnv-1", 2)
    writes = coalesce_states([conversation_state("cnv-1", 9), Tombstone("acc-1", "cnv-1"), older])
    # Version 2 follows the tombstone, so it wins over the deleted version 9.
    assert writes == [StateWrite("acc-1", "cnv-1", delete_first=True, state=older)]
    assert coalesce_states([conversation_state("cnv-1", 9), Tombstone("acc-1", "cnv-1")]) == [
        StateWrite("acc-1", "cnv-1", delete_first=True, state=None)
    ]


def test_positions_are_the_next_offset_per_partition_including_dead_letters() -> None:
    batch = SinkBatch("g")
    batch.add_timeline_entry(timeline_entry("cnv-1", 1), TIMELINE, 0, 41)
    batch.skip(TIMELINE, 0, 42)
    batch.add_state(conversation_state("cnv-1", 1), STATE, 0, 7)
    batch.add_tombstone("acc-1|cnv-2", STATE, 2, 3)
    # A record read again after a seek must not move a position back.
    batch.add_timeline_entry(timeline_entry("cnv-1", 1), TIMELINE, 0, 40)
    assert batch.next_offsets == {(TIMELINE, 0): 43, (STATE, 0): 8, (STATE, 2): 4}
    assert (batch.skipped, batch.tombstones, len(batch)) == (1, 1, 5)


def test_an_empty_batch_is_falsy() -> None:
    batch = SinkBatch("g")
    assert not batch and batch.next_offsets == {} and batch.state_writes == []


# -- property: batching never changes the outcome ----------------------------------------

Stored = dict[str, ConversationState]


def _apply_one(stored: Stored, write: StateWrite) -> None:
    """What Store.apply does with a StateWrite: delete, then a version-guarded upsert."""
    if write.delete_first:
        stored.pop(write.conversation_id, None)
    if write.state is not None:
        current = stored.get(write.conversation_id)
        if current is None or write.state.version > current.version:
            stored[write.conversation_id] = write.state


changes = st.lists(
    st.one_of(
        st.builds(
            conversation_state,
            st.sampled_from(["cnv-a", "cnv-b", "cnv-c"]),
            st.integers(min_value=1, max_value=8),
            subject=st.sampled_from(["s1", "s2"]),
        ),
        st.builds(Tombstone, st.sampled_from(["cnv-a", "cnv-b", "cnv-c"])),
    ),
    max_size=30,
)


@given(changes, st.lists(st.integers(min_value=0, max_value=30), max_size=6))
def test_any_batching_stores_what_one_record_at_a_time_stores(
    history: list[ConversationState | Tombstone], cuts: list[int]
) -> None:
    one_by_one: Stored = {}
    for change in history:
        _apply_one(one_by_one, fold_state(None, change))
    batched: Stored = {}
    bounds = [0, *sorted({min(cut, len(history)) for cut in cuts}), len(history)]
    for start, end in pairwise(bounds):
        for write in coalesce_states(history[start:end]):
            _apply_one(batched, write)
    assert batched == one_by_one


# -- refused records: each alone, then the batch without them ---------------------------


@given(changes, st.sets(st.integers(min_value=0, max_value=29)))
def test_the_batch_without_refused_records_stores_what_the_others_store_one_by_one(
    history: list[ConversationState | Tombstone], refused_offsets: set[int]
) -> None:
    batch = SinkBatch("g")
    for offset, change in enumerate(history):
        batch.add(change, STATE, 0, offset)
    batch.skip(STATE, 0, len(history))  # an undecodable record, dead-lettered before
    singles = batch.singles()
    # Each single holds one record and no position: positions commit with the batch.
    assert [source for source, _part in singles] == [(STATE, 0, n) for n in range(len(history))]
    assert all(len(part) == 1 and part.next_offsets == {} for _source, part in singles)
    refused = {(STATE, 0, n) for n in refused_offsets if n < len(history)}

    rest = batch.without(refused)
    one_by_one: Stored = {}
    for source, part in singles:
        if source not in refused:
            for write in part.state_writes:
                _apply_one(one_by_one, write)
    folded: Stored = {}
    for write in rest.state_writes:
        _apply_one(folded, write)
    assert folded == one_by_one
    # Every record still moves the position on, refused or not; none is counted twice.
    assert rest.next_offsets == batch.next_offsets == {(STATE, 0): len(history) + 1}
    assert len(rest) == len(batch)
    assert rest.skipped == len(refused) + 1
    assert rest.state_records + rest.tombstones == len(history) - len(refused)


def test_a_refused_timeline_entry_leaves_the_first_accepted_duplicate() -> None:
    batch = SinkBatch("g")
    refused = timeline_entry("cnv-1", 1, text="bad\x00")
    accepted = timeline_entry("cnv-1", 1, text="good")
    batch.add_timeline_entry(refused, TIMELINE, 0, 1)
    batch.add_timeline_entry(accepted, TIMELINE, 0, 2)
    assert batch.timeline_entries == [refused]
    assert batch.without([(TIMELINE, 0, 1)]).timeline_entries == [accepted]


def test_accounts_that_reuse_ids_keep_their_own_rows() -> None:
    batch = SinkBatch("g")
    for account in ("acc-1", "acc-2"):
        batch.add_timeline_entry(timeline_entry("cnv-1", 1, account_id=account), TIMELINE, 0, 1)
        batch.add_state(conversation_state("cnv-1", 3, account_id=account), STATE, 0, 1)
    assert [(e.account_id, e.event_id) for e in batch.timeline_entries] == [
        ("acc-1", batch.timeline_entries[0].event_id),
        ("acc-2", batch.timeline_entries[0].event_id),
    ]
    assert [(w.account_id, w.conversation_id) for w in batch.state_writes] == [
        ("acc-1", "cnv-1"),
        ("acc-2", "cnv-1"),
    ]


def test_a_tombstone_key_names_its_account_or_is_the_old_bare_id() -> None:
    assert Tombstone.of_key("acc/1|cnv-1") == Tombstone("acc/1", "cnv-1")
    assert Tombstone.of_key("cnv-1") == Tombstone(None, "cnv-1")


def test_a_tombstone_keyed_the_old_way_deletes_the_snapshots_before_it_in_any_account() -> None:
    before = conversation_state("cnv-9", 1)
    after = conversation_state("cnv-9", 2, account_id="acc-2")
    assert coalesce_states([before, Tombstone.of_key("cnv-9"), after]) == [
        StateWrite(None, "cnv-9", delete_first=True),
        StateWrite("acc-2", "cnv-9", state=after),
    ]
