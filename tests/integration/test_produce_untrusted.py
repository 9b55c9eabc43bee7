"""`convotrail produce` never trusts its file (issue 12): every bad line is refused with
its number and reason, terminal-safe, no traceback; every good line after it is
acknowledged; the exit status says what happened; a broker, registry or file that is
not there is one line and exit 1, within a bounded time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.produce_file import EXIT_FAILED, produce_lines, read_lines
from connectors.publisher import EventPublisher
from convotrail.settings import Settings
from schemas.codecs import ModelCodec
from schemas.examples import EXAMPLES
from schemas.model import ConversationEvent
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume
from tests.support.nasty import NASTY_EVENTS, nasty_lines
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration


def _env(settings: Settings, **changes: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
    )
    env.update(changes)
    return env


def _produce(
    env: dict[str, str], args: list[str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "convotrail", "produce", "--quiet", *args],
        input=stdin, capture_output=True, timeout=180, env=env, check=False,
    )  # fmt: skip


def _good(number: int) -> bytes:
    raw = dict(EXAMPLES["TAG_ADDED"], event_id=f"evt-good-{number}",
               occurred_at=datetime.now(UTC).isoformat())  # fmt: skip
    return json.dumps(raw).encode()


def _terminal_safe(text: bytes) -> None:
    decoded = text.decode()  # valid UTF-8, whatever the file held
    for line in decoded.splitlines():
        assert line.isprintable(), repr(line)


def test_every_nasty_line_is_refused_and_every_good_line_after_it_is_acknowledged(
    topics: Settings, tmp_path: Path
) -> None:
    lines: list[bytes] = []
    expected: dict[int, str] = {}  # line number -> what its refusal must say
    good = 0
    for _kind, raw, field in NASTY_EVENTS:
        lines.append(json.dumps(raw).encode())
        expected[len(lines)] = f": {field}: "
        good += 1
        lines.append(_good(good))
    for kind, data in nasty_lines():
        lines.append(data)
        expected[len(lines)] = "" if kind in ("bare-string", "nan") else "not valid"
        good += 1
        lines.append(_good(good))
    # A lone CR does not end a line: both halves are one (refused) line, and the line
    # numbers after it stay right.
    lines.append(_good(9001) + b"\r" + _good(9002))
    expected[len(lines)] = "not valid JSON: Extra data"
    good += 1
    lines.append(_good(good))
    lines.append(b"   ")  # blank: skipped, not refused
    good += 1
    lines.append(_good(good) + b"\r")  # CRLF endings are fine
    path = tmp_path / "nasty.jsonl"
    path.write_bytes(b"\n".join(lines))  # the last line has no \n
    assert len(expected) >= 50

    started = time.monotonic()
    result = _produce(_env(topics), ["-f", str(path)])
    assert result.returncode == 3, result.stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in result.stderr
    _terminal_safe(result.stderr)
    _terminal_safe(result.stdout)
    refusals = [
        line for line in result.stderr.decode().splitlines() if line.startswith("refused line ")
    ]
    numbers = [int(line.split()[2].rstrip(":")) for line in refusals]
    assert numbers == sorted(expected), (numbers, sorted(expected))
    for line in refusals:
        number = int(line.split()[2].rstrip(":"))
        assert expected[number] in line, line
        assert len(line) < 1200, line[:200]
    assert f"sent {good}, refused {len(expected)}, failed 0 " in result.stdout.decode()
    assert time.monotonic() - started < 120

    messages = consume(topics, topics.topics.conversation_events, good, timeout=60, settle=1.0)
    reader = ModelCodec(AvroSerde(Registry(topics.registry_url)),
                        topics.topics.conversation_events, ConversationEvent)  # fmt: skip
    ids = sorted(reader.decode(m.value()).event_id for m in messages)
    assert ids == sorted(f"evt-good-{n}" for n in range(1, good + 1))


def test_standard_input_with_invalid_utf8_refuses_that_line_only(topics: Settings) -> None:
    data = b"\n".join([b'{"event_id": "\xff"}', _good(1), b"\xc3(", _good(2)]) + b"\n"
    result = _produce(_env(topics), ["-f", "-"], stdin=data)
    assert result.returncode == 3, result.stderr
    assert result.stderr.decode().splitlines() == [
        "refused line 1: not valid UTF-8 (byte 15)",
        "refused line 3: not valid UTF-8 (byte 1)",
    ]
    assert "sent 2, refused 2, failed 0" in result.stdout.decode()


def test_all_good_lines_exit_zero(topics: Settings) -> None:
    result = _produce(_env(topics), ["-f", "-"], stdin=_good(1) + b"\n" + _good(2) + b"\n")
    assert result.returncode == 0, result.stderr
    assert "sent 2, refused 0, failed 0" in result.stdout.decode()


def test_an_unreachable_broker_is_one_line_and_exit_1(topics: Settings) -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    result = _produce(
        _env(topics, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", CONVOTRAIL_CONNECT_TIMEOUT="4"),
        ["-f", "-"],
        stdin=_good(1),
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kafka at 127.0.0.1:"), lines
    assert "did not answer" in lines[0] and "is it running?" in lines[0]


def test_an_unreachable_registry_is_one_line_and_exit_1(topics: Settings) -> None:
    (port,) = free_ports(1)
    result = _produce(
        _env(topics, SCHEMA_REGISTRY_URL=f"http://127.0.0.1:{port}"), ["-f", "-"], stdin=_good(1)
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: schema registry at http://127.0.0.1:{port}"), lines
    assert "is it running?" in lines[0]


def test_a_missing_file_and_a_usage_error_have_their_own_exit_status(
    topics: Settings, tmp_path: Path
) -> None:
    missing = _produce(_env(topics), ["-f", str(tmp_path / "nope\x1b[2J.jsonl")])
    assert missing.returncode == 1
    lines = missing.stderr.decode().splitlines()
    assert len(lines) == 1 and "cannot read" in lines[0] and "\\x1b[2J" in lines[0], lines
    assert "No such file or directory" in lines[0]
    usage = _produce(_env(topics), [])
    assert usage.returncode == 2
    assert b"Missing option" in usage.stderr


def test_events_the_broker_never_acknowledges_are_counted_and_fail(
    topics: Settings, tmp_path: Path
) -> None:
    # The registry answers, Kafka does not: a bounded wait, then every event is counted
    # as not acknowledged (or failed) and the status is 1, not a silent success.
    (port,) = free_ports(1)
    unreachable = replace(topics, external_bootstrap=f"127.0.0.1:{port}")
    path = tmp_path / "two.jsonl"
    path.write_bytes(_good(1) + b"\n" + _good(2) + b"\n")
    publisher = EventPublisher(unreachable, producer_config={"message.timeout.ms": 2000})
    started = time.monotonic()
    try:
        with path.open("rb") as stream:
            summary = produce_lines(read_lines(stream), publisher, flush_timeout=5)
    finally:
        publisher.close(timeout=0.5)
    assert time.monotonic() - started < 15
    assert summary.sent == 0
    assert summary.unacknowledged + len(summary.failed) == 2
    assert summary.exit_status == EXIT_FAILED
    assert "sent 0, refused 0, failed" in summary.describe()
