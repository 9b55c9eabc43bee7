"""The JSON the sink stores, and what `convotrail timeline` / `state` print from it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from connectors.sink.errors import SnapshotError
from connectors.sink.query import (
    render_state_json,
    render_state_text,
    render_timeline_json,
    render_timeline_text,
)
from connectors.sink.snapshot import (
    changes_from_json,
    changes_to_json,
    state_from_json,
    state_to_json,
)
from tests.support.sink import conversation_state, timeline_entry


def test_a_state_snapshot_round_trips_every_field() -> None:
    state = conversation_state("cnv-1", 7)
    text = state_to_json(state)
    assert state_from_json(text) == state
    stored = json.loads(text)
    assert stored["last_event_at"] == "2026-11-25T09:37:00.049000+00:00"
    assert stored["status"] == "OPEN" and stored["tags"] == ["billing", "v7"]


def test_a_snapshot_written_before_a_field_existed_takes_the_schema_default() -> None:
    stored = json.loads(state_to_json(conversation_state("cnv-1", 2)))
    del stored["reopen_count"], stored["pinned_note_ids"], stored["created_at"]
    state = state_from_json(json.dumps(stored))
    assert (state.reopen_count, state.pinned_note_ids, state.created_at) == (0, (), None)


def test_a_snapshot_missing_a_required_field_is_refused_by_name() -> None:
    stored = json.loads(state_to_json(conversation_state("cnv-1", 2)))
    del stored["version"]
    with pytest.raises(SnapshotError, match="snapshot field version: missing"):
        state_from_json(json.dumps(stored))


def test_field_changes_round_trip() -> None:
    changes = timeline_entry("cnv-1", 1).changes
    assert changes_from_json(changes_to_json(changes)) == changes


def test_timeline_text_is_one_line_per_entry_in_utc() -> None:
    entries = [
        replace(
            timeline_entry("cnv-1", 0), text="Dana reassigned this conversation from Lee to Sam"
        ),
        timeline_entry("cnv-1", 1, text="Dana added the tag billing"),
    ]
    assert render_timeline_text(entries) == (
        "2026-11-25 09:30:00  Dana reassigned this conversation from Lee to Sam\n"
        "2026-11-25 09:31:00  Dana added the tag billing"
    )
    rendered = json.loads(render_timeline_json(entries))
    assert [entry["event_id"] for entry in rendered] == ["evt-cnv-1-0", "evt-cnv-1-1"]
    assert rendered[1]["occurred_at"] == "2026-11-25T09:31:00.007000+00:00"
    assert rendered[1]["actor"]["name"] == "Dana"


def test_state_text_names_what_a_person_asks_about() -> None:
    state = conversation_state("cnv-1", 5)
    lines = render_state_text(state).splitlines()
    assert lines[0] == "conversation  cnv-1 (account acc-1)"
    assert "status        OPEN (archived)" in lines
    assert "assignee      Sam (stf-sam)" in lines
    assert "tags          billing, v5" in lines
    assert "reminder      2026-11-25 10:35:00 for Dana: call back" in lines
    assert json.loads(render_state_json(state))["version"] == 5
