"""The webhook intake (`convotrail delivery serve`, a real process, a real broker) at
its limits: a body of exactly the documented limit reaches Kafka and one byte more is
413; the inputs of issue 12 (deep JSON, lone surrogates, `Bearer \\xff`, authentic
garbage) are counted refusals and the process stays up and takes good input; 40
slow-loris connections are all cut off within the read timeout; with Kafka down the
reply is 503 within the delivery timeout and nothing is left to be written later."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.intake.config import DEFAULT_MAX_BODY_BYTES, IntakeConfig
from connectors.intake.http import create_intake_app
from connectors.intake.records import NotificationPublisher
from convotrail.settings import Settings
from schemas import headers as h
from tests.support.delivery import header, records
from tests.support.metrics import scrape
from tests.support.ports import free_ports
from tests.support.rawhttp import exchange, request_bytes
from tests.support.waiting import wait_until
from tests.support.worker import worker_env

pytestmark = pytest.mark.integration

TOKEN = "dsn-token-limits"
BEARER = ("Authorization", f"Bearer {TOKEN}")
READ_TIMEOUT = 2.0


@pytest.fixture
def intake(topics: Settings, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    (port,) = free_ports(1)
    env = worker_env(topics, tmp_path / "home")
    env.update(
        CONVOTRAIL_DSN_TOKEN=TOKEN,
        CONVOTRAIL_MAILGUN_SIGNING_KEY="mailgun-key",
        CONVOTRAIL_INTAKE_READ_TIMEOUT=str(READ_TIMEOUT),
    )
    env.pop("CONVOTRAIL_INTAKE_MAX_BODY_BYTES", None)  # the default, derived limit
    log = (tmp_path / "intake.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "convotrail", "delivery", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: _listening(port), timeout=60, interval=0.3, what="the intake")
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert b"Traceback" not in (tmp_path / "intake.log").read_bytes()


def _listening(port: int) -> bool:
    try:
        return exchange(port, request_bytes("GET", "/healthz"), timeout=2).status == 200
    except OSError:
        return False


def test_a_body_of_exactly_the_limit_reaches_kafka(
    topics: Settings, intake: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, _ = intake
    assert DEFAULT_MAX_BODY_BYTES == 1_032_192  # what docs/delivery.md states
    # Incompressible, so lz4 cannot make room: the worst case for the broker's limit.
    body = os.urandom(DEFAULT_MAX_BODY_BYTES)
    reply = exchange(port, request_bytes("POST", "/webhooks/dsn", body, [BEARER]), timeout=60)
    assert (reply.status, reply.json()) == (202, {"accepted": 1})
    over = exchange(port, request_bytes("POST", "/webhooks/dsn", body + b"x", [BEARER]))
    assert (over.status, over.json()["reason"]) == (413, "too-large")
    [record] = wait_until(
        lambda: records(topics, topics.topics.delivery_notifications),
        timeout=30, interval=0.5, what="the record on delivery-notifications",
    )  # fmt: skip
    assert record.value() == body
    assert header(record, h.PROVIDER) == "dsn"
    assert (header(record, h.IDEMPOTENCY_KEY) or "").startswith("dsn:sha256:")


def test_issue_12_inputs_are_counted_refusals_and_the_intake_stays_up(
    topics: Settings, intake: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, process = intake
    deep = b"[" * 200_000 + b"]" * 200_000
    surrogate_token = json.dumps(
        {"signature": {"timestamp": "1", "token": "\ud800", "signature": "0" * 64}}
    ).encode()
    sns = json.dumps(
        {"Type": "Notification", "Message": "\ud800", "MessageId": "m", "Timestamp": "t",
         "TopicArn": "arn:aws:sns:x", "Signature": "AAAA", "SignatureVersion": "1"}
    ).encode()  # fmt: skip
    sent = [
        (request_bytes("POST", "/webhooks/ses", deep), 401, "ses", "malformed"),
        (request_bytes("POST", "/webhooks/mailgun", deep), 401, "mailgun", "malformed"),
        (request_bytes("POST", "/webhooks/mailgun", surrogate_token), 401, "mailgun", "malformed"),
        (request_bytes("POST", "/webhooks/dsn", b"x", [("Authorization", b"Bearer \xff")]), 401,
         "dsn", "bad-credentials"),
        (request_bytes("POST", "/webhooks/dsn", b"", [BEARER]), 400, "dsn", "empty-body"),
        (request_bytes("POST", "/webhooks/sns", sns), 404, "other", "not-found"),
        (request_bytes("POST", "/webhooks/dsn", b"x", [("Content-Type", "a"),
         ("Content-Type", "b")]), 400, "other", "bad-http"),
    ]  # fmt: skip
    for raw, status, _provider, reason in sent:
        reply = exchange(port, raw)
        assert (reply.status, reply.json()["reason"]) == (status, reason)
    metrics = scrape(port)
    for _, _, provider, reason in sent:
        label = f'convotrail_intake_refused_total{{provider="{provider}",reason="{reason}"}}'
        assert metrics[label] >= 1, label
    assert process.poll() is None
    good = b"From: MAILER-DAEMON@example.com\r\nSubject: failed\r\n\r\nnope\r\n"
    assert exchange(port, request_bytes("POST", "/webhooks/dsn", good, [BEARER])).status == 202
    [record] = wait_until(
        lambda: records(topics, topics.topics.delivery_notifications),
        timeout=30, interval=0.5, what="the good notification on Kafka",
    )  # fmt: skip
    assert record.value() == good  # and nothing refused before it


def test_slow_clients_are_cut_off_within_the_read_timeout(
    intake: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = intake
    closed_after: list[float] = []
    lock = threading.Lock()

    def trickle(index: int) -> None:
        # Half trickle their headers, half a body they announced, one byte at a time.
        head = b"POST /webhooks/dsn HTTP/1.1\r\nHost: localhost\r\n"
        if index % 2:
            head += b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            head += b"Content-Length: 100000\r\n\r\n"  # then the body, byte by byte
        else:
            head += b"X-Slow: "  # then a header value that never ends
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head)
            sock.settimeout(0.3)
            while time.monotonic() - started < 30:
                try:
                    if sock.recv(65536) == b"":
                        break  # closed by the server
                    continue  # a 408, then the close
                except TimeoutError:
                    pass
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
        with lock:
            closed_after.append(time.monotonic() - started)

    threads = [threading.Thread(target=trickle, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(closed_after) == 40
    # The read timeout, plus the lingering second after a 408, aiohttp's timer
    # granularity and this machine's load.
    assert min(closed_after) > READ_TIMEOUT - 0.5, sorted(closed_after)
    assert max(closed_after) < READ_TIMEOUT + 4, sorted(closed_after)
    assert process.poll() is None
    assert _listening(port)


def test_with_kafka_down_the_reply_is_503_and_nothing_is_left_to_publish(
    settings: Settings,
) -> None:
    (dead,) = free_ports(1)  # nothing listens there
    down = Settings.from_env({**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead}",
                              "SCHEMA_REGISTRY_URL": settings.registry_url})  # fmt: skip
    config = IntakeConfig(dsn_token=TOKEN, delivery_timeout=1.0)
    publisher = NotificationPublisher(down, delivery_timeout=config.delivery_timeout)

    async def scenario() -> tuple[int, float]:
        async with TestClient(TestServer(create_intake_app(config, publisher.deliver))) as client:
            started = time.monotonic()
            async with client.post(
                "/webhooks/dsn", data=b"bounce", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as reply:
                return reply.status, time.monotonic() - started

    try:
        status, elapsed = asyncio.run(scenario())
        assert status == 503
        assert elapsed < config.delivery_timeout + 5
        # librdkafka has given the record up: it holds nothing it could write later.
        assert publisher.outstanding() == 0
    finally:
        publisher.close()
