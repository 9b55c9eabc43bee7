"""The read API and the conversation page over a real SQLite sink database, through
a real HTTP server: tenant scoping, tokens, JSON, and the page's "Viewed" indicator
with its exact time on hover (a mail scanner's fetch never shows as viewed)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.api.http import create_api_app, parse_tokens
from connectors.sink.batch import SinkBatch
from connectors.sink.store import store_at
from schemas import model as m
from tests.support.postgres import PostgresServer
from tests.support.sink import conversation_state, timeline_entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
READY_TTL = 2.1  # a /readyz answer is reused for 2 s (connectors/serving.py)


def _fill(database: str) -> None:
    reply = dataclasses.replace(
        timeline_entry("cnv-1", 1, account_id="acct-a"),
        event_id="evt-reply", type=m.EventType.MESSAGE_ADDED, message_id="msg-1",
        text="Dana replied <b>to</b> the customer",
    )  # fmt: skip
    other = timeline_entry("cnv-9", 1, account_id="acct-b")
    batch = SinkBatch("api-test")
    batch.add_timeline_entry(reply, "t", 0, 0)
    batch.add_timeline_entry(timeline_entry("cnv-1", 2, account_id="acct-a"), "t", 0, 1)
    batch.add_timeline_entry(other, "t", 0, 2)
    batch.add_state(conversation_state("cnv-1", 2, account_id="acct-a", subject="Refund"),
                    "s", 0, 0)  # fmt: skip
    batch.add_state(conversation_state("cnv-9", 1, account_id="acct-b"), "s", 0, 1)
    base = {"message_id": "msg-1", "conversation_id": "cnv-1", "account_id": "acct-a"}
    viewed = m.ReadReceipt(**base, viewer_kind=m.ViewerKind.CUSTOMER, viewer_id="cus-1",
                           first_viewed_at=T0 + timedelta(hours=1, milliseconds=250),
                           last_viewed_at=T0 + timedelta(hours=2), view_count=2,
                           automated_view_count=1, last_event_id="v2")  # fmt: skip
    batch.add_receipt(viewed, "r", 0, 0)
    batch.add_receipt(m.ReadReceipt(**base, viewer_kind=m.ViewerKind.STAFF, viewer_id="stf-scan",
                                    view_count=0, automated_view_count=0,
                                    last_event_id="v0"), "r", 0, 1)  # fmt: skip
    batch.add_status(m.DeliveryStatus(**base, recipient="jo@example.com",
                                      state=m.DeliveryState.BOUNCED, provider="ses",
                                      bounce_class=m.BounceClass.HARD, smtp_status="5.1.1",
                                      diagnostic="user unknown", updated_at=T0,
                                      last_event_id="b1"), "d", 0, 0)  # fmt: skip
    with store_at(database) as store:
        store.apply(batch)


async def _get(server: TestServer, path: str, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(path), headers=headers) as response,
    ):
        body = await (response.json() if response.content_type == "application/json"
                      else response.text())  # fmt: skip
        return response.status, body


def _run(
    database: str, tokens: dict[str, str], calls: list[tuple[str, dict[str, str]]]
) -> list[Any]:
    async def go() -> list[Any]:
        with store_at(database, migrate=False) as store:
            server = TestServer(create_api_app(store, tokens))
            await server.start_server()
            try:
                return [await _get(server, path, **headers) for path, headers in calls]
            finally:
                await server.close()

    return asyncio.run(go())


def test_the_api_serves_one_account_its_conversation_and_receipts(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sink.db'}"
    _fill(database)
    (conversation, receipts, message, foreign, missing) = _run(database, {}, [
        ("/api/v1/accounts/acct-a/conversations/cnv-1", {}),
        ("/api/v1/accounts/acct-a/conversations/cnv-1/receipts", {}),
        ("/api/v1/accounts/acct-a/messages/msg-1", {}),
        ("/api/v1/accounts/acct-a/conversations/cnv-9", {}),  # acct-b's
        ("/api/v1/accounts/acct-b/messages/msg-1", {}),  # acct-a's
    ])  # fmt: skip
    status, body = conversation
    assert status == 200
    assert [e["event_id"] for e in body["timeline"]] == ["evt-reply", "evt-cnv-1-2"]
    assert body["timeline"][0]["message_id"] == "msg-1"
    assert body["state"]["subject"] == "Refund"
    status, body = receipts
    assert status == 200 and len(body["receipts"]) == 2
    assert body["delivery"][0]["state"] == "BOUNCED"
    assert message[0] == 200 and message[1]["delivery"] == body["delivery"]
    assert foreign[0] == 404 and missing[0] == 404  # another tenant's rows are not there


def test_the_page_shows_viewed_with_the_exact_time_on_hover(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sink.db'}"
    _fill(database)
    ((status, html),) = _run(database, {}, [("/accounts/acct-a/conversations/cnv-1", {})])
    assert status == 200
    assert '<span class="badge viewed" title="First viewed 2026-11-02 10:00:00.250 UTC, ' \
           'last 2026-11-02 11:00:00.000 UTC, 2 views">Viewed</span>' in html  # fmt: skip
    assert "Seen by stf-scan" not in html  # no human view: no indicator
    assert 'class="badge bounced" title="bounced 2026-11-02 09:00:00.000 UTC via ses; hard ' \
           'bounce; 5.1.1; user unknown">Bounced: jo@example.com</span>' in html  # fmt: skip
    assert "Dana replied &lt;b&gt;to&lt;/b&gt; the customer" in html  # escaped
    assert "<title>Refund</title>" in html


def test_with_tokens_each_account_needs_its_own(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'sink.db'}"
    _fill(database)
    tokens = parse_tokens("acct-a=tok-a,acct-b=tok-b")
    path = "/api/v1/accounts/acct-a/conversations/cnv-1"
    results = _run(database, tokens, [
        (path, {}),
        (path, {"Authorization": "Bearer tok-b"}),  # another account's token
        (path, {"Authorization": "Bearer tok-a"}),
        ("/accounts/acct-a/conversations/cnv-1?token=tok-a", {}),
    ])  # fmt: skip
    assert [status for status, _ in results] == [401, 401, 200, 200]
    with pytest.raises(ValueError, match="'acct-c' is not account=token"):
        parse_tokens("acct-a=x,acct-c")


def _samples(text: str, name: str) -> dict[str, float]:
    """The samples of one metric family in a /metrics page, by their label text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = float(value)
    return found


