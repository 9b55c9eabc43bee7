"""The bounce processor through the real broker and registry: each provider's
documented sample payloads become delivery events of the right conversation, with
their classes and recipients; a notification that arrives before its message waits
for it; unknown messages and garbage go to the DLQ with the reason; repeated soft
bounces escalate and a later delivery lifts the suppression."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message

from connectors.intake.records import PARSERS, NotificationPublisher
from convotrail.settings import Settings
from convotrail.stack import Endpoints
from convotrail.topics import admin_client, ensure_topics, topic_specs
from processors.delivery.notification import NotificationError, NotificationIgnored
from schemas import headers as h
from schemas import keys
from schemas import model as m
from schemas.registration import register_contract
from schemas.registry import Registry
from tests.support.delivery import (
    FIXTURES,
    bounce_email,
    decoder,
    delivery_events,
    header,
    outbound_email,
    publish,
    records,
)
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, worker_env

pytestmark = pytest.mark.integration

WAIT_SECONDS = 4  # how long the worker parks a notification for an unknown message

SENT, DELIVERED = m.EventType.MESSAGE_SENT, m.EventType.MESSAGE_DELIVERED
BOUNCE, FAILED = m.EventType.BOUNCE_DETECTED, m.EventType.DELIVERY_FAILED
SPAM = m.EventType.CUSTOMER_MARKED_SPAM
HARD, SOFT, POLICY = m.BounceClass.HARD, m.BounceClass.SOFT, m.BounceClass.POLICY

# What each documented sample must become: (file, event type, recipient, bounce class).
# Classes follow the providers' own words: SES Permanent/Transient, SendGrid's
# bounce_classification and type, Mailgun's severity, Postmark's bounce Type.
EXPECTED: list[tuple[str, m.EventType, str, m.BounceClass | None]] = [
    ("ses/bounce_permanent.json", BOUNCE, "jane@example.com", HARD),
    ("ses/bounce_permanent_no_dsn.json", BOUNCE, "jane@example.com", HARD),
    ("ses/bounce_permanent_no_dsn.json", BOUNCE, "richard@example.com", HARD),
    ("ses/bounce_transient.json", BOUNCE, "mary@example.com", SOFT),
    ("ses/complaint.json", SPAM, "richard@example.com", None),
    ("ses/delivery.json", DELIVERED, "jane@example.com", None),
    ("ses/event_bounce.json", BOUNCE, "recipient@example.com", HARD),
    ("ses/event_delivery_delay.json", BOUNCE, "recipient@example.com", SOFT),
    ("ses/event_reject.json", FAILED, "sender@example.com", None),
    ("ses/event_send.json", SENT, "recipient@example.com", None),
    ("ses/sns_bounce.json", BOUNCE, "jane@example.com", HARD),
    ("sendgrid/events.json", SENT, "alex@example.com", None),
    ("sendgrid/events.json", BOUNCE, "alex@example.com", SOFT),  # deferred
    ("sendgrid/events.json", DELIVERED, "alex@example.com", None),
    ("sendgrid/events.json", BOUNCE, "alex@example.com", HARD),
    ("sendgrid/events.json", BOUNCE, "sam@example.org", POLICY),  # blocked, 5.7.1
    ("sendgrid/events.json", BOUNCE, "noemail@this.does.not.exist.tld", POLICY),  # blocked
    ("sendgrid/events.json", FAILED, "alex@example.com", None),  # dropped
    ("sendgrid/events.json", SPAM, "alex@example.com", None),
    ("mailgun/accepted.json", SENT, "recipient@sample.mailgun.com", None),
    ("mailgun/complained.json", SPAM, "alice@example.com", None),
    ("mailgun/delivered.json", DELIVERED, "alice@example.com", None),
    ("mailgun/failed_permanent.json", BOUNCE, "invalid@example.com", HARD),
    ("mailgun/failed_permanent_suppress_bounce.json", FAILED, "alice@example.com", None),
    ("mailgun/failed_temporary.json", BOUNCE, "alice@example.com", SOFT),
    ("postmark/bounce_blocked.json", BOUNCE, "jane@example.com", POLICY),
    ("postmark/bounce_hard.json", BOUNCE, "john@example.com", HARD),
    ("postmark/bounce_legacy.json", BOUNCE, "john@example.com", HARD),
    ("postmark/bounce_soft.json", BOUNCE, "mary@example.com", SOFT),
    ("postmark/bounce_transient.json", BOUNCE, "richard@example.com", SOFT),
    ("postmark/delivery.json", DELIVERED, "john@example.com", None),
    ("postmark/spam_complaint.json", SPAM, "john@example.com", None),
]
REFUSED = [
    ("sendgrid/events.json", "unsupported-type"),
    ("mailgun/opened.json", "unsupported-type"),
]


@pytest.fixture(scope="module")
def delivery_stack(
    kafka_endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """One prefix and one bounce worker for the module (a worker takes ~15 s to join)."""
    home = tmp_path_factory.mktemp("delivery")
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_endpoints.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": kafka_endpoints.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
            "CONVOTRAIL_HOME": str(home),
            "CONVOTRAIL_PARTITIONS": "3",
        }
    )
    ensure_topics(admin_client(settings), topic_specs(settings))
    register_contract(Registry(settings.registry_url), settings.topics)
    with running_worker(settings, home / "bounces", processor="bounces",
                        extra_env={"CONVOTRAIL_BOUNCE_WAIT": str(WAIT_SECONDS)}):  # fmt: skip
        yield settings


def _first_ref(provider: str, unit: bytes) -> str | None:
    try:
        notifications = PARSERS[provider].parse(unit)
    except NotificationError:
        return None
    refs = notifications[0].message_refs
    return str(refs[0]) if refs else None


def test_each_providers_documented_samples_become_delivery_events(
    delivery_stack: Settings, tmp_path: Path
) -> None:
    settings = delivery_stack
    account = "acct-samples"
    files = sorted({name for name, *_ in EXPECTED} | {name for name, _ in REFUSED})
    # The platform's outbound messages, one per message ref the samples name.
    refs: dict[str, str] = {}
    for name in files:
        provider = name.split("/")[0]
        for unit in PARSERS[provider].split((FIXTURES / "delivery" / name).read_bytes()):
            ref = _first_ref(provider, unit)
            if ref is not None:
                refs.setdefault(ref, f"msg-{len(refs) + 1}")
    publish(settings, [
        outbound_email(f"cnv-{message_id}", message_id, ref, account_id=account)
        for ref, message_id in refs.items()
    ])  # fmt: skip
    # One file through the CLI as a user would, the rest through the SDK.
    cli = subprocess.run(
        [sys.executable, "-m", "convotrail", "delivery", "ingest", "--provider", "ses",
         str(FIXTURES / "delivery" / "ses" / "sns_bounce.json")],
        env=worker_env(settings, tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "1 ses notification record(s) on delivery-notifications" in cli.stdout
    with NotificationPublisher(settings) as publisher:
        for name in files:
            if name != "ses/sns_bounce.json":
                publisher.publish(name.split("/")[0], (FIXTURES / "delivery" / name).read_bytes())

    def ours() -> list[m.ConversationEvent]:
        return [e for e in delivery_events(settings) if e.account_id == account]

    found = wait_until(lambda: (got := ours()) and len(got) >= len(EXPECTED) and got,
                       timeout=90, interval=1, what=f"{len(EXPECTED)} delivery events")  # fmt: skip
    got = Counter(
        (e.type, getattr(e.payload, "recipient", None), getattr(e.payload, "bounce_class", None))
        for e in found
    )
    want = Counter((t, recipient, klass) for _, t, recipient, klass in EXPECTED)
    assert got == want
    for event in found:  # each lands on its message's conversation, caused by the message
        message_id = event.payload.message_id  # type: ignore[union-attr]
        assert event.conversation_id == f"cnv-{message_id}"
        assert event.causation_id == f"evt-{message_id}"
        assert event.actor.kind is m.ActorKind.SYSTEM
        assert event.payload.matched_by is m.MatchedBy.MESSAGE_REF  # type: ignore[union-attr]
    # The two unsupported events (an open, a click-like event) are refused, not dropped.
    dlq = records(settings, settings.topics.delivery_notifications_dlq)
    reasons = Counter(header(r, h.DLQ_ERROR_CLASS) for r in dlq)
    assert reasons["unsupported-type"] == len(REFUSED)


def test_a_notification_that_arrives_before_its_message_waits_for_it(
    delivery_stack: Settings,
) -> None:
    settings = delivery_stack
    body = (FIXTURES / "delivery" / "mailgun" / "failed_permanent.json").read_bytes()
    body = body.replace(b"msg-90d1e4", b"msg-early-1")  # its own message id
    with NotificationPublisher(settings) as publisher:
        publisher.publish("mailgun", body)
    # The message event comes a second later (the platform published it late).
    publish(settings, [outbound_email("cnv-early", "msg-early-1", None, account_id="acct-early")])
    (bounce,) = wait_until(
        lambda: [e for e in delivery_events(settings) if e.account_id == "acct-early"],
        timeout=60, interval=1, what="the parked bounce, released",
    )  # fmt: skip
    assert bounce.type is BOUNCE and bounce.conversation_id == "cnv-early"
    assert isinstance(bounce.payload, m.BounceDetected)
    assert (bounce.payload.recipient, bounce.payload.smtp_status) == (
        "invalid@example.com",
        "5.1.1",
    )


def test_unknown_messages_and_garbage_go_to_the_dlq_with_the_reason(
    delivery_stack: Settings,
) -> None:
    settings = delivery_stack
    body = (FIXTURES / "delivery" / "postmark" / "bounce_hard.json").read_bytes()
    never_sent = body.replace(b"msg-7f3a2c", b"msg-never-sent")
    with NotificationPublisher(settings) as publisher:
        publisher.publish("postmark", never_sent)
        publisher.publish("ses", b"this is not JSON {")
        publisher.publish("dsn", b"Subject: hello\n\njust a normal email\n")

    def refused() -> dict[bytes, str]:
        """Dead letters of this test, by their original bytes: the error header."""
        ours = (never_sent, b"this is not JSON {", b"Subject: hello\n\njust a normal email\n")
        found = records(settings, settings.topics.delivery_notifications_dlq)
        return {r.value(): str(header(r, h.DLQ_ERROR)) for r in found if r.value() in ours}

    dead = wait_until(lambda: (d := refused()) and len(d) >= 3 and d,
                      timeout=WAIT_SECONDS + 60, interval=1, what="three dead letters")  # fmt: skip
    unknown = dead[never_sent]  # the original bytes, unchanged, with the reason
    assert unknown.startswith("unknown-message: ")
    assert "msg-never-sent" in unknown and f"within {WAIT_SECONDS} s" in unknown
    assert dead[b"this is not JSON {"].startswith("unparseable: ")
    assert dead[b"Subject: hello\n\njust a normal email\n"].startswith("not-a-bounce: ")


def test_a_bounce_email_naming_no_message_reaches_the_latest_message_to_its_recipient(
    delivery_stack: Settings,
) -> None:
    """No Message-ID of the original anywhere: the intake keys it by its recipient and
    the worker routes it to the message sent to that address before the bounce (the
    one sent after it cannot have caused it, whichever the worker learns first)."""
    settings = delivery_stack
    account, address = "acct-by-recipient", "lee.noref@example.net"
    now = datetime.now(UTC).replace(microsecond=0)
    publish(settings, [
        outbound_email("cnv-noref-1", "msg-noref-1", None, (address,), account_id=account,
                       at=now - timedelta(hours=1)),
        outbound_email("cnv-noref-2", "msg-noref-2", None, (address,), account_id=account,
                       at=now + timedelta(hours=1)),
    ])  # fmt: skip
    with NotificationPublisher(settings) as publisher:
        publisher.publish("dsn", bounce_email((address,), now, f"noref-{uuid.uuid4().hex}"))
    (event,) = wait_until(
        lambda: [e for e in delivery_events(settings) if e.account_id == account],
        timeout=60, interval=1, what="the bounce routed by recipient",
    )  # fmt: skip
    assert (event.type, event.conversation_id, event.causation_id) == (
        BOUNCE, "cnv-noref-1", "evt-msg-noref-1"
    )  # fmt: skip
    assert isinstance(event.payload, m.BounceDetected)
    assert event.payload.matched_by is m.MatchedBy.RECIPIENT
    assert (event.payload.message_id, event.payload.recipient) == ("msg-noref-1", address)
    assert (event.payload.bounce_class, event.payload.smtp_status) == (HARD, "5.1.1")


def test_repeated_soft_bounces_escalate_and_a_later_delivery_lifts_the_suppression(
    delivery_stack: Settings,
) -> None:
    settings = delivery_stack
    account, address = "acct-escalate", "pat@example.net"
    now = datetime.now(UTC).replace(microsecond=0)
    # Final soft bounces (Mailgun gave up: mailbox full); its 'temporary' failures are
    # delays, which never count toward escalation.
    template = (FIXTURES / "delivery" / "mailgun" / "failed_permanent.json").read_text()
    delivered = (FIXTURES / "delivery" / "mailgun" / "delivered.json").read_text()
    publish(settings, [
        outbound_email(f"cnv-esc-{i}", f"msg-esc-{i}", f"esc-{i}@mail.example", (address,),
                       account_id=account)
        for i in range(4)
    ])  # fmt: skip

    def mailgun(text: str, ref: str, at: datetime, event_id: str) -> bytes:
        import json

        body = json.loads(text)
        data = body["event-data"]
        data["recipient"] = address
        data["id"] = event_id
        data["timestamp"] = at.timestamp()
        data["message"]["headers"]["message-id"] = ref
        data.pop("user-variables", None)
        if data.get("event") == "failed":
            data["delivery-status"].update(code=552, message="5.2.2 mailbox full: over quota")
        return json.dumps(body).encode()

    with NotificationPublisher(settings) as publisher:
        for i in range(3):  # three messages soft-bounce within three hours
            at = now + timedelta(hours=i)
            publisher.publish("mailgun", mailgun(template, f"esc-{i}@mail.example", at, f"s{i}"))
    suppressed_topic, key = settings.topics.suppressed_recipients, keys.recipient(account, address)

    def ours() -> list[Message]:  # the module's other tests suppress other addresses
        return [r for r in records(settings, suppressed_topic) if r.key() == key]

    (suppression,) = wait_until(ours, timeout=60, interval=1, what="the suppression")
    record = decoder(settings, suppressed_topic, m.SuppressedRecipient)(suppression.value())
    assert record.reason is m.SuppressionReason.REPEATED_SOFT_BOUNCES
    assert record.message_id == "msg-esc-2" and record.conversation_id == "cnv-esc-2"
    bounces = sorted(
        (e for e in delivery_events(settings) if e.account_id == account),
        key=lambda e: e.occurred_at,
    )
    classes = [(e.payload.bounce_class, e.payload.escalated) for e in bounces]  # type: ignore[union-attr]
    assert classes == [(SOFT, False), (SOFT, False), (HARD, True)]
    # A message delivered to the address later: the suppression is lifted (tombstone).
    with NotificationPublisher(settings) as publisher:
        later = now + timedelta(hours=5)
        publisher.publish("mailgun", mailgun(delivered, "esc-3@mail.example", later, "d3"))
    lifted = wait_until(lambda: [r for r in ours() if r.value() is None], timeout=60,
                        interval=1, what="the tombstone")  # fmt: skip
    assert len(lifted) == 1 and len(ours()) == 2  # suppressed once, lifted once


def test_real_bounce_emails_of_many_mail_servers_become_bounce_events(
    delivery_stack: Settings,
) -> None:
    """The bounce corpus (tests/fixtures/bounces: DSN, Exim, Postfix, qmail, Exchange,
    Gmail, Yahoo, Microsoft 365 and others) through the broker: each bounce that names
    its original message lands on that message's conversation with the recipients and
    classes the parser finds (pinned per file in tests/unit/delivery/test_dsn.py);
    each one that does not goes to the DLQ with the parser's reason."""
    settings = delivery_stack
    account = "acct-bounces"
    corpus = sorted((FIXTURES / "bounces").glob("*.txt"))
    expected: Counter[tuple[str, str, str, m.BounceClass | None]] = Counter()
    refused: Counter[str] = Counter()
    outbound: dict[str, m.ConversationEvent] = {}
    for path in corpus:
        try:
            notifications = PARSERS["dsn"].parse(path.read_bytes())
        except NotificationIgnored:
            continue  # an auto-reply: counted by the worker, not dead-lettered
        except NotificationError as exc:
            refused[exc.reason] += 1
            continue
        if not notifications[0].message_refs:
            # Names no original, so it is routed by recipient; these bounces date from
            # years before any message sent here (outside the window): they wait for
            # one, then go to the DLQ.
            refused["unknown-message"] += 1
            continue
        ref = notifications[0].message_refs[0]
        message_id = f"msg-{path.stem}"
        outbound.setdefault(ref, outbound_email(
            f"cnv-{path.stem}", message_id, ref, tuple(n.recipient for n in notifications),
            account_id=account,
        ))  # fmt: skip
        routed_to = outbound[ref].payload.message_id  # type: ignore[union-attr]
        for n in notifications:
            kind = {"DELIVERED": DELIVERED, "FAILED": FAILED}.get(n.kind.value, BOUNCE)
            expected[(routed_to, kind.value, n.recipient, n.bounce_class)] += 1
    families = {path.stem.rsplit("_", 1)[0] for path in corpus}
    assert len(corpus) >= 70 and len(families) >= 15
    assert len(outbound) >= 20 and sum(refused.values()) >= 40
    publish(settings, list(outbound.values()))
    with NotificationPublisher(settings) as publisher:
        for path in corpus:
            publisher.publish("dsn", path.read_bytes())

    def ours() -> list[m.ConversationEvent]:
        return [e for e in delivery_events(settings) if e.account_id == account]

    total = sum(expected.values())
    found = wait_until(lambda: (got := ours()) and len(got) >= total and got,
                       timeout=90, interval=1, what=f"{total} bounce events")  # fmt: skip
    got = Counter(
        (e.payload.message_id, e.type.value, e.payload.recipient,  # type: ignore[union-attr]
         getattr(e.payload, "bounce_class", None))
        for e in found
    )  # fmt: skip
    assert got == expected
    by_file = {e.conversation_id.removeprefix("cnv-"): e.payload for e in found}
    gmail = by_file["modern_gmail_nosuchuser"]
    m365 = by_file["modern_m365_recipientnotfound"]
    yahoo = by_file["modern_exim_yahoo_policy"]
    assert isinstance(gmail, m.BounceDetected) and isinstance(m365, m.BounceDetected)
    assert isinstance(yahoo, m.BounceDetected)
    assert (gmail.bounce_class, gmail.smtp_status) == (HARD, "5.1.1")
    assert (m365.bounce_class, m365.smtp_status) == (HARD, "5.1.10")
    assert (yahoo.bounce_class, yahoo.smtp_status) == (POLICY, "5.7.9")
    emails = {path.read_bytes() for path in corpus}

    def refused_here() -> list[Message]:
        found = records(settings, settings.topics.delivery_notifications_dlq)
        return [r for r in found if r.value() in emails]

    dead = wait_until(
        lambda: (d := refused_here()) and len(d) >= sum(refused.values()) and d,
        timeout=60, interval=1, what="the refused bounce emails on the DLQ",
    )  # fmt: skip
    assert Counter(header(r, h.DLQ_ERROR_CLASS) for r in dead) == refused
