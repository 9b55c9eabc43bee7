"""The HTTP shell of the webhook intake: read a bounded body, authenticate, hand it on.

    app = create_intake_app(IntakeConfig.from_env(os.environ), deliver)

POST /webhooks/{ses,sendgrid,mailgun,postmark,dsn}: the raw body, once authenticated
(see `auth`), goes to the injected `deliver(provider, body)` coroutine, which puts it
on the delivery-notifications topic and returns how many records it wrote. Parsing the
body is not done here: the delivery processor does that, so a body the intake accepted
is never lost to a parser bug on the request path.

Replies, chosen for what the provider does next; every refusal is JSON
{"error": ..., "reason": ...} and counted in convotrail_intake_refused_total{provider,
reason} (both label sets closed: "other" for a path that names no provider):
- 202 {"accepted": n}: delivered.
- 401 "unauthorized": not authentic (or the provider is not configured here), whatever
  garbage the request carries. Whether a provider retries a 4xx differs between
  providers, so a misconfiguration can lose notifications: alert on the counter.
- 400 / 422 "malformed": authentic, but not what the provider sends (`shape`): a retry
  would fail the same way, so the provider should not retry.
- 408 "read-timeout": headers or body not received within read_timeout (slow clients
  are cut off; aiohttp's keep-alive timer bounds the headers, `_read_bounded` the body).
- 413 "too-large": body above max_body_bytes (derived from the broker's message size).
- 404 / 405: no such endpoint or method.
- 503 "unavailable": the records could not be written (Kafka unavailable...), so the
  provider retries later. `deliver` has given up on them by then (see
  records.NotificationPublisher): a 503 is never followed by a late write.
- 200: an SNS (Un)SubscriptionConfirmation, verified and logged, not delivered.
Bad input never yields a 5xx.

GET /metrics (Prometheus, default registry), GET /healthz (alive) and GET /readyz (the
`ready` check: by default Kafka answers a metadata request for delivery-notifications,
see records.NotificationPublisher.ready; cached for 2 s) are unauthenticated: put the
intake behind a proxy that exposes only /webhooks/ if that matters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from connectors.intake import shape
from connectors.intake.auth import (
    MALFORMED,
    NOT_CONFIGURED,
    REASONS,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SNS_NOTIFICATION,
    ReplayGuard,
    Unauthorized,
    load_sendgrid_public_key,
    load_sns_certificates,
    parse_sns,
    read_mailgun_signature,
    verify_basic_auth,
    verify_bearer,
    verify_mailgun_signature,
    verify_sendgrid,
    verify_sns,
)
from connectors.intake.config import IntakeConfig
from connectors.serving import BAD_HTTP, Readiness, Runner, add_metrics_and_readiness, start_site

log = logging.getLogger(__name__)

Deliver = Callable[[str, bytes], Awaitable[int]]
Clock = Callable[[], float]  # unix seconds

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "dsn")
OTHER = "other"  # the provider label of a request to no provider's endpoint
OUTCOMES = (
    "accepted",
    "unauthorized",
    "malformed",
    "too-large",
    "timeout",
    "unavailable",
    "subscription-confirmation",
)
TOO_LARGE = "too-large"
READ_TIMEOUT = "read-timeout"
INCOMPLETE_BODY = "incomplete-body"
# Refusals aiohttp's router or the middleware makes (no provider's code involved).
_HTTP_REASONS = {404: "not-found", 405: "method-not-allowed", 413: TOO_LARGE}
REFUSAL_REASONS = (
    REASONS
    | shape.REASONS
    | {TOO_LARGE, READ_TIMEOUT, INCOMPLETE_BODY, BAD_HTTP, "bad-request"}
    | set(_HTTP_REASONS.values())
)

REQUESTS = Counter(
    "convotrail_intake_requests_total", "Webhook requests by outcome", ["provider", "outcome"]
)
UNAUTHORIZED = Counter(
    "convotrail_intake_unauthorized_total", "Webhook requests refused", ["provider", "reason"]
)
REFUSED = Counter(
    "convotrail_intake_refused_total",
    "Requests refused with a 4xx, by provider ('other': no provider's endpoint) and reason",
    ["provider", "reason"],
)
for _provider in PROVIDERS:  # every series visible (at 0) from the start, for rate()
    for _outcome in OUTCOMES:
        REQUESTS.labels(_provider, _outcome)

# RFC 9110: a 401 carries a challenge where a standard scheme applies.
_CHALLENGES = {"postmark": 'Basic realm="convotrail-intake"', "dsn": "Bearer"}


def _refuse(
    provider: str,
    status: int,
    error: str,
    reason: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A counted 4xx with a JSON reason. `reason` must come from REFUSAL_REASONS (never
    from the request): it is a label value."""
    assert reason in REFUSAL_REASONS, reason
    REFUSED.labels(provider, reason).inc()
    return web.json_response(
        {"error": error, "reason": reason, **extra}, status=status, headers=headers
    )


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a check found out about an authentic request."""

    # An SNS (Un)SubscriptionConfirmation: not delivered.
    confirmation: dict[str, object] | None = None
    # Undo a side effect of the check when the request is answered 503 (the Mailgun
    # token goes back out of the replay guard so that the retry may pass).
    on_unavailable: Callable[[], None] | None = None


# A check reads headers and body, raises Unauthorized, and must not await: the replay
# guard's check-and-remember has to be atomic with respect to other requests.
_Check = Callable[[web.Request, bytes, float], _Verified]


def create_intake_app(
    config: IntakeConfig,
    deliver: Deliver,
    clock: Clock = time.time,
    ready: Readiness | None = None,
) -> web.Application:
    """The intake application. Keys and certificates are parsed here (ValueError if one is
    bad); a provider without credentials refuses every request with 401 'not-configured'.
    `ready`: /readyz's blocking check (None: ready while it answers)."""
    sendgrid_key = (
        load_sendgrid_public_key(config.sendgrid_public_key) if config.sendgrid_public_key else None
    )
    sns_certificates = (
        load_sns_certificates(config.sns_certificate_pem) if config.sns_certificate_pem else ()
    )
    replay_guard = ReplayGuard()  # one per app, i.e. per process: see ReplayGuard
    for provider in config.unconfigured():
        log.warning("intake: no credentials for %s; its webhook refuses everything", provider)

    def check_ses(request: web.Request, body: bytes, now: float) -> _Verified:
        message = parse_sns(body)
        verify_sns(message, certificates=sns_certificates, topic_arns=config.sns_topic_arns)
        if message["Type"] != SNS_NOTIFICATION:
            return _Verified(confirmation=message)
        return _Verified()

    def check_sendgrid(request: web.Request, body: bytes, now: float) -> _Verified:
        verify_sendgrid(
            body,
            public_key=sendgrid_key,
            signature=request.headers.get(SENDGRID_SIGNATURE_HEADER),
            timestamp=request.headers.get(SENDGRID_TIMESTAMP_HEADER),
            now=now,
            max_age=config.sendgrid_max_age,
        )
        return _Verified()

    def check_mailgun(request: web.Request, body: bytes, now: float) -> _Verified:
        if not config.mailgun_signing_key:
            raise Unauthorized(NOT_CONFIGURED)
        block = read_mailgun_signature(body)
        verify_mailgun_signature(
            signing_key=config.mailgun_signing_key,
            timestamp=block.timestamp,
            token=block.token,
            signature=block.signature,
            now=now,
            replay_guard=replay_guard,
            max_age=config.mailgun_max_age,
        )
        return _Verified(on_unavailable=lambda: replay_guard.forget(block.token))

    def check_postmark(request: web.Request, body: bytes, now: float) -> _Verified:
        verify_basic_auth(
            request.headers.get("Authorization"),
            user=config.postmark_user,
            password=config.postmark_password,
        )
        return _Verified()

    def check_dsn(request: web.Request, body: bytes, now: float) -> _Verified:
        verify_bearer(request.headers.get("Authorization"), token=config.dsn_token)
        return _Verified()

    checks: dict[str, _Check] = {
        "ses": check_ses,
        "sendgrid": check_sendgrid,
        "mailgun": check_mailgun,
        "postmark": check_postmark,
        "dsn": check_dsn,
    }
    # client_max_size also bounds any request.read()/post() a future handler might use;
    # the webhook handlers read through _read_bounded.
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_json_errors])
    for provider, check in checks.items():
        handler = _webhook_handler(provider, check, deliver, clock, config)
        app.router.add_post(f"/webhooks/{provider}", handler)
    app.router.add_get("/healthz", _healthz)
    add_metrics_and_readiness(app, ready)
    return app


