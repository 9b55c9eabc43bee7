"""The intake's HTTP shell, through aiohttp's test server: status codes, what reaches
`deliver`, and the counters."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from connectors.intake.config import IntakeConfig
from connectors.intake.http import create_intake_app, serve
from connectors.intake.signing import sign_mailgun, sign_sendgrid, sign_sns
from tests.support.ports import free_ports

T = TypeVar("T")
Client = TestClient[web.Request, web.Application]

NOW = 1_750_000_000.0
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-notifications"
MAILGUN_KEY = "mailgun-signing-key"
DSN_TOKEN = "dsn-token-0123456789"
PROVIDERS = ["ses", "sendgrid", "mailgun", "postmark", "dsn"]

_EC_KEY = ec.generate_private_key(ec.SECP256R1())
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_pem() -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_RSA_KEY.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(_RSA_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


CONFIG = IntakeConfig(
    max_body_bytes=4096,
    mailgun_signing_key=MAILGUN_KEY,
    sendgrid_public_key=base64.b64encode(
        _EC_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode(),
    sns_certificate_pem=_certificate_pem(),
    sns_topic_arns=frozenset({TOPIC}),
    postmark_user="postmark",
    postmark_password="pm-password",
    dsn_token=DSN_TOKEN,
)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


def sns_request(message: dict[str, object] | None = None, version: str = "2") -> Request:
    message = message or {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": json.dumps({"eventType": "Bounce"}),
        "Timestamp": "2025-06-15T10:00:00.000Z",
    }
    signed = sign_sns(_RSA_KEY, message, version)
    headers = {"Content-Type": "text/plain", "x-amz-sns-message-type": str(message["Type"])}
    return Request("/webhooks/ses", json.dumps(signed).encode(), headers)


def mailgun_request(token: str = "t" * 50, key: str = MAILGUN_KEY) -> Request:
    timestamp = str(int(NOW))
    body = json.dumps(
        {
            "signature": {
                "timestamp": timestamp,
                "token": token,
                "signature": sign_mailgun(key, timestamp, token),
            },
            "event-data": {"event": "failed", "recipient": "a@example.com"},
        }
    ).encode()
    return Request("/webhooks/mailgun", body, {"Content-Type": "application/json"})


def valid_request(provider: str) -> Request:
    if provider == "ses":
        return sns_request()
    if provider == "mailgun":
        return mailgun_request()
    if provider == "sendgrid":
        body = b'[{"email":"a@example.com","event":"bounce","sg_event_id":"e1"}]\r\n'
        timestamp = str(int(NOW))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": sign_sendgrid(_EC_KEY, timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        return Request("/webhooks/sendgrid", body, headers)
    if provider == "postmark":
        credentials = base64.b64encode(b"postmark:pm-password").decode()
        body = b'{"RecordType":"Bounce","Email":"a@example.com"}'
        return Request("/webhooks/postmark", body, {"Authorization": f"Basic {credentials}"})
    body = b"From: MAILER-DAEMON@example.com\r\nSubject: Undelivered\r\n\r\nfailed\r\n"
    headers = {"Authorization": f"Bearer {DSN_TOKEN}", "Content-Type": "message/rfc822"}
    return Request("/webhooks/dsn", body, headers)


def without_auth(provider: str) -> Request:
    request = valid_request(provider)
    if provider in ("ses", "mailgun"):  # the signature travels in the body
        document = json.loads(request.body)
        document.pop("Signature" if provider == "ses" else "signature")
        return replace(request, body=json.dumps(document).encode())
    headers = {
        k: v
        for k, v in request.headers.items()
        if k != "Authorization" and not k.startswith("X-Twilio")
    }
    return replace(request, headers=headers)


def with_bad_auth(provider: str) -> tuple[Request, str]:
    request = valid_request(provider)
    if provider == "ses":
        document = json.loads(request.body)
        document["Message"] = json.dumps({"eventType": "Delivery"})
        return replace(request, body=json.dumps(document).encode()), "bad-signature"
    if provider == "mailgun":
        return mailgun_request(key="guessed-key"), "bad-signature"
    if provider == "sendgrid":
        return replace(request, body=request.body.replace(b"bounce", b"open")), "bad-signature"
    if provider == "postmark":
        guess = base64.b64encode(b"postmark:guess").decode()
        return replace(request, headers={"Authorization": f"Basic {guess}"}), "bad-credentials"
    return replace(request, headers={"Authorization": "Bearer guess"}), "bad-credentials"


# --------------------------------------------------------------------------- harness


class Recorder:
    """An in-memory `deliver`: records calls; fails while `failures` > 0."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.failures = failures

    async def __call__(self, provider: str, body: bytes) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("kafka unavailable")
        self.calls.append((provider, body))
        return 3


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def with_client(app: web.Application, scenario: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


async def send(client: Client, request: Request) -> Reply:
    async with client.post(request.path, data=request.body, headers=request.headers) as resp:
        return Reply(resp.status, await resp.read(), dict(resp.headers))


def post_all(app: web.Application, *requests: Request) -> list[Reply]:
    async def scenario(client: Client) -> list[Reply]:
        return [await send(client, request) for request in requests]

    return with_client(app, scenario)


def make_app(deliver: Recorder, config: IntakeConfig = CONFIG) -> web.Application:
    return create_intake_app(config, deliver, clock=lambda: NOW)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_total(provider: str, outcome: str) -> float:
    return sample("convotrail_intake_requests_total", provider=provider, outcome=outcome)


def unauthorized_total(provider: str, reason: str) -> float:
    return sample("convotrail_intake_unauthorized_total", provider=provider, reason=reason)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("provider", PROVIDERS)
def test_authentic_request_is_delivered_verbatim(provider: str) -> None:
    deliver = Recorder()
    request = valid_request(provider)
    before = requests_total(provider, "accepted")
    [reply] = post_all(make_app(deliver), request)
    assert reply.status == 202
    assert reply.json() == {"accepted": 3}
    assert deliver.calls == [(provider, request.body)]
    assert requests_total(provider, "accepted") == before + 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_request_without_credentials_is_refused(provider: str) -> None:
    deliver = Recorder()
    before = unauthorized_total(provider, "missing-credentials")
    before_requests = requests_total(provider, "unauthorized")
    [reply] = post_all(make_app(deliver), without_auth(provider))
    assert reply.status == 401
    assert reply.json() == {"error": "unauthorized", "reason": "missing-credentials"}
    assert deliver.calls == []
    assert unauthorized_total(provider, "missing-credentials") == before + 1
    assert requests_total(provider, "unauthorized") == before_requests + 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_request_with_bad_credentials_is_refused(provider: str) -> None:
    deliver = Recorder()
    request, reason = with_bad_auth(provider)
    before = unauthorized_total(provider, reason)
    [reply] = post_all(make_app(deliver), request)
    assert reply.status == 401
    assert reply.json()["reason"] == reason
    assert deliver.calls == []
    assert unauthorized_total(provider, reason) == before + 1


def test_basic_and_bearer_refusals_carry_a_challenge() -> None:
    replies = post_all(make_app(Recorder()), without_auth("postmark"), without_auth("dsn"))
    assert replies[0].headers["WWW-Authenticate"].startswith("Basic")
    assert replies[1].headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unconfigured_provider_refuses_everything(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    deliver = Recorder()
    before = unauthorized_total(provider, "not-configured")
    with caplog.at_level(logging.WARNING, logger="connectors.intake.http"):
        [reply] = post_all(make_app(deliver, IntakeConfig()), valid_request(provider))
    assert reply.status == 401
    assert reply.json()["reason"] == "not-configured"
    assert deliver.calls == []
    assert unauthorized_total(provider, "not-configured") == before + 1
    assert f"no credentials for {provider}" in caplog.text


def test_sns_topic_outside_the_allowed_set_is_refused() -> None:
    message = json.loads(sns_request().body)
    message["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-else"
    [reply] = post_all(make_app(Recorder()), sns_request(message))
    assert (reply.status, reply.json()["reason"]) == (401, "unknown-topic")


def test_body_declared_too_large_is_refused_unread() -> None:
    deliver = Recorder()
    before = requests_total("dsn", "too-large")
    request = valid_request("dsn")
    big = replace(request, body=request.body + b"x" * CONFIG.max_body_bytes)
    [reply] = post_all(make_app(deliver), big)
    assert reply.status == 413
    assert reply.json() == {
        "error": "too-large",
        "reason": "too-large",
        "max_bytes": CONFIG.max_body_bytes,
    }
    assert deliver.calls == []
    assert requests_total("dsn", "too-large") == before + 1


def test_chunked_body_too_large_is_refused() -> None:
    deliver = Recorder()
    request = valid_request("dsn")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    async def scenario(client: Client) -> tuple[str | None, int]:
        # An async generator makes aiohttp send Transfer-Encoding: chunked, no length.
        async with client.post(request.path, data=chunks(), headers=request.headers) as resp:
            return resp.request_info.headers.get("Transfer-Encoding"), resp.status

    assert with_client(make_app(deliver), scenario) == ("chunked", 413)
    assert deliver.calls == []


def test_declared_length_alone_is_enough_for_a_413() -> None:
    # Headers only, no body bytes at all: a server that tried to read the announced body
    # would wait for it (and time out) instead of answering.
    async def scenario(client: Client) -> bytes:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            b"POST /webhooks/dsn HTTP/1.1\r\nHost: intake\r\nContent-Length: 1000000000\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        return status_line

    assert with_client(make_app(Recorder()), scenario).startswith(b"HTTP/1.1 413")


def test_body_at_the_limit_is_accepted() -> None:
    deliver = Recorder()
    request = valid_request("dsn")
    exact = replace(request, body=request.body.ljust(CONFIG.max_body_bytes, b"z"))
    [reply] = post_all(make_app(deliver), exact)
    assert reply.status == 202
    assert deliver.calls == [("dsn", exact.body)]


def test_replayed_mailgun_token_is_refused_the_second_time() -> None:
    deliver = Recorder()
    request = mailgun_request()
    first, second = post_all(make_app(deliver), request, request)
    assert first.status == 202
    assert (second.status, second.json()["reason"]) == (401, "replayed-token")
    assert len(deliver.calls) == 1


def test_mailgun_retry_after_a_503_is_not_taken_for_a_replay() -> None:
    deliver = Recorder(failures=1)
    request = mailgun_request()
    first, second = post_all(make_app(deliver), request, request)
    assert (first.status, second.status) == (503, 202)
    assert deliver.calls == [("mailgun", request.body)]


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_confirmation_is_logged_not_delivered(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc"
    message: dict[str, object] = {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "abc",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": url,
        "Timestamp": "2025-06-15T10:00:00.000Z",
    }
    deliver = Recorder()
    before = requests_total("ses", "subscription-confirmation")
    with caplog.at_level(logging.WARNING, logger="connectors.intake.http"):
        [reply] = post_all(make_app(deliver), sns_request(message, version="1"))
    assert reply.status == 200
    assert deliver.calls == []
    assert url in caplog.text
    assert requests_total("ses", "subscription-confirmation") == before + 1


def test_forged_sns_confirmation_is_refused() -> None:
    request = sns_request(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "m",
            "Token": "t",
            "TopicArn": TOPIC,
            "Message": "m",
            "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2025-06-15T10:00:00.000Z",
        }
    )
    document = json.loads(request.body)
    document["SubscribeURL"] = "http://169.254.169.254/latest/meta-data/"
    [reply] = post_all(make_app(Recorder()), replace(request, body=json.dumps(document).encode()))
    assert (reply.status, reply.json()["reason"]) == (401, "bad-signature")


def test_deliver_failure_is_a_503(caplog: pytest.LogCaptureFixture) -> None:
    deliver = Recorder(failures=1)
    before = requests_total("sendgrid", "unavailable")
    with caplog.at_level(logging.ERROR, logger="connectors.intake.http"):
        [reply] = post_all(make_app(deliver), valid_request("sendgrid"))
    assert reply.status == 503
    assert requests_total("sendgrid", "unavailable") == before + 1
    assert "kafka unavailable" in caplog.text


def test_garbage_never_yields_a_server_error() -> None:
    garbage = [
        Request(f"/webhooks/{provider}", body, {"Authorization": auth_header})
        for provider in PROVIDERS
        for body in (b"", b"\x00\xff", b"{}", b"[]", b'{"signature": 1, "Type": []}')
        for auth_header in ("", "Basic", "Bearer \u00e9", "Basic !!!!")
    ]
    replies = post_all(make_app(Recorder()), *garbage)
    assert {reply.status for reply in replies} == {401}


def test_metrics_and_health() -> None:
    async def scenario(client: Client) -> tuple[int, str, int, str]:
        await send(client, valid_request("postmark"))
        async with client.get("/metrics") as metrics, client.get("/healthz") as health:
            return metrics.status, await metrics.text(), health.status, await health.text()

    metrics_status, text, health_status, health = with_client(make_app(Recorder()), scenario)
    assert metrics_status == 200
    assert 'convotrail_intake_requests_total{outcome="accepted",provider="postmark"}' in text
    assert "convotrail_intake_unauthorized_total" in text
    assert (health_status, json.loads(health)) == (200, {"status": "ok"})


def test_readyz_answers_the_injected_check_cached_and_as_json() -> None:
    calls: list[bool] = []
    answers = iter([(False, "delivery-notifications: missing")])  # a second call would fail

    def check() -> tuple[bool, str]:
        calls.append(True)
        return next(answers)

    def broken() -> tuple[bool, str]:
        raise OSError("no route to host")

    async def twice(client: Client) -> list[tuple[int, dict[str, object]]]:
        found = []
        for _ in range(2):
            async with client.get("/readyz") as reply:
                found.append((reply.status, json.loads(await reply.text())))
        return found

    app = create_intake_app(CONFIG, Recorder(), clock=lambda: NOW, ready=check)
    not_ready = {"ready": False, "detail": "delivery-notifications: missing"}
    # The second probe within 2 s gets the first answer: one check, not two.
    assert with_client(app, twice) == [(503, not_ready), (503, not_ready)]
    assert len(calls) == 1
    app = create_intake_app(CONFIG, Recorder(), clock=lambda: NOW, ready=broken)
    assert with_client(app, twice)[0] == (
        503, {"ready": False, "detail": "OSError: no route to host"}
    )  # fmt: skip
    unchecked = with_client(make_app(Recorder()), twice)[0]
    assert unchecked == (200, {"ready": True, "detail": "no dependency check configured"})


def test_webhooks_only_take_post() -> None:
    async def scenario(client: Client) -> int:
        async with client.get("/webhooks/ses") as resp:
            return resp.status

    assert with_client(make_app(Recorder()), scenario) == 405


def test_serve_runs_until_cancelled() -> None:
    [port] = free_ports(1)
    deliver = Recorder()

    async def main() -> int:
        task = asyncio.create_task(serve(CONFIG, deliver, "127.0.0.1", port, clock=lambda: NOW))
        try:
            request = valid_request("dsn")
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    try:
                        url = f"http://127.0.0.1:{port}{request.path}"
                        async with session.post(
                            url, data=request.body, headers=request.headers
                        ) as resp:
                            return resp.status
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.02)
            raise AssertionError("the intake never answered")
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    assert asyncio.run(main()) == 202
    assert deliver.calls == [("dsn", valid_request("dsn").body)]
