"""Authentication of provider webhooks: pure functions, no I/O, the time passed in.

One verifier per provider. Each returns None when the request is authentic and raises
`Unauthorized(reason)` otherwise; `reason` is one of the short slugs in `REASONS` (a
closed set, because it becomes a Prometheus label and an HTTP reply: nothing taken
from the request ever lands there).

A verifier whose credentials are not configured (None) refuses everything with
'not-configured': an intake that someone forgot to configure must not turn into an
open door.

Secrets and signatures are compared with `hmac.compare_digest` (constant time), so the
time a refusal takes says nothing about how much of a guess was right.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import hmac
import json
from collections.abc import Mapping, Sequence
from hashlib import sha256
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# Reasons. Kept few and stable: dashboards and alerts key on them.
NOT_CONFIGURED: Final = "not-configured"  # this intake has no credentials for the provider
MISSING_CREDENTIALS: Final = "missing-credentials"  # no signature / Authorization at all
MALFORMED: Final = "malformed"  # the signed envelope cannot be read (not JSON, field missing)
BAD_SIGNATURE: Final = "bad-signature"  # a signature that does not verify
BAD_CREDENTIALS: Final = "bad-credentials"  # wrong user/password or bearer token
BAD_TIMESTAMP: Final = "bad-timestamp"  # signed timestamp is not a unix time
STALE_TIMESTAMP: Final = "stale-timestamp"  # signed timestamp too far from now (either way)
REPLAYED_TOKEN: Final = "replayed-token"  # a Mailgun token seen before within the window
UNKNOWN_TOPIC: Final = "unknown-topic"  # an authentic SNS message from a topic not allowed here
UNSUPPORTED_TYPE: Final = "unsupported-type"  # SNS message Type we do not know how to verify
UNSUPPORTED_SIGNATURE_VERSION: Final = "unsupported-signature-version"  # SNS, not "1" or "2"

REASONS: Final = frozenset(
    {
        NOT_CONFIGURED,
        MISSING_CREDENTIALS,
        MALFORMED,
        BAD_SIGNATURE,
        BAD_CREDENTIALS,
        BAD_TIMESTAMP,
        STALE_TIMESTAMP,
        REPLAYED_TOKEN,
        UNKNOWN_TOPIC,
        UNSUPPORTED_TYPE,
        UNSUPPORTED_SIGNATURE_VERSION,
    }
)

# Replay window for the timestamped schemes (Mailgun, SendGrid). Five minutes absorbs
# clock skew and queueing at the provider while keeping a captured request useless
# soon after.
DEFAULT_MAX_AGE: Final = 300.0

SENDGRID_SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"

# Mailgun tokens are 50 characters; anything far longer is not a Mailgun token and
# should not be kept in the replay guard.
_MAX_TOKEN_LENGTH: Final = 512
# Unix seconds have 10 digits until the year 2286; a longer run is not a timestamp
# (and not worth turning into a huge int).
_MAX_TIMESTAMP_DIGITS: Final = 12


class Unauthorized(Exception):
    """The request is not authentic (or cannot be shown to be). `reason` is a slug from
    `REASONS`; `detail` is for the log only and never contains a secret."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown Unauthorized reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- helpers


def _parse_unix_seconds(value: str) -> int:
    # isascii() as well: str.isdigit() accepts characters such as '²' that int() refuses.
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
        raise Unauthorized(BAD_TIMESTAMP, f"timestamp {value[:32]!r} is not unix seconds")
    return int(value)


def _check_fresh(timestamp: int, now: float, max_age: float) -> None:
    # Both directions: a timestamp far in the future would otherwise stay "fresh" (and
    # replayable) for longer than the window.
    if abs(now - timestamp) > max_age:
        raise Unauthorized(STALE_TIMESTAMP, f"timestamp is {now - timestamp:.0f}s from now")


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii", "strict"), validate=True)


def _json_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized(MALFORMED, "body is not JSON") from None
    if not isinstance(document, dict):
        raise Unauthorized(MALFORMED, "body is not a JSON object")
    return document


