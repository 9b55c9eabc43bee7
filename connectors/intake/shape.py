"""Can an authenticated body be what its provider sends? Pure, no I/O.

Only the envelope is judged here, the part every genuine request of that provider has
(SendGrid posts a JSON array, Mailgun an object with "event-data", ...). A body that
fails it cannot become a delivery event and a retry would fail the same way, so it is
answered 400/422 with the reason (the provider stops retrying; the operator sees the
counter) rather than 503 (retried forever) or published (a dead letter per retry).
Everything inside the envelope is the bounce processor's to judge: it dead-letters a
notification it cannot read with its parser's reason, so a parser bug never costs a
notification on the request path.
"""

from __future__ import annotations

import json
from typing import Final

from connectors.intake.auth import SNS_NOTIFICATION

# Reasons (a closed set: they become a Prometheus label and the reply's "reason").
EMPTY_BODY: Final = "empty-body"
NOT_UTF8: Final = "not-utf8"
NOT_JSON: Final = "not-json"
TOO_DEEP: Final = "too-deep"
WRONG_SHAPE: Final = "wrong-shape"
REASONS: Final = frozenset({EMPTY_BODY, NOT_UTF8, NOT_JSON, TOO_DEEP, WRONG_SHAPE})


class Malformed(Exception):
    """An authenticated body that is not what the provider sends. `status` is 400 when
    it is not even the right syntax, 422 when it is JSON of the wrong shape."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = 422 if reason == WRONG_SHAPE else 400


def check(provider: str, body: bytes) -> None:
    """Raise Malformed unless `body` has the envelope of `provider`'s webhooks."""
    if not body.strip():
        raise Malformed(EMPTY_BODY, "the body is empty")
    if provider == "dsn":
        return  # an email: any bytes (8-bit, any charset) may be one
    document = _json(body)
    if provider == "sendgrid":
        if not isinstance(document, list) or not all(isinstance(e, dict) for e in document):
            raise Malformed(WRONG_SHAPE, "SendGrid posts a JSON array of event objects")
    elif provider == "mailgun":
        if not isinstance(document, dict) or not isinstance(document.get("event-data"), dict):
            raise Malformed(WRONG_SHAPE, 'Mailgun posts an object with an "event-data" object')
    elif provider == "postmark":
        if not isinstance(document, dict):
            raise Malformed(WRONG_SHAPE, "Postmark posts a JSON object")
    elif provider == "ses":
        _check_sns_notification(document)
    else:
        raise ValueError(f"unknown provider {provider!r}")


def _check_sns_notification(document: object) -> None:
    # The envelope was verified already; SES puts its notification, itself a JSON
    # object, as a string in "Message".
    if not isinstance(document, dict) or document.get("Type") != SNS_NOTIFICATION:
        raise Malformed(WRONG_SHAPE, "not an SNS Notification")
    message = document.get("Message")
    if not isinstance(message, str):
        raise Malformed(WRONG_SHAPE, "the SNS Message is not a string")
    inner = _json(message.encode("utf-8", "surrogatepass"))
    if not isinstance(inner, dict):
        raise Malformed(WRONG_SHAPE, "the SNS Message is not an SES notification object")


def _json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(NOT_UTF8, f"byte {exc.start} is not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        # json's C scanner stops at the interpreter's recursion limit (about 1,000
        # levels); no provider nests more than a handful.
        raise Malformed(TOO_DEEP, "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4,300 digits
        raise Malformed(NOT_JSON, f"not JSON ({str(exc)[:80]})") from None
