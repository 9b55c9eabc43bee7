"""Signing counterparts of `auth`: test and demo aids only.

The providers sign their webhooks themselves; nothing in production calls these. They
exist so that unit tests, the demo and the integration test can produce requests the
intake accepts, with keys they generated, through the same canonical forms `auth`
verifies (so the two cannot drift apart silently).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from connectors.intake.auth import mailgun_signature, sns_string_to_sign


def sign_mailgun(key: str, timestamp: str, token: str) -> str:
    """The hex signature Mailgun would put next to `timestamp` and `token`."""
    return mailgun_signature(key, timestamp, token)


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The base64 DER value of the X-Twilio-Email-Event-Webhook-Signature header."""
    der = private_key.sign(timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode("ascii")


def sign_sns(
    private_key: rsa.RSAPrivateKey, message: Mapping[str, object], version: str = "2"
) -> dict[str, object]:
    """A copy of the SNS `message` with SignatureVersion and Signature set: version "1"
    signs SHA1withRSA, "2" SHA256withRSA, over AWS's canonical string."""
    algorithm: hashes.HashAlgorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}[version]
    signature = private_key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode("ascii"),
    }
