"""Routing by recipient through the bounce processor's shell on the in-process driver
(processors/runtime/driver.py): bounce emails that name no original message, keyed
by the intake (records_of), reach the latest message sent to their recipient with
`matched_by` RECIPIENT, wait for a message still to come, are refused as ambiguous
or unknown, and the recipient index forgets what left its window."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.intake.records import IntakeRecord, records_of
from convotrail import clients
from convotrail.settings import Settings
from processors.delivery import shell as bounces
from processors.runtime.driver import Produced, TopologyDriver
from schemas import headers as h
from schemas import keys
from schemas import model as m
from tests.support.delivery import bounce_email, outbound_email

NOW_MS = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)
NOW = datetime.fromtimestamp(NOW_MS / 1000, UTC)
Driver = TopologyDriver[bounces.BounceApp]


class Clock:
    ms = NOW_MS

    def __call__(self) -> int:
        return self.ms


def _driver(tmp_path: Path, clock: Clock, **options: object) -> Driver:
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "3"}
    )  # fmt: skip
    topology = bounces.topology(
        settings, bounces.BounceOptions(wait=timedelta(minutes=10), **options),  # type: ignore[arg-type]
        clients.registry(settings),
    )  # fmt: skip
    return TopologyDriver(topology, tmp_path / uuid.uuid4().hex, partitions=3, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def driver(tmp_path: Path, clock: Clock) -> Iterator[Driver]:
    driver = _driver(tmp_path, clock)
    yield driver
    driver.close()


def send(driver: Driver, message_id: str, to: str, at: datetime, account: str = "acct-1") -> None:
    """The platform's outbound email, and the routes it teaches coming back."""
    app = driver.topology.app
    event = outbound_email(f"cnv-{message_id}", message_id, f"{message_id}@mail.acme.example",
                           (to,), account_id=account, at=at)  # fmt: skip
    driver.pipe(app.topics.conversation_events, app.events.encode(event), keys.of_event(event),
                [(h.EVENT_TYPE, event.type.value.encode())])  # fmt: skip
    flow(driver)


def bounce(driver: Driver, to: str, at: datetime, bounce_id: str) -> bytes:
    """A bounce email naming no original, as the intake publishes it."""
    body = bounce_email((to,), at, bounce_id)
    (record,) = records_of("dsn", body)
    assert record.key == keys.recipient_route(to)
    pipe(driver, record)
    flow(driver)
    return body


def pipe(driver: Driver, record: IntakeRecord) -> None:
    headers = [(h.PROVIDER, b"dsn"), (h.IDEMPOTENCY_KEY, record.idempotency_key.encode())]
    driver.pipe(driver.topology.app.topics.delivery_notifications, record.value, record.key,
                headers, timestamp=Clock.ms)  # fmt: skip


def flow(driver: Driver) -> None:
    """What the loop does with the internal topics: they come back as inputs."""
    names = driver.topology.app.topics
    for topic in (names.message_routes, names.delivery_facts):
        for record in driver.outputs(topic):
            driver.pipe(topic, record.value, record.key)
        driver.produced = [r for r in driver.produced if r.topic != topic]


def bounces_out(driver: Driver) -> list[m.ConversationEvent]:
    app = driver.topology.app
    events = [app.events.decode(r.value) for r in driver.outputs(app.topics.conversation_events)]
    return [e for e in events if e.type is m.EventType.BOUNCE_DETECTED]


def dead_letters(driver: Driver) -> list[Produced]:
    return driver.outputs(driver.topology.app.topics.delivery_notifications_dlq)


def test_a_bounce_naming_no_message_reaches_the_latest_message_sent_before_it(
    driver: Driver,
) -> None:
    send(driver, "msg-1", "jo@example.com", NOW - timedelta(hours=3))
    send(driver, "msg-2", "jo@example.com", NOW - timedelta(minutes=30))
    send(driver, "msg-9", "sam@example.org", NOW - timedelta(minutes=20))  # another address
    bounce(driver, "jo@example.com", NOW - timedelta(hours=1), "b1")  # between the two
    bounce(driver, "jo@example.com", NOW, "b2")
    driver.commit()
    events = bounces_out(driver)
    assert [(e.conversation_id, e.account_id, e.causation_id) for e in events] == [
        ("cnv-msg-1", "acct-1", "evt-msg-1"), ("cnv-msg-2", "acct-1", "evt-msg-2")
    ]  # fmt: skip
    for event in events:
        assert isinstance(event.payload, m.BounceDetected)
        assert event.payload.matched_by is m.MatchedBy.RECIPIENT
        assert (event.payload.recipient, event.payload.smtp_status) == ("jo@example.com", "5.1.1")
    assert [e.payload.message_id for e in events] == ["msg-1", "msg-2"]  # type: ignore[union-attr]
    (suppressed,) = driver.outputs(driver.topology.app.topics.suppressed_recipients)
    assert suppressed.key == keys.recipient("acct-1", "jo@example.com")
    assert dead_letters(driver) == []


