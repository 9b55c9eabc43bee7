"""The webhook intake as a user runs it (`convotrail delivery serve`), against the
real broker: each provider's authenticated request lands on delivery-notifications
with the provider header and its message's key; requests that fail authentication
get 401 and are counted; a replayed Mailgun token is refused; a body over the limit
gets 413; nothing refused reaches Kafka."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from connectors.intake.signing import sign_mailgun, sign_sendgrid, sign_sns
from convotrail.settings import Settings
from schemas import headers as h
from tests.support.delivery import FIXTURES, header, records
from tests.support.metrics import scrape
from tests.support.ports import free_ports
from tests.support.waiting import wait_until
from tests.support.worker import worker_env

pytestmark = pytest.mark.integration

MAILGUN_KEY = "key-" + "3ax6xnjp29jd6fds4gc373sgvjxteol0"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-notifications"
LIMIT = 64 * 1024


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def _mailgun_body(token: str, signature: str | None = None) -> bytes:
    body = json.loads((FIXTURES / "delivery" / "mailgun" / "failed_permanent.json").read_text())
    timestamp = str(int(time.time()))
    body["signature"] = {
        "timestamp": timestamp,
        "token": token,
        "signature": signature or sign_mailgun(MAILGUN_KEY, timestamp, token),
    }
    return json.dumps(body).encode()


def test_the_intake_lets_in_exactly_the_providers_that_authenticate(
    topics: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sendgrid_public = base64.b64encode(der).decode()  # as SendGrid shows the key
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = tmp_path / "sns.pem"
    certificate.write_bytes(_certificate(sns_key))
    env = worker_env(topics, tmp_path / "home")
    env.update(
        CONVOTRAIL_MAILGUN_SIGNING_KEY=MAILGUN_KEY,
        CONVOTRAIL_SENDGRID_PUBLIC_KEY=sendgrid_public,
        CONVOTRAIL_SNS_CERTIFICATE=str(certificate),
        CONVOTRAIL_SNS_TOPIC_ARNS=TOPIC_ARN,
        CONVOTRAIL_POSTMARK_USER="postmark",
        CONVOTRAIL_POSTMARK_PASSWORD="s3cret-pm",
        CONVOTRAIL_DSN_TOKEN="dsn-token-1",
        CONVOTRAIL_INTAKE_MAX_BODY_BYTES=str(LIMIT),
    )
    log = (tmp_path / "intake.log").open("wb")
    intake = subprocess.Popen(
        [sys.executable, "-m", "convotrail", "delivery", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/webhooks"
    try:
        wait_until(lambda: _ready(port), timeout=60, interval=0.5, what="the intake to listen")
        accepted: Counter[str] = Counter()

        # Mailgun: HMAC over timestamp + token; the same token twice is a replay.
        token = secrets.token_hex(25)
        status, _ = _post(f"{base}/mailgun", _mailgun_body(token))
        assert status == 202
        accepted["mailgun"] += 1
        assert _post(f"{base}/mailgun", _mailgun_body(token))[0] == 401  # replayed
        assert _post(f"{base}/mailgun", _mailgun_body(secrets.token_hex(25), "0" * 64))[0] == 401

        # SendGrid: ECDSA over timestamp + body; a batch is split into its events.
        batch = (FIXTURES / "delivery" / "sendgrid" / "events.json").read_bytes()
        stamp = str(int(time.time()))
        signed = {
            "X-Twilio-Email-Event-Webhook-Signature": sign_sendgrid(sendgrid_key, stamp, batch),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }
        status, reply = _post(f"{base}/sendgrid", batch, signed)
        assert status == 202 and json.loads(reply) == {"accepted": len(json.loads(batch))}
        accepted["sendgrid"] += len(json.loads(batch))
        assert _post(f"{base}/sendgrid", batch + b" ", signed)[0] == 401  # body tampered

        # SNS: signature over AWS's canonical string, verified with the configured cert.
        sns = json.loads((FIXTURES / "delivery" / "ses" / "sns_bounce.json").read_text())
        sns["TopicArn"] = TOPIC_ARN
        sns.pop("Signature", None)
        body = json.dumps(sign_sns(sns_key, sns, "2")).encode()
        assert _post(f"{base}/ses", body)[0] == 202
        accepted["ses"] += 1
        forged = json.dumps({**json.loads(body), "Message": "{}"}).encode()
        assert _post(f"{base}/ses", forged)[0] == 401

        # Postmark: basic auth.
        bounce = (FIXTURES / "delivery" / "postmark" / "bounce_hard.json").read_bytes()
        good = "Basic " + base64.b64encode(b"postmark:s3cret-pm").decode()
        bad = "Basic " + base64.b64encode(b"postmark:guess").decode()
        assert _post(f"{base}/postmark", bounce, {"Authorization": good})[0] == 202
        accepted["postmark"] += 1
        assert _post(f"{base}/postmark", bounce, {"Authorization": bad})[0] == 401
        assert _post(f"{base}/postmark", bounce)[0] == 401

        # Raw bounce emails: a bearer token; and a body over the limit is 413.
        email = (FIXTURES / "bounces" / "postfix_01.txt").read_bytes()
        assert _post(f"{base}/dsn", email, {"Authorization": "Bearer dsn-token-1"})[0] == 202
        accepted["dsn"] += 1
        huge = email + b"x" * LIMIT
        assert _post(f"{base}/dsn", huge, {"Authorization": "Bearer dsn-token-1"})[0] == 413

        on_topic = wait_until(
            lambda: (found := records(topics, topics.topics.delivery_notifications))
            and len(found) >= sum(accepted.values()) and found,
            timeout=30, interval=0.5, what="the accepted notifications on Kafka",
        )  # fmt: skip
        assert Counter(header(r, h.PROVIDER) for r in on_topic) == accepted
        mailgun_record = next(r for r in on_topic if header(r, h.PROVIDER) == "mailgun")
        assert mailgun_record.key() == b"msg-90d1e4"  # keyed by the message it is about
        metrics = scrape(port)  # the intake serves /metrics on its own port
        unauthorized = {
            provider: metrics.get(
                f'convotrail_intake_requests_total{{outcome="unauthorized",provider="{provider}"}}',
                0,
            )
            for provider in ("mailgun", "sendgrid", "ses", "postmark")
        }
        assert unauthorized == {"mailgun": 2, "sendgrid": 1, "ses": 1, "postmark": 2}
        assert metrics['convotrail_intake_requests_total{outcome="too-large",provider="dsn"}'] == 1
        assert (
            metrics[
                'convotrail_intake_unauthorized_total{provider="mailgun",reason="replayed-token"}'
            ]
            == 1
        )
        assert any(name.startswith("convotrail_build_info{") for name in metrics)
        # Ready: the broker answered a metadata request for delivery-notifications.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            readiness = json.loads(response.read())
        assert readiness["ready"] is True, readiness
        assert topics.topics.delivery_notifications in readiness["detail"]
    finally:
        intake.terminate()
        intake.wait(timeout=30)
        log.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