# --------------------------------------------------------------------------- Mailgun


class ReplayGuard:
    """Refuses a Mailgun token seen before, remembering each only while it could pass.

    Mailgun signs timestamp+token, not the event data, so a captured signature block
    could be replayed (even with other event data) until its timestamp goes stale. A
    token is kept until its *signed timestamp* plus the max age; after that the
    freshness check refuses it anyway, so forgetting it is safe and memory stays bounded
    by the number of genuine requests in one window. Only tokens of requests whose
    signature verified are remembered, so a forger can neither fill the memory nor burn
    a genuine token in advance.

    The memory is per intake process. With several intake replicas behind a load
    balancer, a replay sent to another replica is not caught: that needs a shared store
    (e.g. Redis SET NX with an expiry) behind the same interface.
    """

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (expires_at, token), oldest first

    def __len__(self) -> int:
        return len(self._expiry)

    def check_and_remember(self, token: str, *, expires_at: float, now: float) -> None:
        """Raise Unauthorized('replayed-token') if `token` is still remembered; otherwise
        remember it until `expires_at`."""
        self._evict(now)
        if token in self._expiry:
            raise Unauthorized(REPLAYED_TOKEN, "token seen before")
        self._expiry[token] = expires_at
        heapq.heappush(self._heap, (expires_at, token))

    def forget(self, token: str) -> None:
        """Let `token` pass once more: for a genuine request that could not be handed on
        (the caller answered 5xx), so that the provider's retry of the very same signed
        request is not mistaken for a replay."""
        self._expiry.pop(token, None)

    def _evict(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires_at, token = heapq.heappop(self._heap)
            # Only if this heap entry is still the live one (forget() and a later
            # remember may have replaced it).
            if self._expiry.get(token) == expires_at:
                del self._expiry[token]


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Hex HMAC-SHA256 of timestamp+token under the webhook signing key (Mailgun's scheme)."""
    message = (timestamp + token).encode("utf-8")
    return hmac.new(signing_key.encode("utf-8"), message, sha256).hexdigest()


def verify_mailgun_signature(
    *,
    signing_key: str | None,
    timestamp: str,
    token: str,
    signature: str,
    now: float,
    replay_guard: ReplayGuard,
    max_age: float = DEFAULT_MAX_AGE,
) -> None:
    """Check one Mailgun signature block: HMAC, then freshness, then replay.

    The order matters: a token enters the replay guard only once the request is known to
    be genuine and fresh."""
    if not signing_key:
        raise Unauthorized(NOT_CONFIGURED)
    expected = mailgun_signature(signing_key, timestamp, token)
    # Bytes on both sides: compare_digest refuses non-ASCII str, and the signature is
    # attacker-supplied.
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("utf-8")):
        raise Unauthorized(BAD_SIGNATURE)
    signed_at = _parse_unix_seconds(timestamp)
    _check_fresh(signed_at, now, max_age)
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise Unauthorized(MALFORMED, "token empty or too long")
    replay_guard.check_and_remember(token, expires_at=signed_at + max_age, now=now)


class MailgunSignature(NamedTuple):
    """The "signature" object of a Mailgun webhook body."""

    timestamp: str
    token: str
    signature: str


def read_mailgun_signature(body: bytes) -> MailgunSignature:
    """The signature block of a Mailgun webhook body: {"signature": {"timestamp",
    "token", "signature"}, "event-data": {...}}."""
    block = _json_object(body).get("signature")
    if not isinstance(block, dict):
        raise Unauthorized(MISSING_CREDENTIALS, "no signature object")
    fields: list[str] = []
    for name in MailgunSignature._fields:
        value = block.get(name)
        # Mailgun sends the timestamp as a string; tolerate a JSON number (not a bool).
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise Unauthorized(MISSING_CREDENTIALS, f"signature.{name} missing")
        fields.append(value)
    return MailgunSignature(*fields)


def verify_mailgun(
    body: bytes,
    *,
    signing_key: str | None,
    now: float,
    replay_guard: ReplayGuard,
    max_age: float = DEFAULT_MAX_AGE,
) -> None:
    """Verify a Mailgun webhook body (see `read_mailgun_signature`)."""
    if not signing_key:
        raise Unauthorized(NOT_CONFIGURED)
    block = read_mailgun_signature(body)
    verify_mailgun_signature(
        signing_key=signing_key,
        timestamp=block.timestamp,
        token=block.token,
        signature=block.signature,
        now=now,
        replay_guard=replay_guard,
        max_age=max_age,
    )


# --------------------------------------------------------------------------- SendGrid


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo),
    or the same key as PEM. Raises ValueError if it is not a P-256 public key."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            key = serialization.load_der_public_key(_b64decode("".join(stripped.split())))
    except (ValueError, UnicodeEncodeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a base64 DER or PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key (SendGrid signs with P-256)")
    return key


def verify_sendgrid(
    body: bytes,
    *,
    public_key: ec.EllipticCurvePublicKey | None,
    signature: str | None,
    timestamp: str | None,
    now: float,
    max_age: float = DEFAULT_MAX_AGE,
) -> None:
    """Verify SendGrid's signed event webhook: ECDSA P-256/SHA-256 over the timestamp
    header's bytes followed by the raw body; `signature` is the base64 DER header value.

    The signature proves origin but not recency: anyone who once saw a signed request
    could post it again forever. The max-age check on the (signed) timestamp bounds that
    replay window; downstream idempotency on sg_event_id covers replays inside it."""
    if public_key is None:
        raise Unauthorized(NOT_CONFIGURED)
    if not signature or not timestamp:
        raise Unauthorized(MISSING_CREDENTIALS, "signature or timestamp header missing")
    try:
        der = _b64decode(signature.strip())
        public_key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        # binascii.Error is a ValueError: undecodable base64 is just a bad signature.
        raise Unauthorized(BAD_SIGNATURE) from None
    _check_fresh(_parse_unix_seconds(timestamp.strip()), now, max_age)


# --------------------------------------------------------------------------- Amazon SNS

SNS_NOTIFICATION: Final = "Notification"
SNS_SUBSCRIPTION_CONFIRMATION: Final = "SubscriptionConfirmation"
SNS_UNSUBSCRIBE_CONFIRMATION: Final = "UnsubscribeConfirmation"

# The fields in the string to sign, in AWS's (byte-wise sorted) order. Subject is
# included only when the message has one.
_SNS_SIGNED_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    SNS_NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SNS_SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    SNS_UNSUBSCRIBE_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SNS_OPTIONAL_FIELDS: Final = frozenset({"Subject"})
_SNS_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1,  # SHA1withRSA, still SNS's default signature version
    "2": hashes.SHA256,  # SHA256withRSA
}


