"""What every verifier shares: the refusal reasons, `Unauthorized`, and the decoding
helpers that turn bad input into a refusal instead of an exception."""

from __future__ import annotations

import base64
import json
from typing import Final

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


def parse_unix_seconds(value: str) -> int:
    # isascii() as well: str.isdigit() accepts characters such as '²' that int() refuses.
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
        raise Unauthorized(BAD_TIMESTAMP, f"timestamp {value[:32]!r} is not unix seconds")
    return int(value)


def check_fresh(timestamp: int, now: float, max_age: float) -> None:
    # Both directions: a timestamp far in the future would otherwise stay "fresh" (and
    # replayable) for longer than the window.
    if abs(now - timestamp) > max_age:
        raise Unauthorized(STALE_TIMESTAMP, f"timestamp is {now - timestamp:.0f}s from now")


def b64decode(value: str) -> bytes:
    """Strict base64; ValueError (binascii.Error) or UnicodeEncodeError when it is not."""
    return base64.b64decode(value.encode("ascii", "strict"), validate=True)


def header_bytes(value: str) -> bytes:
    """A header value as the bytes that came on the wire. aiohttp decodes header bytes
    as UTF-8 with surrogateescape, so a non-UTF-8 byte (`Bearer \\xff`) arrives as a lone
    surrogate that plain .encode() refuses; this gives the original bytes back."""
    return value.encode("utf-8", "surrogateescape")


def text_bytes(value: str) -> bytes:
    """A JSON string as UTF-8; a lone surrogate (JSON allows `\\ud800`) is refused as
    malformed instead of raising UnicodeEncodeError."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise Unauthorized(MALFORMED, "a string holds a lone surrogate") from None


def json_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a deeply nested document (json has no depth limit of its own).
        raise Unauthorized(MALFORMED, "body is not JSON") from None
    if not isinstance(document, dict):
        raise Unauthorized(MALFORMED, "body is not a JSON object")
    return document
