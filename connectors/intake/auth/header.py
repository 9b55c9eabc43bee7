"""Credentials in the Authorization header: basic auth (Postmark) and a bearer token
(the DSN endpoint). The scheme is case-insensitive (RFC 9110 section 11.1)."""

from __future__ import annotations

import hmac

from connectors.intake.auth.common import (
    BAD_CREDENTIALS,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    Unauthorized,
    b64decode,
    header_bytes,
)


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
        decoded = b64decode(credentials)
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
    # The header's own bytes: a non-UTF-8 byte is a wrong token, not an exception.
    if not hmac.compare_digest(header_bytes(given), token.encode("utf-8")):
        raise Unauthorized(BAD_CREDENTIALS)
