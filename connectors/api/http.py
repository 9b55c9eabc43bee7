"""The read API and the conversation page over the sink database (aiohttp).

    GET /api/v1/accounts/{account}/conversations/{conversation}           state + timeline
    GET /api/v1/accounts/{account}/conversations/{conversation}/receipts  receipts + delivery
    GET /api/v1/accounts/{account}/messages/{message}                     receipts + delivery
    GET /accounts/{account}/conversations/{conversation}                  the HTML page
    GET /healthz                                                          alive
    GET /readyz                                    ready: the database answers SELECT 1
    GET /metrics                                                          Prometheus

Tenant scoped: every query filters by the account in the path, so one account
never reads another's rows (a conversation of another account is a 404, not a
403: its existence is not told either). With `tokens` set (CONVOTRAIL_API_TOKENS,
`account=token,...`) a request needs `Authorization: Bearer <token>` (or, for the
page in a browser only, `?token=`) of that account; without, the API is open and
meant for 127.0.0.1 only (the local default), which the CLI says on start. Tokens,
the Host allow-list, security headers and refusals: `guard`.

Thin: decode the path, read the store (in a thread: SQLAlchemy is blocking),
render. The renderers are pure (page.py, query.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

from connectors.api import guard
from connectors.api.page import STYLE, render_conversation
from connectors.serving import BAD_HTTP, Runner, add_metrics_and_readiness, start_site
from connectors.sink.failures import reason
from connectors.sink.snapshot import to_json_value
from connectors.sink.store import Store

log = logging.getLogger(__name__)

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


def _authorize(request: web.Request, account: str, *, page: bool = False) -> None:
    tokens: dict[str, str] = request.app[TOKENS]
    guard.authorize(
        tokens,
        account,
        request.headers.get("Authorization"),
        request.query.get("token"),
        allow_query_token=page,
    )


def _json(value: Any) -> web.Response:
    return web.json_response(value, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def _not_found(what: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": f"{what} not found", "reason": "not-found"}),
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
    _authorize(request, account, page=True)
    found = await asyncio.to_thread(_conversation, request.app[STORE], account, conversation)
    if found is None:
        raise _not_found("conversation")
    html = render_conversation(found["state"], found["entries"], found["receipts"],
                               found["statuses"])  # fmt: skip
    return web.Response(text=html, content_type="text/html")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def database_answers(store: Store) -> tuple[bool, str]:
    """/readyz: the database answers a trivial query (blocking: run off the loop). The
    database's message goes to the log, not to the unauthenticated reply."""
    try:
        store.ping()
    except Exception as exc:  # any failure to answer means: not ready
        log.warning("readiness: the database does not answer: %s", reason(exc))
        return False, f"the database does not answer ({type(exc).__name__})"
    return True, "the database answers"


def create_api_app(
    store: Store,
    tokens: Mapping[str, str] | None = None,
    allowed_hosts: Collection[str] = guard.LOOPBACK_HOSTS,
) -> web.Application:
    """`allowed_hosts`: the Host names served (empty: any); see guard."""
    app = web.Application(middlewares=[guard.guard])
    app[STORE] = store
    app[TOKENS] = dict(tokens or {})
    app[guard.ALLOWED_HOSTS] = frozenset(h.lower() for h in allowed_hosts)
    app[guard.STYLE_HASH] = guard.style_hash(STYLE)
    base = "/api/v1/accounts/{account}"
    add = app.router.add_get
    add(f"{base}/conversations/{{conversation}}", conversation_json, name="conversation")
    add(f"{base}/conversations/{{conversation}}/receipts", conversation_receipts, name="receipts")
    add(f"{base}/messages/{{message}}", message, name="message")
    add("/accounts/{account}/conversations/{conversation}", page, name="page")
    add("/healthz", healthz, name="healthz")
    add_metrics_and_readiness(app, lambda: database_answers(store))
    return app


# The bound on reading a request's headers (aiohttp's keep-alive timer runs from the
# connection's start until they are complete) and on an idle keep-alive connection.
READ_TIMEOUT = 10.0


def make_runner(app: web.Application) -> Runner:
    return Runner(
        app,
        on_bad_http=guard.REFUSED.labels("other", BAD_HTTP).inc,
        keepalive_timeout=READ_TIMEOUT,
        lingering_time=1.0,  # as the intake's: a slow body is not waited for for 10 s
        # No access log: the page's URL may carry ?token= (and every path an account's
        # ids); convotrail_api_request_seconds counts the requests instead.
        access_log=None,
    )


async def serve_api(
    store: Store,
    tokens: Mapping[str, str],
    host: str,
    port: int,
    allowed_hosts: Collection[str] = guard.LOOPBACK_HOSTS,
) -> None:
    """Serve until cancelled; CannotListen (one line) if the port cannot be bound."""
    runner = make_runner(create_api_app(store, tokens, allowed_hosts))
    await runner.setup()
    try:
        await start_site(runner, host, port, "read API")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
