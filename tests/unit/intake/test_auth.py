"""Webhook authentication: each provider's scheme accepts what it should and refuses the
rest with a precise reason."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.intake import auth
from connectors.intake.auth import ReplayGuard, Unauthorized
from connectors.intake.config import IntakeConfig, IntakeConfigError
from connectors.intake.signing import sign_mailgun, sign_sendgrid, sign_sns

NOW = 1_750_000_000.0
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-notifications"


def refused(reason: str, call: Callable[[], object]) -> None:
    with pytest.raises(Unauthorized) as caught:
        call()
    assert caught.value.reason == reason


# --------------------------------------------------------------------------- Mailgun

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def mailgun_body(key: str = KEY, *, timestamp: int = int(NOW), token: str = "t" * 50) -> bytes:
    signature = sign_mailgun(key, str(timestamp), token)
    return json.dumps(
        {
            "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
            "event-data": {"event": "failed", "severity": "permanent"},
        }
    ).encode()


def verify_mailgun(body: bytes, guard: ReplayGuard | None = None, now: float = NOW) -> None:
    guard = ReplayGuard() if guard is None else guard
    auth.verify_mailgun(body, signing_key=KEY, now=now, replay_guard=guard)


def test_mailgun_valid_signature_passes() -> None:
    verify_mailgun(mailgun_body())


def test_mailgun_signature_is_hmac_sha256_hex_of_timestamp_and_token() -> None:
    # Independent of our helper: the scheme as Mailgun documents it.
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1529006854abc", hashlib.sha256).hexdigest()
    assert sign_mailgun("k", "1529006854", "abc") == expected


def test_mailgun_wrong_key_is_a_bad_signature() -> None:
    refused("bad-signature", lambda: verify_mailgun(mailgun_body("another-key")))


def test_mailgun_tampered_token_is_a_bad_signature() -> None:
    document = json.loads(mailgun_body())
    document["signature"]["token"] = "u" * 50
    refused("bad-signature", lambda: verify_mailgun(json.dumps(document).encode()))


@pytest.mark.parametrize("offset", [-301, 301])
def test_mailgun_timestamp_outside_the_window_is_stale(offset: int) -> None:
    body = mailgun_body(timestamp=int(NOW) + offset)
    refused("stale-timestamp", lambda: verify_mailgun(body))


def test_mailgun_timestamp_at_the_edge_of_the_window_passes() -> None:
    verify_mailgun(mailgun_body(timestamp=int(NOW) - 300))


def test_mailgun_replayed_token_is_refused_and_another_token_passes() -> None:
    guard = ReplayGuard()
    verify_mailgun(mailgun_body(), guard)
    refused("replayed-token", lambda: verify_mailgun(mailgun_body(), guard, now=NOW + 10))
    verify_mailgun(mailgun_body(token="v" * 50), guard)


def test_mailgun_forged_request_does_not_burn_the_genuine_token() -> None:
    guard = ReplayGuard()
    refused("bad-signature", lambda: verify_mailgun(mailgun_body("wrong"), guard))
    verify_mailgun(mailgun_body(), guard)


def test_mailgun_unsigned_or_unreadable_bodies() -> None:
    refused("missing-credentials", lambda: verify_mailgun(b'{"event-data": {}}'))
    no_token = b'{"signature": {"timestamp": "1", "signature": "ab"}}'
    refused("missing-credentials", lambda: verify_mailgun(no_token))
    refused("malformed", lambda: verify_mailgun(b"timestamp=1&token=x"))
    refused("malformed", lambda: verify_mailgun(b"[1, 2]"))


def test_mailgun_signed_timestamp_that_is_not_unix_seconds() -> None:
    signature = sign_mailgun(KEY, "yesterday", "t" * 50)
    body = json.dumps(
        {"signature": {"timestamp": "yesterday", "token": "t" * 50, "signature": signature}}
    ).encode()
    refused("bad-timestamp", lambda: verify_mailgun(body))


def test_mailgun_not_configured_refuses() -> None:
    refused(
        "not-configured",
        lambda: auth.verify_mailgun(
            mailgun_body(), signing_key=None, now=NOW, replay_guard=ReplayGuard()
        ),
    )


def test_replay_guard_forgets_tokens_once_their_window_is_over() -> None:
    guard = ReplayGuard()
    guard.check_and_remember("a", expires_at=100.0, now=0.0)
    guard.check_and_remember("b", expires_at=200.0, now=0.0)
    refused("replayed-token", lambda: guard.check_and_remember("a", expires_at=100, now=99))
    guard.check_and_remember("c", expires_at=300.0, now=150.0)  # evicts a
    assert len(guard) == 2
    guard.check_and_remember("a", expires_at=400.0, now=150.0)
    guard.check_and_remember("d", expires_at=500.0, now=450.0)  # evicts b, c, a
    assert len(guard) == 1


def test_replay_guard_forget_lets_the_same_token_pass_once_more() -> None:
    guard = ReplayGuard()
    guard.check_and_remember("a", expires_at=100.0, now=0.0)
    guard.forget("a")
    guard.check_and_remember("a", expires_at=100.0, now=1.0)
    refused("replayed-token", lambda: guard.check_and_remember("a", expires_at=100, now=2))
    guard.check_and_remember("z", expires_at=300.0, now=150.0)  # stale heap entries are skipped
    assert len(guard) == 1


# --------------------------------------------------------------------------- SendGrid


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


BODY = b'[{"email":"a@example.com","event":"bounce","sg_event_id":"e1"}]\r\n'


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float = NOW,
) -> None:
    auth.verify_sendgrid(body, public_key=key, signature=signature, timestamp=timestamp, now=now)


def test_sendgrid_valid_signature_passes(ec_key: ec.EllipticCurvePrivateKey) -> None:
    public = auth.load_sendgrid_public_key(sendgrid_public_b64(ec_key))
    timestamp = str(int(NOW))
    verify_sendgrid(public, BODY, sign_sendgrid(ec_key, timestamp, BODY), timestamp)


def test_sendgrid_published_test_vector_verifies() -> None:
    # The vector SendGrid's own libraries test against: key as the console shows it.
    key = auth.load_sendgrid_public_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7"
        "yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
    )
    payload = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    signature = (
        "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nl"
        "xFDWYNH2j/0="
    )
    verify_sendgrid(key, payload, signature, "1588788367", now=1588788367)
    refused("bad-signature", lambda: verify_sendgrid(key, b"payload", signature, "1588788367"))


def test_sendgrid_accepts_the_key_as_pem(ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = auth.load_sendgrid_public_key(pem.decode())
    timestamp = str(int(NOW))
    verify_sendgrid(public, BODY, sign_sendgrid(ec_key, timestamp, BODY), timestamp)


def test_sendgrid_tampered_body_or_timestamp_fails(ec_key: ec.EllipticCurvePrivateKey) -> None:
    public = ec_key.public_key()
    timestamp = str(int(NOW))
    signature = sign_sendgrid(ec_key, timestamp, BODY)
    tampered = BODY.replace(b"bounce", b"delivered")
    refused("bad-signature", lambda: verify_sendgrid(public, tampered, signature, timestamp))
    refused("bad-signature", lambda: verify_sendgrid(public, BODY, signature, str(int(NOW) - 1)))
    refused("bad-signature", lambda: verify_sendgrid(public, BODY, "not base64!", timestamp))
    refused("bad-signature", lambda: verify_sendgrid(public, BODY, "AAAA", timestamp))


def test_sendgrid_wrong_key_fails(ec_key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    timestamp = str(int(NOW))
    signature = sign_sendgrid(ec_key, timestamp, BODY)
    refused("bad-signature", lambda: verify_sendgrid(other, BODY, signature, timestamp))


def test_sendgrid_stale_timestamp_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    timestamp = str(int(NOW) - 301)
    signature = sign_sendgrid(ec_key, timestamp, BODY)
    refused(
        "stale-timestamp", lambda: verify_sendgrid(ec_key.public_key(), BODY, signature, timestamp)
    )


def test_sendgrid_missing_headers_or_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    public = ec_key.public_key()
    timestamp = str(int(NOW))
    signature = sign_sendgrid(ec_key, timestamp, BODY)
    refused("missing-credentials", lambda: verify_sendgrid(public, BODY, None, timestamp))
    refused("missing-credentials", lambda: verify_sendgrid(public, BODY, signature, None))
    refused("not-configured", lambda: verify_sendgrid(None, BODY, signature, timestamp))


def test_sendgrid_key_must_be_a_p256_public_key() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = p384.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="P-256"):
        auth.load_sendgrid_public_key(base64.b64encode(der).decode())
    with pytest.raises(ValueError):
        auth.load_sendgrid_public_key("not a key")


# --------------------------------------------------------------------------- Amazon SNS


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.amazonaws.com")])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def certificate(rsa_key: rsa.RSAPrivateKey) -> x509.Certificate:
    return self_signed(rsa_key)


def notification(**changes: object) -> dict[str, object]:
    message: dict[str, object] = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps({"eventType": "Bounce", "bounce": {"bounceType": "Permanent"}}),
        "Timestamp": "2025-06-15T10:00:00.000Z",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not None}


def confirmation(kind: str = "SubscriptionConfirmation") -> dict[str, object]:
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "Timestamp": "2025-06-15T10:00:00.000Z",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
    }


def test_sns_string_to_sign_is_aws_canonical_form() -> None:
    message = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:t",
        "Subject": "s",
        "Message": "line 1\nline 2",
        "Timestamp": "2025-01-01T00:00:00.000Z",
        "UnsubscribeURL": "https://example.invalid/",  # not signed
    }
    assert auth.sns_string_to_sign(message) == (
        b"Message\nline 1\nline 2\nMessageId\nm-1\nSubject\ns\n"
        b"Timestamp\n2025-01-01T00:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
    )
    del message["Subject"]
    assert b"Subject" not in auth.sns_string_to_sign(message)
    subscription = confirmation()
    assert auth.sns_string_to_sign(subscription).decode().split("\n")[::2] == [
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
        "",
    ]


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", ["Amazon SES Email Event Notification", None])
def test_sns_valid_notification_passes(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate, version: str, subject: str | None
) -> None:
    signed = sign_sns(rsa_key, notification(Subject=subject), version)
    auth.verify_sns(signed, certificates=[certificate])
    auth.verify_sns(signed, certificates=[certificate], topic_arns=frozenset({TOPIC}))


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_confirmations_verify(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate, kind: str
) -> None:
    auth.verify_sns(sign_sns(rsa_key, confirmation(kind)), certificates=[certificate])


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_tampered_message_fails(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate, version: str
) -> None:
    signed = sign_sns(rsa_key, notification(), version)
    signed["Message"] = json.dumps({"eventType": "Delivery"})
    refused("bad-signature", lambda: auth.verify_sns(signed, certificates=[certificate]))


def test_sns_version_mismatch_fails(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate
) -> None:
    signed = sign_sns(rsa_key, notification(), "1")
    signed["SignatureVersion"] = "2"
    refused("bad-signature", lambda: auth.verify_sns(signed, certificates=[certificate]))


def test_sns_signature_from_another_key_fails_and_a_bundle_is_searched(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate
) -> None:
    other = self_signed(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    signed = sign_sns(rsa_key, notification())
    refused("bad-signature", lambda: auth.verify_sns(signed, certificates=[other]))
    auth.verify_sns(signed, certificates=[other, certificate])  # e.g. during a rotation


def test_sns_wrong_topic_is_refused(
    rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate
) -> None:
    signed = sign_sns(rsa_key, notification(TopicArn="arn:aws:sns:us-east-1:999:other"))
    refused(
        "unknown-topic",
        lambda: auth.verify_sns(signed, certificates=[certificate], topic_arns=frozenset({TOPIC})),
    )


def test_sns_refusals(rsa_key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
    certs = [certificate]
    signed = sign_sns(rsa_key, notification())
    refused("not-configured", lambda: auth.verify_sns(signed, certificates=[]))
    unsigned = {k: v for k, v in signed.items() if k != "Signature"}
    refused("missing-credentials", lambda: auth.verify_sns(unsigned, certificates=certs))
    v3 = {**signed, "SignatureVersion": "3"}
    refused("unsupported-signature-version", lambda: auth.verify_sns(v3, certificates=certs))
    other_type = {**signed, "Type": "Surprise"}
    refused("unsupported-type", lambda: auth.verify_sns(other_type, certificates=certs))
    no_id = {k: v for k, v in signed.items() if k != "MessageId"}
    refused("malformed", lambda: auth.verify_sns(no_id, certificates=certs))
    garbled = {**signed, "Signature": "@@@"}
    refused("bad-signature", lambda: auth.verify_sns(garbled, certificates=certs))
    refused("malformed", lambda: auth.parse_sns(b"not json"))


def test_sns_certificates_load_from_a_pem_bundle(
    certificate: x509.Certificate, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert auth.load_sns_certificates(pem + pem) == (certificate, certificate)
    with pytest.raises(ValueError):
        auth.load_sns_certificates("no certificate here")


# --------------------------------------------------------------------------- Postmark, DSN


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_postmark_basic_auth() -> None:
    def check(header: str | None) -> None:
        auth.verify_basic_auth(header, user="postmark", password="s3cret:with-colon")

    check(basic("postmark", "s3cret:with-colon"))
    check("basic " + basic("postmark", "s3cret:with-colon").split()[1])  # scheme is any case
    refused("bad-credentials", lambda: check(basic("postmark", "guess")))
    refused("bad-credentials", lambda: check(basic("someone", "s3cret:with-colon")))
    refused("bad-credentials", lambda: check("Basic !!!"))
    refused("bad-credentials", lambda: check("Basic " + base64.b64encode(b"nocolon").decode()))
    refused("missing-credentials", lambda: check(None))
    refused("missing-credentials", lambda: check("Bearer abc"))
    refused(
        "not-configured",
        lambda: auth.verify_basic_auth(basic("a", "b"), user="a", password=None),
    )


def test_dsn_bearer_token() -> None:
    def check(header: str | None) -> None:
        auth.verify_bearer(header, token="dsn-token-0123456789")

    check("Bearer dsn-token-0123456789")
    refused("bad-credentials", lambda: check("Bearer dsn-token-012345678"))
    refused("bad-credentials", lambda: check("Bearer dsn-tökén"))
    refused("missing-credentials", lambda: check(None))
    refused("missing-credentials", lambda: check("Bearer "))
    refused("missing-credentials", lambda: check(basic("a", "b")))
    refused("not-configured", lambda: auth.verify_bearer("Bearer x", token=None))


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Unauthorized("because")


# --------------------------------------------------------------------------- any input


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), header=st.text(max_size=60) | st.none())
def test_arbitrary_input_only_ever_raises_unauthorized(body: bytes, header: str | None) -> None:
    # The HTTP layer turns Unauthorized into 401; anything else would be a 500.
    key = _EC_PUBLIC
    checks: list[Callable[[], None]] = [
        lambda: verify_mailgun(body),
        lambda: verify_sendgrid(key, body, header, header),
        lambda: auth.verify_sns(auth.parse_sns(body), certificates=[_CERT]),
        lambda: auth.verify_basic_auth(header, user="u", password="p"),
        lambda: auth.verify_bearer(header, token="t"),
    ]
    for check in checks:
        with pytest.raises(Unauthorized):
            check()


@settings(max_examples=200, deadline=None)
@given(
    message=st.dictionaries(
        st.sampled_from(["Type", "Message", "MessageId", "Signature", "SignatureVersion", "X"]),
        st.text(max_size=20) | st.integers() | st.none() | st.lists(st.integers(), max_size=2),
    )
)
def test_arbitrary_sns_documents_only_ever_raise_unauthorized(message: dict[str, object]) -> None:
    with pytest.raises(Unauthorized):
        auth.verify_sns(message, certificates=[_CERT])


_CERT = self_signed(rsa.generate_private_key(public_exponent=65537, key_size=1024))
_EC_PUBLIC = ec.generate_private_key(ec.SECP256R1()).public_key()


# --------------------------------------------------------------------------- configuration


def test_config_from_env(tmp_path: Path, certificate: x509.Certificate) -> None:
    pem_file = tmp_path / "sns.pem"
    pem_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    config = IntakeConfig.from_env(
        {
            "CONVOTRAIL_INTAKE_MAX_BODY_BYTES": "2048",
            "CONVOTRAIL_MAILGUN_SIGNING_KEY": "mg-key",
            "CONVOTRAIL_SENDGRID_PUBLIC_KEY": sendgrid_public_b64(key),
            "CONVOTRAIL_SNS_CERTIFICATE": str(pem_file),
            "CONVOTRAIL_SNS_TOPIC_ARNS": f"{TOPIC}, arn:aws:sns:us-east-1:1:b,",
            "CONVOTRAIL_POSTMARK_USER": "pm",
            "CONVOTRAIL_POSTMARK_PASSWORD": "pw",
            "CONVOTRAIL_DSN_TOKEN": "tok",
        }
    )
    assert config.max_body_bytes == 2048
    assert config.sns_topic_arns == frozenset({TOPIC, "arn:aws:sns:us-east-1:1:b"})
    assert config.sns_certificate_pem is not None
    assert "BEGIN CERTIFICATE" in config.sns_certificate_pem
    assert config.unconfigured() == ()
    assert "mg-key" not in repr(config) and "'pw'" not in repr(config)


def test_config_defaults_refuse_every_provider() -> None:
    config = IntakeConfig.from_env({})
    # 1 MiB (Kafka's default max message) less 16 KiB for key, headers and framing.
    assert config.max_body_bytes == 1024 * 1024 - 16 * 1024 == 1_032_192
    assert (config.read_timeout, config.delivery_timeout) == (10.0, 8.0)
    assert config.mailgun_max_age == config.sendgrid_max_age == 300
    assert set(config.unconfigured()) == {"ses", "sendgrid", "mailgun", "postmark", "dsn"}


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CONVOTRAIL_INTAKE_MAX_BODY_BYTES": "1MiB"}, "CONVOTRAIL_INTAKE_MAX_BODY_BYTES"),
        ({"CONVOTRAIL_INTAKE_MAX_BODY_BYTES": "0"}, "CONVOTRAIL_INTAKE_MAX_BODY_BYTES"),
        # Above what fits a Kafka message: Kafka would refuse the record (503 forever).
        ({"CONVOTRAIL_INTAKE_MAX_BODY_BYTES": "1048576"}, "CONVOTRAIL_INTAKE_MAX_BODY_BYTES"),
        (
            {
                "CONVOTRAIL_KAFKA_MAX_MESSAGE_BYTES": "65536",
                "CONVOTRAIL_INTAKE_MAX_BODY_BYTES": "60000",
            },
            "CONVOTRAIL_INTAKE_MAX_BODY_BYTES",
        ),
        ({"CONVOTRAIL_KAFKA_MAX_MESSAGE_BYTES": "1000"}, "CONVOTRAIL_KAFKA_MAX_MESSAGE_BYTES"),
        ({"CONVOTRAIL_INTAKE_READ_TIMEOUT": "nan"}, "CONVOTRAIL_INTAKE_READ_TIMEOUT"),
        ({"CONVOTRAIL_INTAKE_DELIVERY_TIMEOUT": "-1"}, "CONVOTRAIL_INTAKE_DELIVERY_TIMEOUT"),
        ({"CONVOTRAIL_SENDGRID_PUBLIC_KEY": "bm9wZQ=="}, "CONVOTRAIL_SENDGRID_PUBLIC_KEY"),
        ({"CONVOTRAIL_SNS_CERTIFICATE": "/nonexistent/sns.pem"}, "CONVOTRAIL_SNS_CERTIFICATE"),
        ({"CONVOTRAIL_SNS_TOPIC_ARNS": "my-topic"}, "CONVOTRAIL_SNS_TOPIC_ARNS"),
        ({"CONVOTRAIL_POSTMARK_USER": "pm"}, "CONVOTRAIL_POSTMARK_PASSWORD"),
    ],
)
def test_config_bad_values_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        IntakeConfig.from_env(environ)
    assert isinstance(caught.value, IntakeConfigError)


def test_config_sns_file_without_a_certificate(tmp_path: Path) -> None:
    path = tmp_path / "empty.pem"
    path.write_text("nothing\n")
    with pytest.raises(ValueError, match="CONVOTRAIL_SNS_CERTIFICATE"):
        IntakeConfig.from_env({"CONVOTRAIL_SNS_CERTIFICATE": str(path)})
