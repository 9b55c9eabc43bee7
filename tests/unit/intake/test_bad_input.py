"""The intake's HTTP boundary against bad input, at the byte level over a real socket:
every kind gets a clear refusal (a 4xx with a JSON reason), counted on /metrics by
provider and reason; nothing refused reaches `deliver`; good input afterwards is still
taken. Then hypothesis-generated bodies and headers, unauthenticated and authenticated."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from connectors.intake import shape
from connectors.intake.auth import REASONS
from connectors.intake.http import REFUSAL_REASONS, make_runner
from connectors.intake.signing import sign_mailgun, sign_sendgrid, sign_sns
from tests.support.rawhttp import exchange, request_bytes, serving
from tests.unit.intake.test_http import (
    _EC_KEY,
    _RSA_KEY,
    CONFIG,
    DSN_TOKEN,
    MAILGUN_KEY,
    NOW,
    PROVIDERS,
    TOPIC,
    Recorder,
    valid_request,
)

BAD_CONFIG = replace(CONFIG, read_timeout=1.0, max_body_bytes=400_000)
STAMP = str(int(NOW))
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
BASIC_GOOD = "Basic " + base64.b64encode(b"postmark:pm-password").decode()
BEARER_GOOD = f"Bearer {DSN_TOKEN}"


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes  # the whole request as it goes on the wire
    status: int
    provider: str  # the label it is counted under
    reason: str


def post(path: str, body: bytes, *headers: tuple[str, str | bytes]) -> bytes:
    return request_bytes("POST", path, body, headers)


def sns(message: dict[str, object], *, sign: bool = True, version: str = "2") -> bytes:
    envelope: dict[str, object] = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": json.dumps({"eventType": "Bounce"}),
        "Timestamp": "2025-06-15T10:00:00.000Z",
        **message,
    }
    signed = sign_sns(_RSA_KEY, envelope, version) if sign else envelope
    return post("/webhooks/ses", json.dumps(signed).encode())


def sns_with(**fields: object) -> dict[str, object]:
    """A signed SNS document with `fields` set after signing (so unsigned/forged)."""
    document: dict[str, object] = json.loads(request_body(sns({})))
    document.update(fields)
    return document


def request_body(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]


def mailgun(
    body: dict[str, object] | None = None,
    *,
    timestamp: str = STAMP,
    token: str = "t" * 50,
    signature: str | None = None,
) -> bytes:
    document: dict[str, object] = {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": signature or sign_mailgun(MAILGUN_KEY, timestamp, token),
        },
        "event-data": {"event": "failed", "recipient": "a@example.com"},
    }
    if body is not None:
        document = {"signature": document["signature"], **body}
    return post("/webhooks/mailgun", json.dumps(document).encode())


def sendgrid(body: bytes, *, timestamp: str = STAMP, signature: str | bytes | None = None) -> bytes:
    sig = signature if signature is not None else sign_sendgrid(_EC_KEY, timestamp, body)
    return post(
        "/webhooks/sendgrid",
        body,
        ("X-Twilio-Email-Event-Webhook-Signature", sig),
        ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
    )


def cases() -> list[Case]:
    unauth = 401
    out = [
        # -- SES / SNS: the signature travels in the body
        Case("ses empty body", post("/webhooks/ses", b""), unauth, "ses", "malformed"),
        Case("ses not JSON", post("/webhooks/ses", b"hello"), unauth, "ses", "malformed"),
        Case("ses deep array", post("/webhooks/ses", DEEP_ARRAY), unauth, "ses", "malformed"),
        Case("ses deep object", post("/webhooks/ses", DEEP_OBJECT), unauth, "ses", "malformed"),
        Case("ses JSON array", post("/webhooks/ses", b"[1]"), unauth, "ses", "malformed"),
        Case("ses not UTF-8", post("/webhooks/ses", b'{"a":"\xff"}'), unauth, "ses", "malformed"),
        Case("ses unsigned", sns({}, sign=False), unauth, "ses", "missing-credentials"),
        Case(
            "ses signature version 3",
            post("/webhooks/ses", json.dumps(sns_with(SignatureVersion="3")).encode()),
            unauth, "ses", "unsupported-signature-version",
        ),
        Case(
            "ses unknown Type",
            post("/webhooks/ses", json.dumps(sns_with(Type="Bogus")).encode()),
            unauth, "ses", "unsupported-type",
        ),
        Case(
            "ses lone surrogate in Message",
            post("/webhooks/ses", json.dumps(sns_with(Message="\ud800")).encode()),
            unauth, "ses", "malformed",
        ),
        Case(
            "ses lone surrogate escaped in the JSON text",
            post("/webhooks/ses", request_body(sns({})).replace(b'"Bounce', b'"\\ud800')),
            unauth, "ses", "malformed",
        ),
        Case(
            "ses Signature not base64",
            post("/webhooks/ses", json.dumps(sns_with(Signature="!!!")).encode()),
            unauth, "ses", "bad-signature",
        ),
        Case(
            "ses forged Message",
            post("/webhooks/ses", json.dumps(sns_with(Message="{}")).encode()),
            unauth, "ses", "bad-signature",
        ),
        Case(
            "ses Message a number",
            post("/webhooks/ses", json.dumps(sns_with(Message=5)).encode()),
            unauth, "ses", "malformed",
        ),
        Case(
            "ses Signature non-ASCII",
            post("/webhooks/ses", json.dumps(sns_with(Signature="é\ud800")).encode()),
            unauth, "ses", "bad-signature",
        ),
        # -- Mailgun: signature block in the body
        Case("mailgun empty", post("/webhooks/mailgun", b""), unauth, "mailgun", "malformed"),
        Case("mailgun deep", post("/webhooks/mailgun", DEEP_OBJECT), unauth, "mailgun",
             "malformed"),
        Case("mailgun no signature", mailgun({"signature": None}), unauth, "mailgun",
             "missing-credentials"),
        Case("mailgun signature list", mailgun({"signature": [1]}), unauth, "mailgun",
             "missing-credentials"),
        Case("mailgun timestamp bool", mailgun({"signature": {"timestamp": True, "token": "x",
             "signature": "y"}}), unauth, "mailgun", "missing-credentials"),
        Case("mailgun lone surrogate token", mailgun(token="\ud800", signature="0" * 64), unauth,
             "mailgun", "malformed"),
        Case("mailgun lone surrogate signature", mailgun(signature="\udcff"), unauth, "mailgun",
             "malformed"),
        Case("mailgun wrong signature", mailgun(signature="0" * 64), unauth, "mailgun",
             "bad-signature"),
        Case("mailgun non-ASCII signature", mailgun(signature="é" * 64), unauth, "mailgun",
             "bad-signature"),
        Case("mailgun stale", mailgun(timestamp=str(int(NOW) - 3600)), unauth, "mailgun",
             "stale-timestamp"),
        Case("mailgun timestamp not digits", mailgun(timestamp="soon"), unauth, "mailgun",
             "bad-timestamp"),
        Case("mailgun token too long", mailgun(token="t" * 600), unauth, "mailgun", "malformed"),
        # -- SendGrid: signature and timestamp headers over the raw body
        Case("sendgrid no headers", post("/webhooks/sendgrid", b"[]"), unauth, "sendgrid",
             "missing-credentials"),
        Case("sendgrid signature not base64", sendgrid(b"[]", signature="***"), unauth,
             "sendgrid", "bad-signature"),
        Case("sendgrid signature bytes", sendgrid(b"[]", signature=b"\xff\xfe"), unauth,
             "sendgrid", "bad-signature"),
        Case("sendgrid timestamp bytes", post("/webhooks/sendgrid", b"[]",
             ("X-Twilio-Email-Event-Webhook-Signature", sign_sendgrid(_EC_KEY, STAMP, b"[]")),
             ("X-Twilio-Email-Event-Webhook-Timestamp", b"\xff")), unauth, "sendgrid",
             "bad-signature"),
        Case("sendgrid stale", sendgrid(b"[]", timestamp=str(int(NOW) - 3600)), unauth,
             "sendgrid", "stale-timestamp"),
        Case("sendgrid timestamp words", sendgrid(b"[]", timestamp="noon"), unauth, "sendgrid",
             "bad-timestamp"),
        Case("sendgrid signed another body", sendgrid(b"[]", signature=sign_sendgrid(
             _EC_KEY, STAMP, b"[{}]")), unauth, "sendgrid", "bad-signature"),
        # -- Postmark: basic auth
        Case("postmark no auth", post("/webhooks/postmark", b"{}"), unauth, "postmark",
             "missing-credentials"),
        Case("postmark Basic alone", post("/webhooks/postmark", b"{}", ("Authorization",
             "Basic")), unauth, "postmark", "missing-credentials"),
        Case("postmark not base64", post("/webhooks/postmark", b"{}", ("Authorization",
             "Basic !!!!")), unauth, "postmark", "bad-credentials"),
        Case("postmark no colon", post("/webhooks/postmark", b"{}", ("Authorization",
             "Basic " + base64.b64encode(b"postmark").decode())), unauth, "postmark",
             "bad-credentials"),
        Case("postmark bytes", post("/webhooks/postmark", b"{}", ("Authorization",
             b"Basic \xff\xfe")), unauth, "postmark", "bad-credentials"),
        Case("postmark bearer", post("/webhooks/postmark", b"{}", ("Authorization",
             "Bearer x")), unauth, "postmark", "missing-credentials"),
        # -- DSN: bearer token
        Case("dsn no auth", post("/webhooks/dsn", b"x"), unauth, "dsn", "missing-credentials"),
        Case("dsn Bearer \\xff", post("/webhooks/dsn", b"x", ("Authorization", b"Bearer \xff")),
             unauth, "dsn", "bad-credentials"),
        Case("dsn Bearer UTF-8", post("/webhooks/dsn", b"x", ("Authorization",
             "Bearer é".encode())), unauth, "dsn", "bad-credentials"),
        Case("dsn Bearer empty", post("/webhooks/dsn", b"x", ("Authorization", "Bearer ")),
             unauth, "dsn", "missing-credentials"),
        Case("dsn Token scheme", post("/webhooks/dsn", b"x", ("Authorization", "Token a")),
             unauth, "dsn", "missing-credentials"),
        Case("dsn long token", post("/webhooks/dsn", b"x", ("Authorization", "Bearer " +
             "a" * 4000)), unauth, "dsn", "bad-credentials"),
        # -- authenticated, but not what the provider sends: 400 / 422, no retry
        Case("dsn empty body", post("/webhooks/dsn", b"", ("Authorization", BEARER_GOOD)), 400,
             "dsn", "empty-body"),
        Case("dsn blank body", post("/webhooks/dsn", b" \r\n", ("Authorization", BEARER_GOOD)),
             400, "dsn", "empty-body"),
        Case("sendgrid signed text", sendgrid(b"not json"), 400, "sendgrid", "not-json"),
        Case("sendgrid signed object", sendgrid(b"{}"), 422, "sendgrid", "wrong-shape"),
        Case("sendgrid signed numbers", sendgrid(b"[1, 2]"), 422, "sendgrid", "wrong-shape"),
        Case("sendgrid signed latin-1", sendgrid(b'[{"a": "\xe9"}]'), 400, "sendgrid",
             "not-utf8"),
        Case("sendgrid signed deep", sendgrid(DEEP_ARRAY), 400, "sendgrid", "too-deep"),
        Case("sendgrid signed NaN soup", sendgrid(b"[{]"), 400, "sendgrid", "not-json"),
        Case("postmark array", post("/webhooks/postmark", b"[]", ("Authorization", BASIC_GOOD)),
             422, "postmark", "wrong-shape"),
        Case("postmark text", post("/webhooks/postmark", b"nope", ("Authorization",
             BASIC_GOOD)), 400, "postmark", "not-json"),
        Case("postmark huge int", post("/webhooks/postmark", b"9" * 5000, ("Authorization",
             BASIC_GOOD)), 400, "postmark", "not-json"),
        Case("mailgun signed, no event-data", mailgun({}), 422, "mailgun", "wrong-shape"),
        Case("mailgun signed, event-data list", mailgun({"event-data": []}), 422, "mailgun",
             "wrong-shape"),
        Case("ses signed, Message not JSON", sns({"Message": "hello"}), 400, "ses", "not-json"),
        Case("ses signed, Message an array", sns({"Message": "[]"}), 422, "ses", "wrong-shape"),
        # -- size, routes, methods
        Case("dsn too large", post("/webhooks/dsn", b"x" * (BAD_CONFIG.max_body_bytes + 1),
             ("Authorization", BEARER_GOOD)), 413, "dsn", "too-large"),
        Case("unknown provider", post("/webhooks/sparkpost", b"{}"), 404, "other", "not-found"),
        Case("no such path", post("/nope", b""), 404, "other", "not-found"),
        Case("GET a webhook", request_bytes("GET", "/webhooks/ses"), 405, "ses",
             "method-not-allowed"),
        Case("PUT a webhook", request_bytes("PUT", "/webhooks/dsn", b"x"), 405, "dsn",
             "method-not-allowed"),
        Case("percent-encoded junk path", post("/webhooks/%ff%00", b""), 404, "other",
             "not-found"),
    ]  # fmt: skip
    # Chunked, no length, too large: refused after limit + one chunk.
    chunk = b"%x\r\n%s\r\n" % (4000, b"y" * 4000)
    chunked = (
        b"POST /webhooks/sendgrid HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 101 + b"0\r\n\r\n"
    )
    out.append(Case("sendgrid chunked too large", chunked, 413, "sendgrid", "too-large"))
    # Refused by aiohttp's HTTP parser, before any route: still JSON, counted as 'other'.
    twice = post("/webhooks/dsn", b"x", ("Content-Type", "a/b"), ("Content-Type", "c/d"))
    out += [
        Case("repeated Content-Type", twice, 400, "other", "bad-http"),
        Case("bad chunk framing", chunked.replace(b"fa0", b"zz"), 400, "other", "bad-http"),
        Case("header line over 8 KiB", post("/webhooks/dsn", b"x", ("X-Pad", "p" * 9000)),
             400, "other", "bad-http"),
        Case("negative length", post("/webhooks/dsn", b"").replace(b"Length: 0", b"Length: -1"),
             400, "other", "bad-http"),
    ]  # fmt: skip
    return out


CASES = cases()


@pytest.fixture(scope="module")
def intake() -> Iterator[tuple[int, Recorder]]:
    deliver = Recorder()
    with serving(make_runner(BAD_CONFIG, deliver, clock=lambda: NOW)) as port:
        yield port, deliver


def refused_total(provider: str, reason: str) -> float:
    labels = {"provider": provider, "reason": reason}
    return REGISTRY.get_sample_value("convotrail_intake_refused_total", labels) or 0.0


def test_there_are_at_least_50_kinds_of_bad_input() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 50
    assert {case.reason for case in CASES} <= REFUSAL_REASONS


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_a_counted_json_refusal(case: Case, intake: tuple[int, Recorder]) -> None:
    port, deliver = intake
    before = refused_total(case.provider, case.reason)
    delivered = len(deliver.calls)
    reply = exchange(port, case.raw)
    assert (reply.status, reply.json()["reason"]) == (case.status, case.reason), reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    assert refused_total(case.provider, case.reason) == before + 1
    assert len(deliver.calls) == delivered  # nothing refused is handed on
    # Good input right after is still taken: the server is up and not wedged.
    good = valid_request("dsn")
    ok = exchange(port, post(good.path, good.body, *good.headers.items()))
    assert ok.status == 202


def test_lowercase_schemes_are_accepted(intake: tuple[int, Recorder]) -> None:
    port, _ = intake
    dsn = exchange(port, post("/webhooks/dsn", b"bounce", ("Authorization", f"bearer {DSN_TOKEN}")))
    basic = BASIC_GOOD.replace("Basic", "BASIC")
    postmark = exchange(port, post("/webhooks/postmark", b"{}", ("Authorization", basic)))
    assert (dsn.status, postmark.status) == (202, 202)


def test_a_body_that_never_comes_is_cut_off(intake: tuple[int, Recorder]) -> None:
    port, _ = intake
    before = refused_total("dsn", "read-timeout")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/dsn HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
            b"Authorization: " + BEARER_GOOD.encode() + b"\r\n\r\nonly ten b"
        )
        started = time.monotonic()
        reply = sock.recv(65536)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408")
    assert 0.5 < elapsed < 5
    assert refused_total("dsn", "read-timeout") == before + 1


def test_headers_that_never_end_are_cut_off(intake: tuple[int, Recorder]) -> None:
    port, _ = intake
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/dsn HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed, without a word: no request to answer
        assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- hypothesis

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["signature", "event-data", "Type", "Signature", "SignatureVersion",
                         "Message", "TopicArn", "MessageId", "Timestamp"]),
        json_values,
    ).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
# Any byte a header value may hold on the wire (no CR, LF, NUL or other controls: those
# are refused by the HTTP parser itself, before any of our code).
header_values = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()
)
header_names = st.sampled_from(
    [
        "Authorization",
        "X-Twilio-Email-Event-Webhook-Signature",
        "X-Twilio-Email-Event-Webhook-Timestamp",
        "Content-Type",
        "x-amz-sns-message-type",
    ]
)
COMMON = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@COMMON
@given(
    provider=st.sampled_from(PROVIDERS),
    body=bodies,
    headers=st.lists(st.tuples(header_names, header_values), max_size=4),
)
def test_generated_unauthenticated_requests_are_refused_and_counted(
    intake: tuple[int, Recorder], provider: str, body: bytes, headers: list[tuple[str, bytes]]
) -> None:
    port, deliver = intake
    delivered = len(deliver.calls)
    bad_http = refused_total("other", "bad-http")
    reply = exchange(port, post(f"/webhooks/{provider}", body, *headers))
    reason = reply.json()["reason"]
    if reply.status == 400:  # refused by the HTTP parser (e.g. a repeated Content-Type)
        assert (reason, refused_total("other", reason)) == ("bad-http", bad_http + 1)
        return
    assert reply.status == 401, reply.body[:300]
    assert reason in REASONS
    assert refused_total(provider, reason) >= 1
    assert len(deliver.calls) == delivered


@COMMON
@given(provider=st.sampled_from(["sendgrid", "postmark", "dsn"]), body=bodies)
def test_generated_authenticated_bodies_are_taken_or_refused_as_malformed(
    intake: tuple[int, Recorder], provider: str, body: bytes
) -> None:
    port, deliver = intake
    if provider == "sendgrid":
        raw = sendgrid(body)
    else:
        auth = BASIC_GOOD if provider == "postmark" else BEARER_GOOD
        raw = post(f"/webhooks/{provider}", body, ("Authorization", auth))
    delivered = len(deliver.calls)
    reply = exchange(port, raw)
    if reply.status == 202:
        assert deliver.calls[-1] == (provider, body)
    else:
        assert reply.status in (400, 422), reply.body[:300]
        assert reply.json()["reason"] in shape.REASONS
        assert len(deliver.calls) == delivered
