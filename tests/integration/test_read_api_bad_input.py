"""The read API's HTTP boundary against bad input, at the byte level over a real socket
and a real SQLite sink database: every kind gets a clear refusal (a 4xx with a JSON
reason), counted on /metrics by endpoint and reason, with the security headers; good
input afterwards is still served. Then hypothesis-generated paths and headers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.api.guard import REASONS
from connectors.api.http import create_api_app, make_runner
from connectors.sink.store import store_at
from tests.integration.test_read_api import _fill
from tests.support.metrics import scrape
from tests.support.rawhttp import RawReply, exchange, request_bytes, serving

pytestmark = pytest.mark.integration

TOKENS = {"acct-a": "tok-a", "acct-b": "tok-b"}
CONVERSATION = "/api/v1/accounts/acct-a/conversations/cnv-1"
RECEIPTS = CONVERSATION + "/receipts"
MESSAGE = "/api/v1/accounts/acct-a/messages/msg-1"
PAGE = "/accounts/acct-a/conversations/cnv-1"
GOOD = ("Authorization", "Bearer tok-a")
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cache-control",
)


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    status: int
    endpoint: str
    reason: str


def get(
    path: str | bytes, *headers: tuple[str, str | bytes], host: bytes | None = b"localhost"
) -> bytes:
    return request_bytes("GET", path, b"", headers, host=host)


def cases() -> list[Case]:
    no = 401
    out = [
        # -- credentials
        Case("no Authorization", get(CONVERSATION), no, "conversation", "missing-credentials"),
        Case("Bearer \\xff", get(CONVERSATION, ("Authorization", b"Bearer \xff")), no,
             "conversation", "bad-credentials"),
        Case("Bearer UTF-8", get(CONVERSATION, ("Authorization", "Bearer tök".encode())), no,
             "conversation", "bad-credentials"),
        Case("Bearer emoji", get(CONVERSATION, ("Authorization", "Bearer 🔑".encode())), no,
             "conversation", "bad-credentials"),
        Case("another account's token", get(CONVERSATION, ("Authorization", "Bearer tok-b")),
             no, "conversation", "bad-credentials"),
        Case("token of no account", get("/api/v1/accounts/acct-z/conversations/cnv-1", GOOD),
             no, "conversation", "bad-credentials"),
        Case("Basic scheme", get(CONVERSATION, ("Authorization", "Basic dG9rLWE=")), no,
             "conversation", "missing-credentials"),
        Case("Bearer alone", get(CONVERSATION, ("Authorization", "Bearer")), no,
             "conversation", "missing-credentials"),
        Case("Bearer and spaces", get(CONVERSATION, ("Authorization", "Bearer    ")), no,
             "conversation", "missing-credentials"),
        Case("Bearer tab", get(CONVERSATION, ("Authorization", "Bearer\ttok-a")), no,
             "conversation", "missing-credentials"),
        Case("two tokens", get(CONVERSATION, ("Authorization", "Bearer tok-a tok-a")), no,
             "conversation", "bad-credentials"),
        Case("long token", get(CONVERSATION, ("Authorization", "Bearer " + "a" * 4000)), no,
             "conversation", "bad-credentials"),
        Case("prefix of the token", get(CONVERSATION, ("Authorization", "Bearer tok-")), no,
             "conversation", "bad-credentials"),
        Case("query token on JSON", get(CONVERSATION + "?token=tok-a"), no, "conversation",
             "token-in-query"),
        Case("query token on receipts", get(RECEIPTS + "?token=tok-a"), no, "receipts",
             "token-in-query"),
        Case("query token on message", get(MESSAGE + "?token=tok-a"), no, "message",
             "token-in-query"),
        Case("empty query token", get(CONVERSATION + "?token="), no, "conversation",
             "missing-credentials"),
        Case("receipts of another account", get("/api/v1/accounts/acct-b/conversations/cnv-9"
             "/receipts", GOOD), no, "receipts", "bad-credentials"),
        Case("message without token", get(MESSAGE), no, "message", "missing-credentials"),
        Case("page without token", get(PAGE), no, "page", "missing-credentials"),
        Case("page wrong query token", get(PAGE + "?token=nope"), no, "page",
             "bad-credentials"),
        Case("page query token %ff", get(PAGE + "?token=%ff"), no, "page", "bad-credentials"),
        Case("page another account's query token", get(PAGE + "?token=tok-b"), no, "page",
             "bad-credentials"),
        Case("page wrong header beats right query", get(PAGE + "?token=tok-a",
             ("Authorization", "Bearer tok-b")), no, "page", "bad-credentials"),
        # -- Host allow-list (DNS rebinding)
        Case("Host evil", get(CONVERSATION, GOOD, host=b"evil.example"), 421, "conversation",
             "host-not-allowed"),
        Case("Host localhost as a label", get(CONVERSATION, GOOD, host=b"localhost.evil.example"),
             421, "conversation", "host-not-allowed"),
        Case("Host loopback as a label", get(CONVERSATION, GOOD, host=b"127.0.0.1.nip.io"),
             421, "conversation", "host-not-allowed"),
        Case("Host private address", get(CONVERSATION, GOOD, host=b"10.0.0.1:8080"), 421,
             "conversation", "host-not-allowed"),
        Case("Host broken bracket", get(CONVERSATION, GOOD, host=b"[::1:8080"), 421,
             "conversation", "host-not-allowed"),
        Case("Host port not a number", get(CONVERSATION, GOOD, host=b"localhost:http"), 421,
             "conversation", "host-not-allowed"),
        Case("Host empty", get(CONVERSATION, GOOD, host=b""), 421, "conversation",
             "host-not-allowed"),
        # HTTP/1.1 requires a Host: the parser refuses its absence.
        Case("no Host", get(CONVERSATION, GOOD, host=None), 400, "other", "bad-http"),
        Case("Host with user info", get(CONVERSATION, GOOD, host=b"localhost@evil.example"),
             421, "conversation", "host-not-allowed"),
        Case("Host evil on the page", get(PAGE + "?token=tok-a", host=b"evil.example"), 421,
             "page", "host-not-allowed"),
        Case("Host evil on metrics", get("/metrics", host=b"evil.example"), 421, "metrics",
             "host-not-allowed"),
        Case("Host evil on a missing path", get("/nope", host=b"evil.example"), 421, "other",
             "host-not-allowed"),
        # -- paths
        Case("missing conversation", get(CONVERSATION.replace("cnv-1", "nope"), GOOD), 404,
             "conversation", "not-found"),
        Case("missing message", get(MESSAGE.replace("msg-1", "nope"), GOOD), 404, "message",
             "not-found"),
        Case("missing page", get(PAGE.replace("cnv-1", "nope") + "?token=tok-a"), 404, "page",
             "not-found"),
        Case("id %ff", get(CONVERSATION.replace("cnv-1", "%ff"), GOOD), 404, "conversation",
             "not-found"),
        Case("id %00", get(CONVERSATION.replace("cnv-1", "%00"), GOOD), 404, "conversation",
             "not-found"),
        Case("id lone surrogate", get(CONVERSATION.replace("cnv-1", "%ed%a0%80"), GOOD), 404,
             "conversation", "not-found"),
        Case("id 3000 long", get(CONVERSATION.replace("cnv-1", "c" * 3000), GOOD), 404,
             "conversation", "not-found"),
        Case("id unicode", get(CONVERSATION.replace("cnv-1", quote("会話")), GOOD), 404,
             "conversation", "not-found"),
        Case("id quote", get(CONVERSATION.replace("cnv-1", "%27%20OR%201%3D1--"), GOOD), 404,
             "conversation", "not-found"),
        Case("empty id", get("/api/v1/accounts/acct-a/conversations/", GOOD), 404, "other",
             "not-found"),
        Case("extra segment", get(RECEIPTS + "/more", GOOD), 404, "other", "not-found"),
        Case("old version", get(CONVERSATION.replace("v1", "v0"), GOOD), 404, "other",
             "not-found"),
        Case("favicon", get("/favicon.ico"), 404, "other", "not-found"),
        Case("dot segments", get("/api/v1/accounts/acct-a/../../../etc/passwd", GOOD), 404,
             "other", "not-found"),
        # -- methods
        Case("POST", request_bytes("POST", CONVERSATION, b"{}", [GOOD]), 405, "other",
             "method-not-allowed"),
        Case("PUT", request_bytes("PUT", PAGE, b"x", [GOOD]), 405, "other",
             "method-not-allowed"),
        Case("DELETE", request_bytes("DELETE", MESSAGE, b"", [GOOD]), 405, "other",
             "method-not-allowed"),
        Case("PATCH", request_bytes("PATCH", RECEIPTS, b"", [GOOD]), 405, "other",
             "method-not-allowed"),
        # -- refused by the HTTP parser itself
        Case("repeated Content-Type", get(CONVERSATION, GOOD, ("Content-Type", "a/b"),
             ("Content-Type", "c/d")), 400, "other", "bad-http"),
        Case("header over 8 KiB", get(CONVERSATION, ("X-Pad", "p" * 9000)), 400, "other",
             "bad-http"),
        Case("space in the method", b"GE T / HTTP/1.1\r\nHost: localhost\r\n\r\n", 400,
             "other", "bad-http"),
        Case("control byte in a header", get(CONVERSATION, ("Authorization", b"Bearer \x01")),
             400, "other", "bad-http"),
    ]  # fmt: skip
    return out


CASES = cases()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    database = f"sqlite:///{tmp_path_factory.mktemp('api') / 'sink.db'}"
    _fill(database)
    with (
        store_at(database, migrate=False) as store,
        serving(make_runner(create_api_app(store, TOKENS))) as port,
    ):
        yield port


def refused_total(port: int, endpoint: str, reason: str) -> float:
    metrics = scrape(port)  # through the API's own /metrics (Host: 127.0.0.1, allowed)
    return metrics.get(
        f'convotrail_api_refused_total{{endpoint="{endpoint}",reason="{reason}"}}', 0.0
    )


def assert_secured(reply: RawReply) -> None:
    for name in SECURITY_HEADERS:
        assert name in reply.headers, name
    if reply.status != 400:  # the parser's refusals go out before any middleware
        assert "default-src 'none'" in reply.headers["content-security-policy"]


def test_there_are_at_least_50_kinds_of_bad_input() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 50
    assert {case.reason for case in CASES} <= REASONS


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_a_counted_json_refusal(case: Case, api: int) -> None:
    before = refused_total(api, case.endpoint, case.reason)
    reply = exchange(api, case.raw)
    assert (reply.status, reply.json()["reason"]) == (case.status, case.reason), reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    if case.status != 400:
        assert_secured(reply)
    assert refused_total(api, case.endpoint, case.reason) == before + 1
    good = exchange(api, get(CONVERSATION, GOOD))
    assert good.status == 200 and good.json()["state"]["subject"] == "Refund"


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (get(CONVERSATION, ("Authorization", "bearer tok-a")), "lowercase scheme"),
        (get(CONVERSATION, ("Authorization", "BEARER tok-a")), "uppercase scheme"),
        (get(CONVERSATION, ("Authorization", "  Bearer   tok-a  ")), "padded"),
        (get(PAGE + "?token=tok-a"), "the page's query token"),
        (get(CONVERSATION, GOOD, host=b"LOCALHOST:8080"), "Host in capitals"),
        (get(CONVERSATION, GOOD, host=b"localhost."), "Host with the root dot"),
        (get(CONVERSATION, GOOD, host=b"[::1]:8080"), "IPv6 loopback Host"),
        (get("/healthz", host=b"10.1.2.3:8080"), "a probe by pod address"),
        (get("/readyz", host=b"10.1.2.3:8080"), "a readiness probe by pod address"),
    ],
)
def test_good_input_is_served_with_the_security_headers(raw: bytes, what: str, api: int) -> None:
    reply = exchange(api, raw)
    assert reply.status == 200, (what, reply.body[:300])
    assert_secured(reply)


def test_the_page_may_use_its_own_style_and_nothing_else(api: int) -> None:
    reply = exchange(api, get(PAGE + "?token=tok-a"))
    policy = reply.headers["content-security-policy"]
    assert "style-src 'sha256-" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["cache-control"] == "no-store"


# --------------------------------------------------------------------------- hypothesis

header_bytes = st.binary(max_size=200).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()
)
segments = st.text(max_size=40).map(lambda s: quote(s, safe=""))
COMMON = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@COMMON
@given(
    route=st.sampled_from(
        [
            "/api/v1/accounts/{a}/conversations/{b}",
            "/api/v1/accounts/{a}/conversations/{b}/receipts",
            "/api/v1/accounts/{a}/messages/{b}",
            "/accounts/{a}/conversations/{b}",
            "/{a}/{b}",
        ]
    ),
    account=st.one_of(st.just("acct-a"), segments),
    ident=st.one_of(st.just("cnv-1"), segments),
    authorization=st.one_of(st.none(), header_bytes, header_bytes.map(lambda b: b"Bearer " + b)),
    host=st.one_of(st.just(b"localhost"), header_bytes),
    query=st.one_of(st.just(""), segments.map(lambda s: "?token=" + s)),
)
def test_generated_requests_are_answered_and_refusals_explained(
    api: int,
    route: str,
    account: str,
    ident: str,
    authorization: bytes | None,
    host: bytes,
    query: str,
) -> None:
    path = route.format(a=account or "x", b=ident or "x") + query
    headers = [("Authorization", authorization)] if authorization is not None else []
    reply = exchange(api, get(path, *headers, host=host))
    assert reply.status in (200, 400, 401, 404, 421), reply.body[:300]
    if reply.status != 200:
        assert reply.json()["reason"] in REASONS
    if reply.status != 400:
        assert_secured(reply)
