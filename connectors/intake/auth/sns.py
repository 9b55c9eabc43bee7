"""Amazon SNS (SES notifications): SHA1/SHA256withRSA over AWS's canonical string,
verified with the certificate(s) the operator installed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.intake.auth.common import (
    BAD_SIGNATURE,
    MALFORMED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    UNKNOWN_TOPIC,
    UNSUPPORTED_SIGNATURE_VERSION,
    UNSUPPORTED_TYPE,
    Unauthorized,
    b64decode,
    json_object,
    text_bytes,
)

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
    return json_object(body)


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
    return text_bytes("".join(parts))


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
        signature = b64decode(signature_b64)
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
