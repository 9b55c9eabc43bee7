"""The pure parts of `convotrail produce`: lines as bytes, one decode per line, and
terminal-safe text."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.produce_file import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    MAX_LINE_BYTES,
    LineRefusal,
    ProduceSummary,
    parse_line,
    read_lines,
)
from convotrail.terminal import escape, escape_json


def _lines(data: bytes) -> list[tuple[int, bytes | None]]:
    return list(read_lines(io.BytesIO(data)))


def test_only_newline_ends_a_line() -> None:
    assert _lines(b"a\rb\nc\r\n\nd") == [(1, b"a\rb"), (2, b"c\r"), (3, b""), (4, b"d")]


def test_a_line_too_long_is_skipped_without_losing_the_next_one() -> None:
    data = b"x" * (MAX_LINE_BYTES + 10) + b"\n{}\n"
    assert _lines(data) == [(1, None), (2, b"{}")]
    with pytest.raises(ValueError, match="longer than"):
        parse_line(None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff{}", "not valid UTF-8 (byte 1)"),
        (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8 (byte 8)"),  # an encoded surrogate
        (b"[" * 100_000, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
        (b"9" * 5000, "not valid JSON"),
        (b"{} {}", "not valid JSON: Extra data"),
    ],
)
def test_a_bad_line_is_a_value_error_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_line(data)
    assert str(refused.value).startswith(reason)
    assert len(str(refused.value)) < 200


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    try:
        parse_line(data)
    except ValueError as refused:
        assert str(refused).isprintable()
    except Exception as other:  # the blank-line marker only
        assert type(other).__name__ == "_Blank"


def test_exit_status_says_what_happened() -> None:
    assert ProduceSummary(sent=2, submitted=2).exit_status == EXIT_OK
    refused = ProduceSummary(sent=1, submitted=1, refused=[LineRefusal(2, "x")])
    assert refused.exit_status == EXIT_REFUSED
    lost = ProduceSummary(sent=1, submitted=2, refused=[LineRefusal(2, "x")])
    assert lost.unacknowledged == 1 and lost.exit_status == EXIT_FAILED
    assert "unacknowledged 1" in lost.describe()
    assert ProduceSummary(failed=["boom"], submitted=1).exit_status == EXIT_FAILED


def test_control_characters_are_escaped_for_the_terminal() -> None:
    assert escape("evt-\x00\x1b[2J\x07\x7f\x85\u202e\ud800") == (
        "evt-\\x00\\x1b[2J\\x07\\x7f\\x85\\u202e\\ud800"
    )
    assert escape("Zoë wrote 🙂") == "Zoë wrote 🙂"
    assert escape("a\nb", keep="\n") == "a\nb"
    assert escape("a\nb") == "a\\x0ab"


@given(st.text())
def test_escaped_text_is_printable_and_escaped_json_stays_json(text: str) -> None:
    assert escape(text).isprintable()
    rendered = escape_json(json.dumps({"text": text}, ensure_ascii=False, indent=2))
    assert all(line.isprintable() for line in rendered.split("\n"))
    assert json.loads(rendered) == {"text": text}