def test_readiness_follows_the_database_and_requests_are_timed_by_endpoint_and_status(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    _fill(postgres_url)
    conversation = "/api/v1/accounts/acct-a/conversations/cnv-1"

    async def go() -> dict[str, Any]:
        with store_at(postgres_url, migrate=False) as store:
            server = TestServer(create_api_app(store, {}))
            await server.start_server()
            seen: dict[str, Any] = {}
            try:
                seen["ready"] = await _get(server, "/readyz")
                seen["before"] = (await _get(server, "/metrics"))[1]
                seen["served"] = await _get(server, conversation)
                seen["missing"] = await _get(server, conversation + "x")
                postgres_server.pause()
                try:
                    await asyncio.sleep(READY_TTL)  # past the cached answer
                    seen["down"] = await _get(server, "/readyz")
                    seen["while down"] = await _get(server, conversation)
                finally:
                    postgres_server.resume()
                await asyncio.sleep(READY_TTL)
                seen["back"] = await _get(server, "/readyz")
                seen["after"] = (await _get(server, "/metrics"))[1]
            finally:
                await server.close()
            return seen

    seen = asyncio.run(go())
    assert seen["ready"] == (200, {"ready": True, "detail": "the database answers"})
    assert seen["served"][0] == 200 and seen["missing"][0] == 404
    status, body = seen["down"]
    assert status == 503 and body["ready"] is False, body
    assert "127.0.0.1" not in body["detail"]  # the database's address stays in the log
    assert seen["while down"] == (503, {"error": "unavailable", "reason": "database-unavailable"})
    assert seen["back"][0] == 200
    name = "convotrail_api_request_seconds_count"
    before, after = _samples(seen["before"], name), _samples(seen["after"], name)

    def moved(endpoint: str, code: str) -> float:
        labels = f'{{code="{code}",endpoint="{endpoint}"}}'
        return after.get(labels, 0) - before.get(labels, 0)

    assert moved("conversation", "2xx") == 1
    assert moved("conversation", "4xx") == 1
    assert moved("conversation", "5xx") == 1
    assert moved("readyz", "5xx") == 1 and moved("readyz", "2xx") == 1
    assert moved("metrics", "2xx") == 1  # the first scrape, counted once it was answered
    assert 'convotrail_build_info{version="' in seen["after"]
