"""--log-format json: one JSON object per line, whatever a record's text holds."""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from convotrail import logs
from convotrail.cli import main
from convotrail.logs import JsonFormatter, record_fields


def _record(message: str, *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("processors.runtime.task", logging.WARNING, __file__, 1,
                               message, args, None)  # fmt: skip
    record.__dict__.update(extra)
    return record


def _format(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line
    assert line.isascii()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_line_has_time_level_logger_message_and_the_record_fields() -> None:
    fields = record_fields("conversation-events", 3, 1042, "acct-1", "cnv-9")
    found = _format(_record("%s -> DLQ", "conversation-events[3]@1042", **fields))
    assert found["level"] == "WARNING"
    assert found["logger"] == "processors.runtime.task"
    assert found["message"] == "conversation-events[3]@1042 -> DLQ"
    assert (found["topic"], found["partition"], found["offset"]) == ("conversation-events", 3, 1042)
    assert (found["account"], found["conversation"]) == ("acct-1", "cnv-9")
    # UTC, milliseconds: 2026-11-30T12:23:46.182Z
    assert len(found["ts"]) == 24 and found["ts"].endswith("Z") and found["ts"][10] == "T"


def test_only_known_fields_are_output_and_unknown_ones_left_out() -> None:
    found = _format(_record("plain", password="hunter2", topic="t"))
    assert set(found) == {"ts", "level", "logger", "message", "topic"}
    assert record_fields(partition=0) == {"partition": 0}  # 0 is a value, not absent


@pytest.mark.parametrize(
    "text",
    [
        "line one\nline two",
        "carriage\rreturn",
        "separator\u2028and\u2029paragraph",
        "lone \ud800 surrogate",
        "nul \x00 and escape \x1b[31m",
        'quote " and backslash \\',
        "Zoë, 日本語, 🙂",
    ],
)
def test_untrusted_text_stays_one_parseable_line_and_round_trips(text: str) -> None:
    found = _format(_record("%s", text, account=text))
    assert found["message"] == text
    assert found["account"] == text


def test_a_long_id_from_a_record_is_cut() -> None:
    found = _format(_record("x", account="a" * 10_000))
    assert found["account"] == "a" * logs.FIELD_CHARS + "..."


def test_an_exception_is_one_string_field() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = _record("handler failed")
        record.exc_info = sys.exc_info()
    found = _format(record)
    assert found["exception"].startswith("Traceback (most recent call last)")
    assert "ValueError: bad\nvalue" in found["exception"]


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure() changes process-wide state: put it back."""
    monkeypatch.setattr(logs, "_current", logs.TEXT)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.excepthook, threading.excepthook = hooks
        logging.captureWarnings(False)


def test_json_mode_turns_everything_on_stderr_into_json_lines(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(verbose=False, log_format=logs.JSON)
    logging.getLogger("processors.runtime.loop").info("hidden: below WARNING")
    logging.getLogger("processors.runtime.task").warning("dead letter", extra=record_fields(
        "t", 1, 2, "acct-1"))  # fmt: skip
    assert logs.announce("read API on http://127.0.0.1:8080")  # shown whatever the level
    assert logs.fatal("error: fenced")
    warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["level"], line["message"].split(":")[0]) for line in lines][:4] == [
        ("WARNING", "dead letter"),
        ("INFO", "read API on http"),
        ("ERROR", "error"),
        ("WARNING", lines[3]["message"].split(":")[0]),
    ]
    assert lines[0]["account"] == "acct-1" and lines[0]["offset"] == 2
    assert "deprecated thing" in lines[3]["message"]
    assert lines[4]["level"] == "CRITICAL" and "RuntimeError: boom" in lines[4]["exception"]


def test_text_mode_leaves_the_caller_to_print(restored: None) -> None:
    logs.configure(verbose=True, log_format=logs.TEXT)
    assert not logs.announce("shown by the caller")
    assert not logs.fatal("error: shown by the caller")


def test_an_unknown_log_format_is_refused_in_one_line() -> None:
    result = CliRunner().invoke(main, ["worker"], env={"CONVOTRAIL_LOG_FORMAT": "xml"})
    assert result.exit_code == 2
    assert "Invalid value for '--log-format': 'xml' is not one of 'text', 'json'" in result.output
    with pytest.raises(ValueError, match="log format 'xml'"):
        logs.configure(verbose=False, log_format="xml")