LINGERING_TIME = 1.0


def make_runner(
    config: IntakeConfig,
    deliver: Deliver,
    clock: Clock = time.time,
    ready: Readiness | None = None,
) -> Runner:
    """The intake app's runner. aiohttp's keep-alive timer runs from the moment a
    connection opens until a request's headers are complete, so it is the bound on
    reading them (a client trickling header bytes is closed when it fires)."""
    return Runner(
        create_intake_app(config, deliver, clock, ready),
        on_bad_http=REFUSED.labels(OTHER, BAD_HTTP).inc,
        keepalive_timeout=config.read_timeout,
        # After a refusal of an unread body (408, 413), aiohttp reads and drops the rest
        # for this long so the client can see the reply: 10 s by default, which would
        # let a slow client hold the connection well past the read timeout.
        lingering_time=LINGERING_TIME,
    )


def _provider_of(path: str) -> str:
    name = path.removeprefix("/webhooks/")
    return name if path.startswith("/webhooks/") and name in PROVIDERS else OTHER


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such path, wrong method) as counted JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        provider = _provider_of(request.path)
        reason = _HTTP_REASONS.get(exc.status, "bad-request")
        REQUESTS.labels(provider, "malformed").inc()
        return _refuse(provider, exc.status, exc.reason.lower(), reason, headers=dict(
            (k, v) for k, v in exc.headers.items() if k.lower() == "allow"
        ))  # fmt: skip


