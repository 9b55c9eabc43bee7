"""Two tenants that reuse every kind of id, through the whole slice as deployed.

Accounts acct-a and acct-b each publish (the producer SDK, as `convotrail produce`
does) a conversation `cnv-shared` with the same event ids, a reminder `rem-1`, a
pinned note `note-1`, an outbound message `msg-shared-1` that a customer `cus-1`
views, and provider notifications about `msg-shared-1` that say their account.
The real conversation, bounce and receipts workers, the SQL sink and the read API
run on them; each account must see exactly its own timeline, state, receipts and
delivery status, the CLI must ask for --account, and a notification about the
shared ref that names no account must be dead-lettered, not guessed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.api.http import create_api_app
from connectors.delivery_samples import sendgrid_event
from connectors.intake.records import NotificationPublisher
from connectors.sink.runner import run_sink
from connectors.sink.store import store_at
from convotrail.settings import Settings
from processors.delivery.notification import ACCOUNT_ID_ARG, MESSAGE_ID_ARG
from schemas import headers as h
from schemas import keys
from schemas import model as m
from tests.support.delivery import decoder, publish, records
from tests.support.kafka import consume
from tests.support.waiting import wait_until
from tests.support.worker import running_worker, worker_env

pytestmark = pytest.mark.e2e

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
ACCOUNTS = ("acct-a", "acct-b")
TOKENS = {"acct-a": "token-a", "acct-b": "token-b"}
CONVERSATION, MESSAGE = "cnv-shared", "msg-shared-1"
DANA = m.Actor(kind=m.ActorKind.STAFF, id="stf-1", name="Dana")
JO = m.Actor(kind=m.ActorKind.CUSTOMER, id="cus-1", name="Jo")


def _event(account: str, event_id: str, minute: int, payload: m.Payload,
           actor: m.Actor = DANA) -> m.ConversationEvent:  # fmt: skip
    return m.ConversationEvent(
        event_id=event_id, conversation_id=CONVERSATION, account_id=account,
        type=m.TYPE_BY_PAYLOAD[type(payload)], occurred_at=T0 + timedelta(minutes=minute),
        actor=actor, payload=payload,
    )  # fmt: skip


def history(account: str) -> list[m.ConversationEvent]:
    """The same ids in both accounts; what differs is the subject, tag, mail and views."""
    letter = account[-1]
    view = m.MessageViewed(message_id=MESSAGE, viewer_kind=m.ViewerKind.CUSTOMER,
                           viewer_id="cus-1", source=m.ViewSource.APP)  # fmt: skip
    views = 2 if letter == "a" else 1
    return [
        _event(account, "evt-1", 0, m.ConversationCreated(
            channel=m.Channel.EMAIL, inbox=m.InboxRef(id="inb-1", name="Support"),
            subject=f"Subject of {account}", customer_id="cus-1",
            customer_email="jo@example.com")),
        _event(account, "evt-2", 1, m.TagAdded(tag=f"tag-{letter}")),
        _event(account, "evt-3", 2, m.ReminderAdded(
            reminder_id="rem-1", due_at=T0 + timedelta(days=30), note=f"call {letter}")),
        _event(account, "evt-4", 3, m.MessageAdded(
            message_id=MESSAGE, direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY, channel=m.Channel.EMAIL,
            recipients=("jo@example.com",), email_message_id=f"{letter}1@mail.example")),
        _event(account, "evt-5", 4, m.NotePinned(note_id="note-1")),
        *[_event(account, f"evt-view-{n}", 10 + n, view, JO) for n in range(views)],
    ]  # fmt: skip


def notification(account: str | None, kind: str, event_id: str) -> bytes:
    """A SendGrid event about msg-shared-1, stamped with the platform's message id and,
    unless None, its account (custom args)."""
    args: dict[str, object] = {MESSAGE_ID_ARG: MESSAGE}
    if account is not None:
        args[ACCOUNT_ID_ARG] = account
    if kind == "bounce":
        args |= {"reason": "550 5.1.1 no such user", "status": "5.1.1"}
    event = sendgrid_event(kind, email_message_id=f"{(account or 'x')[-1]}1@mail.example",
                           recipient="jo@example.com", at=T0 + timedelta(minutes=5),
                           event_id=event_id, **args)  # fmt: skip
    return json.dumps([event]).encode()


async def _get(server: TestServer, path: str, token: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(path), headers=headers) as response,
    ):
        body = await (response.json() if response.content_type == "application/json"
                      else response.text())  # fmt: skip
        return response.status, body


def api(database: str, calls: list[tuple[str, str]]) -> list[tuple[int, Any]]:
    async def go() -> list[tuple[int, Any]]:
        with store_at(database, migrate=False) as store:
            server = TestServer(create_api_app(store, TOKENS))
            await server.start_server()
            try:
                return [await _get(server, path, token) for path, token in calls]
            finally:
                await server.close()

    return asyncio.run(go())


def cli(settings: Settings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "convotrail", *args],
                          env=worker_env(settings, home), capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_two_accounts_reusing_every_id_each_see_exactly_their_own(
    topics: Settings, tmp_path: Path
) -> None:
    names = topics.topics
    with (
        running_worker(topics, tmp_path / "conversation"),
        running_worker(topics, tmp_path / "bounces", processor="bounces"),
        running_worker(topics, tmp_path / "receipts", processor="receipts"),
    ):
        publish(topics, [e for account in ACCOUNTS for e in history(account)])
        # Both accounts' routes for the shared ref, before any notification names it.
        decode_route = decoder(topics, names.message_routes, m.MessageRoute)
        wait_until(
            lambda: {
                decode_route(r.value() or b"").account_id
                for r in records(topics, names.message_routes)
                if r.key() == keys.message_ref(MESSAGE)
            } == set(ACCOUNTS),
            timeout=90, interval=1, what="both accounts' routes of msg-shared-1",
        )  # fmt: skip
        with NotificationPublisher(topics) as intake:
            intake.publish("sendgrid", notification("acct-a", "delivered", "sg-a-1"))
            intake.publish("sendgrid", notification("acct-b", "bounce", "sg-b-1"))
            intake.publish("sendgrid", notification(None, "delivered", "sg-none-1"))
        decode_status = decoder(topics, names.delivery_status, m.DeliveryStatus)

        def statuses() -> dict[str, m.DeliveryStatus] | None:
            decoded = [
                decode_status(r.value() or b"") for r in records(topics, names.delivery_status)
            ]
            found = {s.account_id: s for s in decoded}
            a, b = found.get("acct-a"), found.get("acct-b")
            if a and b and a.state is m.DeliveryState.DELIVERED:
                return found if b.state is m.DeliveryState.BOUNCED else None
            return None

        wait_until(statuses, timeout=120, interval=1, what="both accounts' delivery status")
        decode_receipt = decoder(topics, names.read_receipts, m.ReadReceipt)

        def receipt_views() -> set[tuple[str, int]]:
            found = records(topics, names.read_receipts)
            return {(x.account_id, x.view_count) for x in
                    (decode_receipt(r.value() or b"") for r in found)}  # fmt: skip

        wanted = {("acct-a", 2), ("acct-b", 1)}
        wait_until(lambda: receipt_views() >= wanted, timeout=90, interval=1,
                   what="both accounts' receipts")  # fmt: skip
        dead = consume(topics, names.delivery_notifications_dlq, 1, timeout=60)

    # The notification that names no account is not guessed: dead-lettered, with why.
    (ambiguous,) = dead
    error = dict(ambiguous.headers() or [])[h.DLQ_ERROR]
    reason = error.decode() if isinstance(error, bytes) else str(error)
    assert reason.startswith("ambiguous-route"), reason
    assert "acct-a" in reason and "acct-b" in reason

    database = f"sqlite:///{tmp_path / 'sink.db'}"
    run_sink(topics, database, group_id=f"{names.prefix}sink", max_idle_seconds=3)
    with store_at(database, migrate=False) as store:
        for account in ACCOUNTS:
            letter = account[-1]
            entries = store.timeline(CONVERSATION, account_id=account)
            assert {e.account_id for e in entries} == {account}
            views = 2 if letter == "a" else 1
            assert [e.event_id for e in entries if not e.event_id.startswith("sendgrid")] == [
                "evt-1", "evt-2", "evt-3", "evt-4", "evt-5",
                *[f"evt-view-{n}" for n in range(views)],
            ]  # fmt: skip
            state = store.state(CONVERSATION, account_id=account)
            assert state is not None and state.account_id == account
            assert state.subject == f"Subject of {account}" and state.tags == (f"tag-{letter}",)
            assert [r.note for r in state.pending_reminders] == [f"call {letter}"]
            assert state.pinned_note_ids == ("note-1",)
            (receipt,) = store.receipts(MESSAGE, account_id=account)
            assert (receipt.account_id, receipt.view_count) == (account, views)
            (status,) = store.delivery(MESSAGE, account_id=account)
            expected = m.DeliveryState.DELIVERED if letter == "a" else m.DeliveryState.BOUNCED
            assert (status.account_id, status.state) == (account, expected)

    # The read API: each token sees its account's data, and only with its own token.
    base = "/api/v1/accounts/{}/"
    a_conv, b_conv, a_msg, b_msg, a_as_b = api(database, [
        (base.format("acct-a") + f"conversations/{CONVERSATION}", "token-a"),
        (base.format("acct-b") + f"conversations/{CONVERSATION}", "token-b"),
        (base.format("acct-a") + f"messages/{MESSAGE}", "token-a"),
        (base.format("acct-b") + f"messages/{MESSAGE}", "token-b"),
        (base.format("acct-b") + f"conversations/{CONVERSATION}", "token-a"),
    ])  # fmt: skip
    for (code, body), account in ((a_conv, "acct-a"), (b_conv, "acct-b")):
        assert code == 200
        assert body["state"]["account_id"] == account
        assert body["state"]["subject"] == f"Subject of {account}"
        assert {e["account_id"] for e in body["timeline"]} == {account}
    for (code, body), account, views in ((a_msg, "acct-a", 2), (b_msg, "acct-b", 1)):
        assert code == 200
        assert [(r["account_id"], r["view_count"]) for r in body["receipts"]] == [(account, views)]
        assert [s["account_id"] for s in body["delivery"]] == [account]
    assert a_as_b[0] == 401

    # The CLI: an id of two accounts needs --account, in one line and a non-zero exit.
    home, url = tmp_path / "cli", ["--database-url", database]
    for command in (["timeline", CONVERSATION], ["state", CONVERSATION],
                    ["receipts", MESSAGE], ["delivery", "status", MESSAGE]):  # fmt: skip
        refused = cli(topics, home, *command, *url)
        assert refused.returncode != 0, command
        assert refused.stderr.count("\n") == 1 and "--account" in refused.stderr, refused.stderr
        shown = cli(topics, home, *command, *url, "--account", "acct-b", "--json")
        assert shown.returncode == 0, shown.stderr
        assert "acct-b" in shown.stdout and "acct-a" not in shown.stdout, command
