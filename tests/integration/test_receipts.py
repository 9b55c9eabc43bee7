"""Read receipts and delivery status through the real broker, the receipts worker,
the SQL sink and the CLI: duplicates folded, out-of-order views, teammates apart
from the customer, a mail scanner's prefetch not counted as "Viewed"."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.sink.runner import run_sink
from connectors.sink.store import store_at
from convotrail.settings import Settings
from schemas import model as m
from tests.support.delivery import decoder, outbound_email, publish, records
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, worker_env

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIMECAST = "Mozilla/5.0 (compatible; Mimecast URL Protect)"
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
SYSTEM = m.Actor(kind=m.ActorKind.SYSTEM, id="platform")


def _event(event_id: str, payload: m.Payload, at: datetime) -> m.ConversationEvent:
    return m.ConversationEvent(
        event_id=event_id, conversation_id="cnv-r", account_id="acct-r",
        type=m.TYPE_BY_PAYLOAD[type(payload)], occurred_at=at, actor=SYSTEM, payload=payload,
    )  # fmt: skip


def _view(event_id: str, message: str, at: datetime, kind: m.ViewerKind, viewer: str,
          agent: str | None, source: m.ViewSource) -> m.ConversationEvent:  # fmt: skip
    payload = m.MessageViewed(message_id=message, viewer_kind=kind, viewer_id=viewer,
                              source=source, user_agent=agent)  # fmt: skip
    return _event(event_id, payload, at)


def customer_view(event_id: str, at: datetime, agent: str = BROWSER) -> m.ConversationEvent:
    return _view(event_id, "msg-r1", at, m.ViewerKind.CUSTOMER, "cus-jo", agent,
                 m.ViewSource.TRACKING_PIXEL)  # fmt: skip


def teammate_view(event_id: str, viewer: str, at: datetime) -> m.ConversationEvent:
    return _view(event_id, "msg-in1", at, m.ViewerKind.STAFF, viewer, None, m.ViewSource.APP)


def _cli(settings: Settings, home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "convotrail", *args],
                          env=worker_env(settings, home), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_views_and_deliveries_become_receipts_and_statuses_in_the_database(
    topics: Settings, tmp_path: Path
) -> None:
    reply = outbound_email("cnv-r", "msg-r1", "r1@mail.example", ("jo@example.com",),
                           account_id="acct-r", at=T0)  # fmt: skip
    to_jo = {"message_id": "msg-r1", "recipient": "jo@example.com", "provider": "ses"}
    delivered = _event("dlv-1", m.MessageDelivered(**to_jo), T0 + timedelta(seconds=3))
    sent = _event("snt-1", m.MessageSent(**to_jo), T0 + timedelta(seconds=1))
    early, late = T0 + timedelta(hours=1, milliseconds=250), T0 + timedelta(hours=4)
    history = [
        reply,
        delivered,
        sent,  # late report of an earlier state: the status stays DELIVERED
        customer_view("v-scan", T0 + timedelta(seconds=5), agent=MIMECAST),  # prefetch
        customer_view("v-late", late),
        customer_view("v-early", early),  # out of order
        customer_view("v-early", early),  # duplicate
        teammate_view("t-dana", "stf-dana", T0 + timedelta(minutes=2)),
        teammate_view("t-lee", "stf-lee", T0 + timedelta(minutes=3)),
        teammate_view("t-dana-2", "stf-dana", T0 + timedelta(minutes=9)),
    ]
    with running_worker(topics, tmp_path / "receipts", processor="receipts"):
        publish(topics, history)
        decode = decoder(topics, topics.topics.read_receipts, m.ReadReceipt)

        def latest() -> dict[bytes, m.ReadReceipt]:
            found = records(topics, topics.topics.read_receipts)
            return {r.key(): decode(r.value()) for r in found}

        def settled() -> dict[bytes, m.ReadReceipt] | None:
            now = latest()
            customer = now.get(b"acct-r|msg-r1|CUSTOMER|cus-jo")
            dana = now.get(b"acct-r|msg-in1|STAFF|stf-dana")
            if customer and customer.view_count == 2 and dana and dana.view_count == 2:
                return now
            return None

        receipts = wait_until(settled, timeout=90, interval=1, what="the receipts")
    customer = receipts[b"acct-r|msg-r1|CUSTOMER|cus-jo"]
    assert (customer.first_viewed_at, customer.last_viewed_at) == (early, late)
    assert (customer.view_count, customer.automated_view_count) == (2, 1)
    assert set(receipts) == {b"acct-r|msg-r1|CUSTOMER|cus-jo", b"acct-r|msg-in1|STAFF|stf-dana",
                             b"acct-r|msg-in1|STAFF|stf-lee"}  # fmt: skip
    lee = receipts[b"acct-r|msg-in1|STAFF|stf-lee"]
    assert lee.first_viewed_at == T0 + timedelta(minutes=3) and lee.view_count == 1

    database = f"sqlite:///{tmp_path / 'sink.db'}"
    stats = run_sink(topics, database, group_id="sink-r", max_idle_seconds=2)
    assert stats.receipts >= 3 and stats.statuses >= 1
    with store_at(database, migrate=False) as store:
        (status,) = store.delivery("msg-r1")
        stored = store.receipts("msg-r1")
    assert status.state is m.DeliveryState.DELIVERED
    assert (status.sent_at, status.delivered_at) == (T0 + timedelta(seconds=1),
                                                     T0 + timedelta(seconds=3))  # fmt: skip
    assert stored == [customer]

    home = tmp_path / "cli"
    env_db = ["--database-url", database]
    shown = _cli(topics, home, "receipts", "msg-r1", *env_db)
    assert shown.strip() == (
        "customer cus-jo: Viewed 2026-11-02 10:00:00, last 2026-11-02 13:00:00, 2 times "
        "(1 automated fetches not counted)"
    )
    teammates = _cli(topics, home, "receipts", "msg-in1", *env_db).splitlines()
    assert teammates == [
        "teammate stf-dana: Viewed 2026-11-02 09:02:00, last 2026-11-02 09:09:00, 2 times",
        "teammate stf-lee: Viewed 2026-11-02 09:03:00, last 2026-11-02 09:03:00, once",
    ]
    delivery = _cli(topics, home, "delivery", "msg-r1", *env_db)
    assert delivery.strip() == (
        "jo@example.com: DELIVERED via ses at 2026-11-02 09:00:03; sent 2026-11-02 09:00:01; "
        "delivered 2026-11-02 09:00:03"
    )
