"""SendGrid: ECDSA P-256 over the timestamp header and the raw body."""

from __future__ import annotations

import binascii
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.intake.auth.common import (
    BAD_SIGNATURE,
    DEFAULT_MAX_AGE,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    Unauthorized,
    b64decode,
    check_fresh,
    header_bytes,
    parse_unix_seconds,
)

SENDGRID_SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo),
    or the same key as PEM. Raises ValueError if it is not a P-256 public key."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        else:
            key = serialization.load_der_public_key(b64decode("".join(stripped.split())))
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
        der = b64decode(signature.strip())
        signed = header_bytes(timestamp) + body  # the bytes SendGrid signed, as they came
        public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        # binascii.Error is a ValueError: undecodable base64 is just a bad signature.
        raise Unauthorized(BAD_SIGNATURE) from None
    check_fresh(parse_unix_seconds(timestamp.strip()), now, max_age)