def test_it_waits_for_its_message_and_several_senders_make_it_ambiguous(
    driver: Driver,
) -> None:
    bounce(driver, "sam@example.org", NOW, "b1")  # before the message event came
    driver.commit()
    assert bounces_out(driver) == [] and dead_letters(driver) == []
    key = keys.recipient_route("sam@example.org")
    store = driver.store(bounces.LEDGER, keys.partition_of(key, 3))
    assert len(store.get(key).waiting) == 1
    send(driver, "msg-a", "sam@example.org", NOW - timedelta(minutes=2), "acct-a")
    driver.commit()
    (released,) = bounces_out(driver)
    assert (released.account_id, released.conversation_id) == ("acct-a", "cnv-msg-a")
    assert released.payload.matched_by is m.MatchedBy.RECIPIENT  # type: ignore[union-attr]
    assert store.scheduled == 0  # the index's own schedule is not a waiting notification
    # Another account mails sam too: a bounce that names neither is never guessed.
    send(driver, "msg-b", "sam@example.org", NOW - timedelta(minutes=1), "acct-b")
    bounce(driver, "sam@example.org", NOW, "b2")
    driver.commit()
    (dead,) = dead_letters(driver)
    assert dead.header(h.DLQ_ERROR_CLASS) == b"ambiguous-route"
    error = (dead.header(h.DLQ_ERROR) or b"").decode()  # type: ignore[union-attr]
    assert "'sam@example.org'" in error and "acct-a, acct-b" in error
    assert dead.key == key and len(bounces_out(driver)) == 1


def test_one_sent_outside_the_window_expires_and_the_index_forgets(
    driver: Driver, clock: Clock
) -> None:
    send(driver, "msg-old", "lee@example.net", NOW - timedelta(days=8))
    send(driver, "msg-new", "kim@example.net", NOW - timedelta(days=1))
    body = bounce(driver, "lee@example.net", NOW, "b1")
    driver.commit()
    old, new = keys.recipient_route("lee@example.net"), keys.recipient_route("kim@example.net")
    ledgers = {k: driver.store(bounces.LEDGER, keys.partition_of(k, 3)) for k in (old, new)}
    assert len(ledgers[old].get(old).waiting) == 1
    assert ledgers[old].scheduled == 1  # the waiting bounce, not the index's housekeeping
    clock.ms += 10 * 60 * 1000
    driver.fire_due()
    driver.commit()
    (dead,) = dead_letters(driver)
    assert (dead.key, dead.value, dead.header(h.DLQ_ERROR_CLASS)) == (
        old, body, b"unknown-message"
    )  # fmt: skip
    error = (dead.header(h.DLQ_ERROR) or b"").decode()  # type: ignore[union-attr]
    assert "no outbound message to 'lee@example.net' sent within 7 days" in error
    assert ledgers[old].get(old) is None  # nothing left for an address nobody mails
    assert [r.message_id for r in ledgers[new].get(new).recent] == ["msg-new"]
    clock.ms += 6 * 24 * 3600 * 1000  # msg-new leaves the window too
    driver.fire_due()
    driver.commit()
    assert ledgers[new].get(new) is None
    assert bounces_out(driver) == []


def test_routing_by_recipient_off_and_a_bounce_not_keyed_by_its_recipient_are_refused(
    tmp_path: Path, clock: Clock
) -> None:
    off = _driver(tmp_path, clock, recipient_window=timedelta(0))
    send(off, "msg-1", "jo@example.com", NOW - timedelta(minutes=5))
    assert off.changelog == [] and off.outputs(off.topology.app.topics.message_routes) == []
    bounce(off, "jo@example.com", NOW, "b1")
    (dead,) = dead_letters(off)
    assert dead.header(h.DLQ_ERROR_CLASS) == b"unknown-message"
    assert b"routing by recipient is off" in (dead.header(h.DLQ_ERROR) or b"")  # type: ignore[operator]
    off.close()
    on = _driver(tmp_path, clock)
    send(on, "msg-1", "jo@example.com", NOW - timedelta(minutes=5))
    (record,) = records_of("dsn", bounce_email(("jo@example.com",), NOW, "b2"))
    pipe(on, IntakeRecord(b"jo@example.com", record.value, record.idempotency_key))
    (dead,) = dead_letters(on)
    assert dead.header(h.DLQ_ERROR_CLASS) == b"no-message-ref"
    assert b"'recipient <jo@example.com>'" in (dead.header(h.DLQ_ERROR) or b"")  # type: ignore[operator]
    # An abuse report that redacts the recipient and names no message: nothing can
    # route it (the intake leaves it unkeyed), a dead letter rather than a guess.
    (record,) = records_of("dsn", ARF_NAMING_NOTHING)
    assert record.key is None
    pipe(on, record)
    (_, dead) = dead_letters(on)
    assert dead.header(h.DLQ_ERROR_CLASS) == b"no-message-ref"
    assert b"no recipient either" in (dead.header(h.DLQ_ERROR) or b"")  # type: ignore[operator]
    assert bounces_out(on) == []
    on.close()


ARF_NAMING_NOTHING = (
    b"From: fbl@isp.example\nTo: abuse@acme.example\nSubject: Abuse report\n"
    b"Date: Wed, 25 Nov 2026 11:00:00 +0000\nMessage-ID: <fbl-1@isp.example>\n"
    b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n\n'
    b"--B\nContent-Type: text/plain\n\nA complaint about mail from your network.\n"
    b"--B\nContent-Type: message/feedback-report\n\n"
    b"Feedback-Type: abuse\nUser-Agent: FBL/1.0\nVersion: 1\n"
    b"--B\nContent-Type: message/rfc822\n\n"
    b'From: support@acme.example\nTo: "undisclosed recipients"\nSubject: hi\n\nHello\n--B--\n'
)