def _webhook_handler(
    provider: str, check: _Check, deliver: Deliver, clock: Clock, config: IntakeConfig
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    limit = config.max_body_bytes

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(config.read_timeout):
                body = await _read_bounded(request, limit)
        except TimeoutError:
            REQUESTS.labels(provider, "timeout").inc()
            log.info("intake %s: body not received within %s s", provider, config.read_timeout)
            # Connection: close, or aiohttp would go on reading the rest of the body.
            return _refuse(provider, 408, "read-timeout", READ_TIMEOUT,
                           headers={"Connection": "close"})  # fmt: skip
        except Exception as exc:  # the client went away, broken chunked framing...
            REQUESTS.labels(provider, "malformed").inc()
            log.info("intake %s: body could not be read: %r", provider, exc)
            return _refuse(provider, 400, "bad-request", INCOMPLETE_BODY,
                           headers={"Connection": "close"})  # fmt: skip
        if body is None:
            REQUESTS.labels(provider, "too-large").inc()
            log.info("intake %s: body above %d bytes refused", provider, limit)
            return _refuse(provider, 413, "too-large", TOO_LARGE, max_bytes=limit,
                           headers={"Connection": "close"})  # fmt: skip
        try:
            verified = _authenticate(check, request, body, clock())
        except Unauthorized as refused:
            REQUESTS.labels(provider, "unauthorized").inc()
            UNAUTHORIZED.labels(provider, refused.reason).inc()
            # not-configured is the operator's problem, not the sender's: say it loudly.
            level = logging.WARNING if refused.reason == NOT_CONFIGURED else logging.INFO
            log.log(level, "intake %s: refused from %s: %s", provider, request.remote, refused)
            headers = {"WWW-Authenticate": _CHALLENGES[provider]} if provider in _CHALLENGES else {}
            return _refuse(provider, 401, "unauthorized", refused.reason, headers=headers)
        if verified.confirmation is not None:
            return _confirmation(provider, verified.confirmation)
        try:
            shape.check(provider, body)
        except shape.Malformed as malformed:
            REQUESTS.labels(provider, "malformed").inc()
            log.warning("intake %s: authentic body refused: %s", provider, malformed)
            _undo(verified)  # a corrected resend of the same signed block may pass
            return _refuse(provider, malformed.status, "malformed", malformed.reason,
                           detail=malformed.detail)  # fmt: skip
        try:
            accepted = await deliver(provider, body)
        except Exception as exc:
            # The provider retries on 5xx; its retry is the durable queue while Kafka is out.
            REQUESTS.labels(provider, "unavailable").inc()
            log.error(
                "intake %s: delivering %d bytes failed; answered 503: %s", provider, len(body), exc
            )
            _undo(verified)
            return web.json_response({"error": "unavailable"}, status=503)
        REQUESTS.labels(provider, "accepted").inc()
        return web.json_response({"accepted": accepted}, status=202)

    return handle


def _authenticate(check: _Check, request: web.Request, body: bytes, now: float) -> _Verified:
    """`check`, where an exception other than Unauthorized (a verifier bug on input
    nobody foresaw) is a refusal as well: the request is unauthenticated, so it may not
    pass, and a 500 would invite the sender to retry it. Logged with its traceback."""
    try:
        return check(request, body, now)
    except Unauthorized:
        raise
    except Exception as exc:
        log.exception("intake: authentication failed unexpectedly; refused as malformed")
        raise Unauthorized(MALFORMED, type(exc).__name__) from None


def _undo(verified: _Verified) -> None:
    if verified.on_unavailable is not None:
        verified.on_unavailable()


def _confirmation(provider: str, message: dict[str, object]) -> web.StreamResponse:
    # Confirming a subscription is an operator action, not something the intake does on
    # its own: visiting the URL would make any holder of a valid SNS signature for an
    # allowed topic decide what this service subscribes to (and it is an outbound
    # request from the request path). The URL is signed, hence safe to show.
    REQUESTS.labels(provider, "subscription-confirmation").inc()
    log.warning(
        "intake %s: SNS %s for topic %s; to act on it, an operator opens SubscribeURL %s",
        provider,
        message.get("Type"),
        message.get("TopicArn"),
        message.get("SubscribeURL"),
    )
    return web.json_response({"confirmation": message.get("Type")}, status=200)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit`: from Content-Length
    without reading anything, else (chunked) after reading at most limit + one chunk."""
    if request.content_length is not None and request.content_length > limit:
        return None
    received = bytearray()
    while chunk := await request.content.readany():
        received += chunk
        if len(received) > limit:
            return None
    return bytes(received)


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def serve(
    config: IntakeConfig,
    deliver: Deliver,
    host: str,
    port: int,
    *,
    clock: Clock = time.time,
    ready: Readiness | None = None,
) -> None:
    """Run the intake on host:port until cancelled, then close it gracefully.
    CannotListen (one line) if the port cannot be bound."""
    runner = make_runner(config, deliver, clock, ready)
    await runner.setup()
    try:
        await start_site(runner, host, port, "delivery intake")
        log.info("intake listening on %s", ", ".join(map(str, runner.addresses)))
        await asyncio.Event().wait()  # until the task is cancelled
    finally:
        await runner.cleanup()
