"""What the bounce worker does with each kind of email in its bounce mailbox, through
its real handlers on the runtime's in-process driver (processors/delivery/shell.py,
no Kafka; tests/integration runs the same handlers through the broker):

- an auto-reply is counted as `ignored`, never dead-lettered, and says nothing;
- a person's ordinary email is dead-lettered as `not-a-bounce`;
- an ARF abuse report about a routed message is a spam complaint on its
  conversation, and suppresses the address;
- an SES notification delivered by email is read as SES's own bounce.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from connectors.delivery_samples import ses_via_sns
from convotrail import clients
from convotrail.settings import Settings
from processors.delivery import shell as bounces
from processors.runtime.driver import TopologyDriver
from schemas import headers as h
from schemas import keys
from schemas import model as m
from tests.support.delivery import outbound_email

NOW_MS = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)
ORIGINAL_ID = "reply-7@acme-help.example"
CUSTOMER = "jo@example.org"

Driver = TopologyDriver[bounces.BounceApp]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "1"}
    )  # fmt: skip
    topology = bounces.topology(settings, bounces.BounceOptions(), clients.registry(settings))
    running = TopologyDriver(topology, tmp_path, partitions=1, clock=lambda: NOW_MS)
    app = topology.app
    sent = outbound_email("cnv-7", "msg-7", f"<{ORIGINAL_ID}>", (CUSTOMER,))
    running.pipe(app.topics.conversation_events, app.events.encode(sent), keys.of_event(sent),
                 [(h.EVENT_TYPE, sent.type.value.encode())])  # fmt: skip
    _flow(running)
    yield running
    running.close()


def _flow(driver: Driver) -> None:
    # What the loop does with the internal topics: they come back as inputs.
    for topic in (
        driver.topology.app.topics.message_routes,
        driver.topology.app.topics.delivery_facts,
    ):
        for record in driver.outputs(topic):
            driver.pipe(topic, record.value, record.key)
        driver.produced = [r for r in driver.produced if r.topic != topic]


def _mail(driver: Driver, body: bytes, ref: str = ORIGINAL_ID) -> None:
    driver.pipe(driver.topology.app.topics.delivery_notifications, body,
                keys.message_ref(ref), [(h.PROVIDER, b"dsn")], timestamp=NOW_MS)  # fmt: skip
    _flow(driver)
    _flow(driver)
    driver.commit()


def _events(driver: Driver) -> list[m.ConversationEvent]:
    app = driver.topology.app
    return [app.events.decode(r.value) for r in driver.outputs(app.topics.conversation_events)]


def _ignored() -> float:
    labels = {"provider": "dsn", "outcome": "ignored"}
    return REGISTRY.get_sample_value("convotrail_delivery_notifications_total", labels) or 0.0


AUTO_REPLY = (
    f"From: Jo <{CUSTOMER}>\nTo: support@acme-help.example\n"
    "Subject: Automatic reply: your ticket\nAuto-Submitted: auto-replied\n"
    f"In-Reply-To: <{ORIGINAL_ID}>\n\n"
    "I am away until Monday. For anything urgent write to sam@example.org\n"
).encode()


def test_an_auto_reply_is_counted_and_dropped_not_dead_lettered(driver: Driver) -> None:
    before = _ignored()
    _mail(driver, AUTO_REPLY)
    assert driver.outputs(driver.topology.app.topics.delivery_notifications_dlq) == []
    assert _events(driver) == []
    assert _ignored() == before + 1


def test_a_persons_email_is_dead_lettered_as_not_a_bounce(driver: Driver) -> None:
    before = _ignored()
    _mail(driver, b"From: jo@example.org\nSubject: thanks\n\nAll sorted, thank you.\n")
    (dead,) = driver.outputs(driver.topology.app.topics.delivery_notifications_dlq)
    assert dead.header(h.DLQ_ERROR_CLASS) == b"not-a-bounce"
    assert _ignored() == before


def _arf(rcpt_to: str, to: str) -> bytes:
    return (
        "From: fbl@isp.example\nTo: abuse@acme-help.example\nSubject: Abuse report\n"
        "Date: Wed, 25 Nov 2026 11:00:00 +0000\nMessage-ID: <fbl-1@isp.example>\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nA complaint about mail from your network.\n"
        "--B\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: abuse\nUser-Agent: FBL/1.0\nVersion: 1\n{rcpt_to}"
        "--B\nContent-Type: message/rfc822\n\n"
        f"From: support@acme-help.example\nTo: {to}\nMessage-ID: <{ORIGINAL_ID}>\n"
        "Subject: your ticket\n\nHello\n--B--\n"
    ).encode()


@pytest.mark.parametrize(
    ("rcpt_to", "to"),
    [
        (f"Original-Rcpt-To: {CUSTOMER}\n", CUSTOMER),
        # The feedback loop redacted the recipient: the message's only one it is.
        ("", '"undisclosed recipients"'),
    ],
)
def test_an_abuse_report_is_a_complaint_that_suppresses_the_address(
    driver: Driver, rcpt_to: str, to: str
) -> None:
    _mail(driver, _arf(rcpt_to, to))
    (event,) = _events(driver)
    assert event.type is m.EventType.CUSTOMER_MARKED_SPAM
    assert (event.conversation_id, event.payload.recipient) == ("cnv-7", CUSTOMER)  # type: ignore[union-attr]
    app = driver.topology.app
    (suppressed,) = driver.outputs(app.topics.suppressed_recipients)
    assert suppressed.key == keys.recipient("acct-1", CUSTOMER)


def test_an_ses_notification_sent_by_email_is_read_as_sess_own(driver: Driver) -> None:
    at = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    envelope = json.loads(
        ses_via_sns(
            "Bounce",
            email_message_id=ORIGINAL_ID,
            ses_message_id="ses-7",
            recipient=CUSTOMER,
            at=at,
            notification_id="n-7",
        )
    )
    body = (
        "From: SES <no-reply@sns.amazonaws.com>\nTo: bounces@acme-help.example\n"
        "Subject: AWS Notification Message\nContent-Type: text/plain; charset=UTF-8\n\n"
        f"{envelope['Message']}\n\n--\nIf you wish to stop receiving notifications...\n"
    ).encode()
    _mail(driver, body)
    (event,) = _events(driver)
    assert event.type is m.EventType.BOUNCE_DETECTED
    payload = event.payload
    assert isinstance(payload, m.BounceDetected)
    assert (payload.recipient, payload.provider, payload.bounce_class) == (
        CUSTOMER,
        "ses",
        m.BounceClass.HARD,
    )
