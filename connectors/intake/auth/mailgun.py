"""Mailgun: HMAC-SHA256 over the signed timestamp and token in the body, a freshness
window, and a replay guard on the token."""

from __future__ import annotations

import heapq
import hmac
from hashlib import sha256
from typing import Final, NamedTuple

from connectors.intake.auth.common import (
    BAD_SIGNATURE,
    DEFAULT_MAX_AGE,
    MALFORMED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    REPLAYED_TOKEN,
    Unauthorized,
    check_fresh,
    json_object,
    parse_unix_seconds,
    text_bytes,
)

# Mailgun tokens are 50 characters; anything far longer is not a Mailgun token and
# should not be kept in the replay guard.
_MAX_TOKEN_LENGTH: Final = 512


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
    """Hex HMAC-SHA256 of timestamp+token under the webhook signing key (Mailgun's scheme).
    Unauthorized('malformed') if they hold a lone surrogate (JSON can carry one)."""
    message = text_bytes(timestamp + token)
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
    if not hmac.compare_digest(expected.encode("ascii"), text_bytes(signature.lower())):
        raise Unauthorized(BAD_SIGNATURE)
    signed_at = parse_unix_seconds(timestamp)
    check_fresh(signed_at, now, max_age)
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
    block = json_object(body).get("signature")
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
