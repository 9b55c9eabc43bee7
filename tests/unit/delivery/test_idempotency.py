"""A provider's retry of a notification the intake had already written is ignored by
the bounce processor: the intake gives both copies the same idempotency_key header
(records_of), and the processor remembers the keys per message ref (ledger.seen)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.delivery_samples import ses_via_sns
from connectors.intake.records import IntakeRecord, records_of
from convotrail import clients
from convotrail.settings import Settings
from processors.delivery import ledger as lg
from processors.delivery import shell as bounces
from processors.runtime.driver import TopologyDriver
from schemas import headers as h
from schemas import keys
from schemas import model as m
from tests.unit.processors.test_conversation_core import Script

NOW_MS = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)
AT = datetime.fromtimestamp(NOW_MS / 1000, UTC)
Driver = TopologyDriver[bounces.BounceApp]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "1"}
    )  # fmt: skip
    topology = bounces.topology(
        settings, bounces.BounceOptions(wait=timedelta(minutes=10)), clients.registry(settings)
    )
    driver = TopologyDriver(topology, tmp_path, partitions=1, clock=lambda: NOW_MS)
    yield driver
    driver.close()


def bounce_body(notification_id: str) -> bytes:
    return ses_via_sns(
        "Bounce",
        email_message_id="m1@acme.example",
        ses_message_id="ses-m1",
        recipient="jo@example.com",
        at=AT,
        notification_id=notification_id,
    )


def pipe(driver: Driver, record: IntakeRecord) -> None:
    """What NotificationPublisher writes, as the processor reads it."""
    headers = [(h.PROVIDER, b"ses"), (h.IDEMPOTENCY_KEY, record.idempotency_key.encode())]
    driver.pipe(driver.topology.app.topics.delivery_notifications, record.value, record.key,
                headers, timestamp=NOW_MS)  # fmt: skip


def announce_message(driver: Driver) -> None:
    app = driver.topology.app
    sent = Script()(
        m.MessageAdded(
            message_id="msg-1",
            direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY,
            channel=m.Channel.EMAIL,
            recipients=("jo@example.com",),
            email_message_id="<m1@acme.example>",
        )
    )
    driver.pipe(app.topics.conversation_events, app.events.encode(sent), keys.of_event(sent),
                [(h.EVENT_TYPE, sent.type.value.encode())])  # fmt: skip
    for record in driver.outputs(app.topics.message_routes):
        driver.pipe(app.topics.message_routes, record.value, record.key)


def test_a_retried_webhook_yields_one_fact(driver: Driver) -> None:
    app = driver.topology.app
    body = bounce_body("n1")
    [first] = records_of("ses", body)
    [retry] = records_of("ses", body)  # the provider posts the same notification again
    assert first.idempotency_key == retry.idempotency_key
    assert first.idempotency_key.startswith("ses:")
    pipe(driver, first)  # before the message is known: it waits
    pipe(driver, retry)  # ignored, not parked a second time
    driver.commit()
    announce_message(driver)
    pipe(driver, retry)  # after the route is known: ignored too
    driver.commit()
    facts = driver.outputs(app.topics.delivery_facts)
    assert len(facts) == 1
    assert driver.outputs(app.topics.delivery_notifications_dlq) == []
    # Another notification about the same message is not a retry.
    [other] = records_of("ses", bounce_body("n2"))
    assert other.idempotency_key != first.idempotency_key
    pipe(driver, other)
    driver.commit()
    assert len(driver.outputs(app.topics.delivery_facts)) == 2


def test_records_without_the_header_are_processed_as_before(driver: Driver) -> None:
    app = driver.topology.app
    announce_message(driver)
    [record] = records_of("ses", bounce_body("n1"))
    for _ in range(2):  # written by an older intake: no key, no deduplication here
        driver.pipe(app.topics.delivery_notifications, record.value, record.key,
                    [(h.PROVIDER, b"ses")], timestamp=NOW_MS)  # fmt: skip
    driver.commit()
    assert len(driver.outputs(app.topics.delivery_facts)) == 2  # same event_id: dropped later


def test_the_ledger_remembers_a_bounded_number_of_keys() -> None:
    ledger = lg.Ledger()
    for i in range(lg.MAX_SEEN + 5):
        ledger, first = lg.remember(ledger, f"k{i}")
        assert first
    assert len(ledger.seen) == lg.MAX_SEEN and ledger.seen[-1] == f"k{lg.MAX_SEEN + 4}"
    assert lg.remember(ledger, ledger.seen[0]) == (ledger, False)


@given(st.lists(st.text(max_size=60), max_size=lg.MAX_SEEN))
def test_the_seen_keys_round_trip_and_format_2_is_still_read(seen: list[str]) -> None:
    ledger = lg.Ledger(seen=tuple(seen))
    assert lg.decode_ledger(lg.encode_ledger(ledger)) == ledger
    # Format 2 is format 3 without the trailing list.
    without = lg.encode_ledger(lg.Ledger())
    format_2 = bytes([2]) + without[1:-1]
    assert lg.decode_ledger(format_2) == lg.Ledger()
