"""The read API's HTTP guard: who may ask (bearer tokens), from which Host, what every
reply carries (security headers), and how a refusal looks (JSON, counted).

Pure functions plus one aiohttp middleware; the handlers in `http` only read and
render.

- Tokens come in the Authorization header, scheme case-insensitive (RFC 9110 section
  11.1: `bearer` is `Bearer`). `?token=` is accepted for the HTML page only: a browser
  following a link cannot send a header, and the page sends `Referrer-Policy:
  no-referrer` and `Cache-Control: no-store` so the URL's token leaks neither to
  other sites nor into caches. The JSON API refuses a query token (reason
  token-in-query): its clients can send a header, and a token in a URL ends up in
  proxy and access logs.
- Host allow-list against DNS rebinding: a page on evil.example whose name is made to
  resolve to 127.0.0.1 would otherwise read an open local API from the victim's
  browser. Refused with 421 (Misdirected Request). /healthz and /readyz are exempt:
  probes address a pod by its IP, and they tell nothing but whether the database answers.
- Refusals: JSON {"error", "reason"}, counted in convotrail_api_refused_total{endpoint,
  reason}, both closed sets.
- A handler's own failure is JSON too: 503 `database-unavailable` while the database
  does not answer, 500 `internal` otherwise (its traceback goes to the log only).
- Every request through the middleware is timed in convotrail_api_request_seconds
  {endpoint,code} (code: the status class, 2xx...5xx), refusals included; a request
  aiohttp's parser refuses never reaches it (counted as refused, endpoint "other").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import SQLAlchemyError

from connectors.serving import BAD_HTTP
from connectors.sink import failures

log = logging.getLogger(__name__)

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

# Reasons (label values: a closed set).
MISSING_CREDENTIALS: Final = "missing-credentials"
BAD_CREDENTIALS: Final = "bad-credentials"
TOKEN_IN_QUERY: Final = "token-in-query"
HOST_NOT_ALLOWED: Final = "host-not-allowed"
NOT_FOUND: Final = "not-found"
METHOD_NOT_ALLOWED: Final = "method-not-allowed"
BAD_REQUEST: Final = "bad-request"
REASONS: Final = frozenset(
    {
        BAD_HTTP,
        MISSING_CREDENTIALS,
        BAD_CREDENTIALS,
        TOKEN_IN_QUERY,
        HOST_NOT_ALLOWED,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        BAD_REQUEST,
    }
)
ENDPOINTS: Final = (
    "conversation", "receipts", "message", "page", "healthz", "readyz", "metrics", "other",
)  # fmt: skip
# Probes address a pod by its IP: exempt from the Host allow-list.
PROBES: Final = frozenset({"healthz", "readyz"})

REFUSED = Counter(
    "convotrail_api_refused_total", "Read API requests refused", ["endpoint", "reason"]
)
REQUEST_SECONDS = Histogram(
    "convotrail_api_request_seconds",
    "Read API request time by endpoint and status class (2xx, 3xx, 4xx, 5xx)",
    ["endpoint", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

ALLOWED_HOSTS = web.AppKey("allowed_hosts", frozenset)  # empty: any Host
STYLE_HASH = web.AppKey("style_hash", str)


class Refused(Exception):
    """A refusal a handler or the guard decides; the middleware answers it."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{status} {reason}")
        self.status = status
        self.error = error
        self.reason = reason


def default_allowed_hosts(bind_host: str, configured: str | None) -> frozenset[str]:
    """CONVOTRAIL_API_ALLOWED_HOSTS (comma-separated names, `*` for any) if set; else
    the loopback names when bound to loopback, else any (empty set)."""
    if configured is not None and configured.strip():
        names = frozenset(n.strip().lower() for n in configured.split(",") if n.strip())
        return frozenset() if "*" in names else names
    return LOOPBACK_HOSTS if bind_host in LOOPBACK_HOSTS else frozenset()


def host_name(host_header: str | None) -> str | None:
    """The name part of a Host header ('[::1]:8080' -> '::1'), lowercased; None if
    absent or not a host[:port]."""
    if not host_header:
        return None
    value = host_header.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    return name.rstrip(".") or None