def load_sns_certificates(pem: str) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM bundle. Several are allowed so that the operator can
    install AWS's next signing certificate before the rotation. Raises ValueError if
    there is none or one does not carry an RSA key."""
    try:
        certificates = tuple(x509.load_pem_x509_certificates(pem.encode("utf-8")))
    except ValueError as exc:
        raise ValueError(f"no PEM certificate could be read: {exc}") from None
    for certificate in certificates:
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise ValueError("an SNS signing certificate must carry an RSA key")
    return certificates


def parse_sns(body: bytes) -> dict[str, object]:
    """The JSON document SNS posts (sent as text/plain)."""
    return _json_object(body)


def sns_string_to_sign(message: Mapping[str, object]) -> bytes:
    """AWS's canonical string: for each signed field of the message's Type, in order,
    "Name\\nValue\\n"; Subject only when present."""
    kind = message.get("Type")
    if not isinstance(kind, str):
        raise Unauthorized(MALFORMED, "no Type")
    names = _SNS_SIGNED_FIELDS.get(kind)
    if names is None:
        raise Unauthorized(UNSUPPORTED_TYPE, f"Type {kind[:40]!r}")
    parts: list[str] = []
    for name in names:
        value = message.get(name)
        if value is None and name in _SNS_OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise Unauthorized(MALFORMED, f"{name} missing or not a string")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


def verify_sns(
    message: Mapping[str, object],
    *,
    certificates: Sequence[x509.Certificate],
    topic_arns: frozenset[str] = frozenset(),
) -> None:
    """Verify an SNS message (Notification, SubscriptionConfirmation or
    UnsubscribeConfirmation) against the configured signing certificate(s); with a
    non-empty `topic_arns`, also refuse an authentic message from any other topic.

    The message's SigningCertURL is deliberately ignored. Fetching a URL named by the
    request would let anyone make this service issue HTTP requests of their choosing
    (SSRF), and the trust would rest on a host-name check of that URL rather than on a
    key the operator installed. The operator configures AWS's certificate instead.

    No max-age here: SNS retries a delivery with the original Timestamp and signature,
    for as long as its delivery policy says, so a freshness check would drop genuine
    retries. Replays are absorbed downstream (the MessageId is the idempotency key)."""
    if not certificates:
        raise Unauthorized(NOT_CONFIGURED)
    signature_b64 = message.get("Signature")
    if not isinstance(signature_b64, str) or not signature_b64:
        raise Unauthorized(MISSING_CREDENTIALS, "no Signature")
    version = message.get("SignatureVersion")
    algorithm = _SNS_HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise Unauthorized(UNSUPPORTED_SIGNATURE_VERSION, f"SignatureVersion {version!r:.40}")
    signed = sns_string_to_sign(message)
    try:
        signature = _b64decode(signature_b64)
    except (ValueError, UnicodeEncodeError):
        raise Unauthorized(BAD_SIGNATURE, "Signature is not base64") from None
    if not any(_rsa_verifies(cert, signature, signed, algorithm()) for cert in certificates):
        raise Unauthorized(BAD_SIGNATURE)
    # After the signature, so that 'unknown-topic' only ever names genuine SNS traffic
    # (a subscription to the wrong topic), never a forgery.
    if topic_arns and message.get("TopicArn") not in topic_arns:
        raise Unauthorized(UNKNOWN_TOPIC, f"TopicArn {message.get('TopicArn')!r:.120}")


def _rsa_verifies(
    certificate: x509.Certificate, signature: bytes, signed: bytes, algorithm: hashes.HashAlgorithm
) -> bool:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):  # load_sns_certificates refuses these
        return False
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------- Postmark, DSN


def _split_authorization(authorization: str | None, scheme: str) -> str:
    if not authorization:
        raise Unauthorized(MISSING_CREDENTIALS, "no Authorization header")
    given_scheme, _, credentials = authorization.strip().partition(" ")
    if given_scheme.lower() != scheme or not credentials.strip():
        raise Unauthorized(MISSING_CREDENTIALS, f"Authorization is not {scheme}")
    return credentials.strip()


def verify_basic_auth(authorization: str | None, *, user: str | None, password: str | None) -> None:
    """HTTP basic auth (Postmark puts the user and password in the webhook URL)."""
    if not user or not password:
        raise Unauthorized(NOT_CONFIGURED)
    credentials = _split_authorization(authorization, "basic")
    try:
        decoded = _b64decode(credentials)
    except (ValueError, UnicodeEncodeError):
        raise Unauthorized(BAD_CREDENTIALS, "basic credentials are not base64") from None
    given_user, colon, given_password = decoded.partition(b":")
    # Both comparisons always run (& not and): which half was wrong must not show in the
    # timing either.
    user_ok = hmac.compare_digest(given_user, user.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password, password.encode("utf-8"))
    if not (colon and user_ok & password_ok):
        raise Unauthorized(BAD_CREDENTIALS)


def verify_bearer(authorization: str | None, *, token: str | None) -> None:
    """`Authorization: Bearer <token>` against the configured token (the DSN endpoint)."""
    if not token:
        raise Unauthorized(NOT_CONFIGURED)
    given = _split_authorization(authorization, "bearer")
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise Unauthorized(BAD_CREDENTIALS)
