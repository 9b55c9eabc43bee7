"""`convotrail timeline` and `state` print event text that anyone who can write to the
topic chose: control characters reach the terminal escaped (issue 12), and --json
stays valid JSON that round-trips the text."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from connectors.sink.batch import SinkBatch
from connectors.sink.store import open_store
from convotrail.cli import main
from tests.support.sink import conversation_state, timeline_entry

NASTY = "Dana\x1b[2J\x1b]0;pwned\x07 wrote\x00 \u202eevil\x85 \x7f"


def _database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    batch = SinkBatch("g")
    batch.add_timeline_entry(timeline_entry("cnv-x", 1, text=NASTY), "timeline", 0, 0)
    batch.add_timeline_entry(timeline_entry("cnv-x", 2, text="line one\nfake line"),
                             "timeline", 0, 1)  # fmt: skip
    batch.add_state(conversation_state("cnv-x", 1), "state", 0, 0)
    with open_store(url) as store:
        store.apply(batch)
    return url


def test_timeline_escapes_control_characters(tmp_path: Path) -> None:
    url = _database(tmp_path)
    result = CliRunner().invoke(main, ["timeline", "cnv-x", "--database-url", url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2, lines  # an embedded newline does not fake a third entry
    assert all(line.isprintable() for line in lines), lines
    assert "Dana\\x1b[2J\\x1b]0;pwned\\x07 wrote\\x00 \\u202eevil\\x85 \\x7f" in lines[0]
    assert "line one\\x0afake line" in lines[1]


def test_timeline_json_is_printable_and_round_trips(tmp_path: Path) -> None:
    url = _database(tmp_path)
    result = CliRunner().invoke(main, ["timeline", "cnv-x", "--json", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert all(line.isprintable() for line in result.output.splitlines())
    texts = [entry["text"] for entry in json.loads(result.output)]
    assert texts == [NASTY, "line one\nfake line"]


def test_state_is_printable(tmp_path: Path) -> None:
    url = _database(tmp_path)
    for args in (["state", "cnv-x"], ["state", "cnv-x", "--json"]):
        result = CliRunner().invoke(main, [*args, "--database-url", url])
        assert result.exit_code == 0, result.output
        assert all(line.isprintable() for line in result.output.splitlines())