def bearer_token(authorization: str | None) -> bytes | None:
    """The token of `Authorization: Bearer <token>` (any case of the scheme), as the
    header's own bytes (aiohttp decodes header bytes with surrogateescape, so a
    non-UTF-8 byte is a wrong token rather than an exception); None if no bearer."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token.encode("utf-8", "surrogateescape")


def authorize(
    tokens: Mapping[str, str],
    account: str,
    authorization: str | None,
    query_token: str | None,
    *,
    allow_query_token: bool,
) -> None:
    """Raise Refused(401) unless the request carries `account`'s token. Open (no
    tokens configured): everything passes, the CLI binds such an API to loopback."""
    if not tokens:
        return
    given = bearer_token(authorization)
    if given is None and query_token:
        if not allow_query_token:
            raise Refused(401, "unauthorized", TOKEN_IN_QUERY)
        given = query_token.encode("utf-8", "surrogateescape")
    if given is None:
        raise Refused(401, "unauthorized", MISSING_CREDENTIALS)
    expected = tokens.get(account)
    # Compared even for an unknown account (against a dummy), so the timing does not
    # tell which accounts exist.
    reference = (expected or "\x00unknown-account").encode("utf-8")
    if not hmac.compare_digest(given, reference) or expected is None:
        raise Refused(401, "unauthorized", BAD_CREDENTIALS)


def style_hash(style: str) -> str:
    """The CSP source of an inline <style> with exactly this text."""
    digest = hashlib.sha256(style.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def security_headers(style_source: str, *, html: bool) -> dict[str, str]:
    """Headers every reply carries. Nothing may be framed, sniffed, cached or refer
    elsewhere; the page may use its own inline style and nothing else."""
    policy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    if html:
        policy += f"; style-src {style_source}"
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def endpoint_of(request: web.Request) -> str:
    name = request.match_info.route.name if request.match_info.route else None
    return name if name in ENDPOINTS else "other"


_HTTP_REASONS = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}


def _failure(error: Exception) -> web.Response:
    """A handler's own failure is no refusal of the request: 503 while the database does
    not answer (retry later), else 500 (a bug: its traceback goes to the log). JSON
    either way, never a traceback in the reply."""
    if isinstance(error, SQLAlchemyError):
        log.warning("read API: the database does not answer: %s", failures.reason(error))
        return web.json_response({"error": "unavailable", "reason": "database-unavailable"},
                                 status=503)  # fmt: skip
    log.exception("read API: a request failed")
    return web.json_response({"error": "internal error", "reason": "internal"}, status=500)


def _refusal(status: int, error: str, reason: str, endpoint: str) -> web.Response:
    REFUSED.labels(endpoint, reason).inc()
    return web.json_response({"error": error, "reason": reason}, status=status)


def status_class(status: int) -> str:
    """The `code` label: 2xx, 3xx, 4xx or 5xx (a closed set, whatever the status)."""
    return f"{min(max(status // 100, 2), 5)}xx"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    endpoint = endpoint_of(request)
    try:
        response = await _guarded(request, handler, endpoint)
    except web.HTTPException as exc:  # a redirect (3xx), answered by aiohttp
        REQUEST_SECONDS.labels(endpoint, status_class(exc.status)).observe(
            time.perf_counter() - started
        )
        raise
    elapsed = time.perf_counter() - started
    REQUEST_SECONDS.labels(endpoint, status_class(response.status)).observe(elapsed)
    return response


async def _guarded(request: web.Request, handler: Handler, endpoint: str) -> web.StreamResponse:
    allowed = request.app[ALLOWED_HOSTS]
    try:
        host = host_name(request.headers.get("Host"))
        if allowed and endpoint not in PROBES and host not in allowed:
            raise Refused(421, "misdirected", HOST_NOT_ALLOWED)
        response = await handler(request)
    except Refused as refused:
        response = _refusal(refused.status, refused.error, refused.reason, endpoint)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = _HTTP_REASONS.get(exc.status, BAD_REQUEST)
        response = _refusal(exc.status, exc.reason.lower(), reason, endpoint)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        response = _failure(exc)
    html = response.content_type == "text/html"
    response.headers.update(security_headers(request.app[STYLE_HASH], html=html))
    return response
