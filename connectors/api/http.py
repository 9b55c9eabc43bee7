"""The read API and the conversation page over the sink database (aiohttp).

    GET /api/v1/accounts/{account}/conversations/{conversation}           state + timeline
    GET /api/v1/accounts/{account}/conversations/{conversation}/receipts  receipts + delivery
    GET /api/v1/accounts/{account}/messages/{message}                     receipts + delivery
    GET /accounts/{account}/conversations/{conversation}                  the HTML page
    GET /healthz

Tenant scoped: every query filters by the account in the path, so one account
never reads another's rows (a conversation of another account is a 404, not a
403: its existence is not told either). With `tokens` set (CONVOTRAIL_API_TOKENS,
`account=token,...`) a request needs `Authorization: Bearer <token>` (or, for the
page in a browser, `?token=`) of that account; without, the API is open and
meant for 127.0.0.1 only (the local default), which the CLI says on start.

Thin: decode the path, read the store (in a thread: SQLAlchemy is blocking),
render. The renderers are pure (page.py, query.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from connectors.api.page import render_conversation
from connectors.sink.snapshot import to_json_value
from connectors.sink.store import Store

STORE = web.AppKey("store", Store)
TOKENS = web.AppKey("tokens", dict)


def parse_tokens(raw: str | None) -> dict[str, str]:
    """'acct-1=tok1,acct-2=tok2' -> {account: token}; ValueError naming the bad part."""
    tokens: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        account, sep, token = part.strip().partition("=")
        if not sep or not account or not token:
            raise ValueError(f"CONVOTRAIL_API_TOKENS: {part.strip()!r} is not account=token")
        tokens[account] = token
    return tokens


def _authorize(request: web.Request, account: str) -> None:
    tokens: dict[str, str] = request.app[TOKENS]
    if not tokens:
        return
    header = request.headers.get("Authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    given = given or request.query.get("token", "")
    expected = tokens.get(account)
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "unauthorized"}), content_type="application/json"
        )


def _json(value: Any) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def _not_found(what: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": f"{what} not found"}),
                            content_type="application/json")  # fmt: skip


def _conversation(store: Store, account: str, conversation: str) -> dict[str, Any] | None:
    # Every lookup is scoped by the caller's account (ids are unique per account only).
    entries = store.timeline(conversation, account_id=account)
    state = store.state(conversation, account_id=account)
    if not entries and state is None:
        return None
    receipts = store.conversation_receipts(conversation, account_id=account)
    statuses = store.conversation_deliveries(conversation, account_id=account)
    return {"state": state, "entries": entries, "receipts": receipts, "statuses": statuses}


def _records(records: list[Any]) -> list[Any]:
    return [to_json_value(r.to_avro()) for r in records]


async def conversation_json(request: web.Request) -> web.Response:
    account, conversation = request.match_info["account"], request.match_info["conversation"]
    _authorize(request, account)
    found = await asyncio.to_thread(_conversation, request.app[STORE], account, conversation)
    if found is None:
        raise _not_found("conversation")
    state = found["state"]
    return _json({
        "state": to_json_value(state.to_avro()) if state is not None else None,
        "timeline": _records(found["entries"]),
    })  # fmt: skip


async def conversation_receipts(request: web.Request) -> web.Response:
    account, conversation = request.match_info["account"], request.match_info["conversation"]
    _authorize(request, account)
    found = await asyncio.to_thread(_conversation, request.app[STORE], account, conversation)
    if found is None:
        raise _not_found("conversation")
    return _json({"receipts": _records(found["receipts"]),
                  "delivery": _records(found["statuses"])})  # fmt: skip


async def message(request: web.Request) -> web.Response:
    account, message_id = request.match_info["account"], request.match_info["message"]
    _authorize(request, account)
    store = request.app[STORE]

    def read() -> tuple[list[Any], list[Any]]:
        receipts = store.receipts(message_id, account_id=account)
        statuses = store.delivery(message_id, account_id=account)
        return receipts, statuses

    receipts, statuses = await asyncio.to_thread(read)
    if not receipts and not statuses:
        raise _not_found("message")
    return _json({"receipts": _records(receipts), "delivery": _records(statuses)})


async def page(request: web.Request) -> web.Response:
    account, conversation = request.match_info["account"], request.match_info["conversation"]
    _authorize(request, account)
    found = await asyncio.to_thread(_conversation, request.app[STORE], account, conversation)
    if found is None:
        raise web.HTTPNotFound(text="conversation not found")
    html = render_conversation(found["state"], found["entries"], found["receipts"],
                               found["statuses"])  # fmt: skip
    return web.Response(text=html, content_type="text/html")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_api_app(store: Store, tokens: Mapping[str, str] | None = None) -> web.Application:
    app = web.Application()
    app[STORE] = store
    app[TOKENS] = dict(tokens or {})
    base = "/api/v1/accounts/{account}"
    app.router.add_get(f"{base}/conversations/{{conversation}}", conversation_json)
    app.router.add_get(f"{base}/conversations/{{conversation}}/receipts", conversation_receipts)
    app.router.add_get(f"{base}/messages/{{message}}", message)
    app.router.add_get("/accounts/{account}/conversations/{conversation}", page)
    app.router.add_get("/healthz", healthz)
    return app


async def serve_api(store: Store, tokens: Mapping[str, str], host: str, port: int) -> None:
    runner = web.AppRunner(create_api_app(store, tokens))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
