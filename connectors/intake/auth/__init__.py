"""Authentication of provider webhooks: pure functions, no I/O, the time passed in.

One verifier per provider (a module each: `mailgun`, `sendgrid`, `sns`, `header` for
Postmark's basic auth and the DSN bearer token). Each returns None when the request is
authentic and raises `Unauthorized(reason)` otherwise; `reason` is one of the short
slugs in `REASONS` (a closed set, because it becomes a Prometheus label and an HTTP
reply: nothing taken from the request ever lands there).

A verifier whose credentials are not configured (None) refuses everything with
'not-configured': an intake that someone forgot to configure must not turn into an
open door.

Whatever a request carries (undecodable bytes in a header, a lone surrogate or a
thousand levels of nesting in the JSON) is a refusal, never an exception: the
verifiers see unauthenticated input.

Secrets and signatures are compared with `hmac.compare_digest` (constant time), so the
time a refusal takes says nothing about how much of a guess was right.
"""

from connectors.intake.auth.common import (
    BAD_CREDENTIALS,
    BAD_SIGNATURE,
    BAD_TIMESTAMP,
    DEFAULT_MAX_AGE,
    MALFORMED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    REASONS,
    REPLAYED_TOKEN,
    STALE_TIMESTAMP,
    UNKNOWN_TOPIC,
    UNSUPPORTED_SIGNATURE_VERSION,
    UNSUPPORTED_TYPE,
    Unauthorized,
)
from connectors.intake.auth.header import verify_basic_auth, verify_bearer
from connectors.intake.auth.mailgun import (
    MailgunSignature,
    ReplayGuard,
    mailgun_signature,
    read_mailgun_signature,
    verify_mailgun,
    verify_mailgun_signature,
)
from connectors.intake.auth.sendgrid import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    load_sendgrid_public_key,
    verify_sendgrid,
)
from connectors.intake.auth.sns import (
    SNS_NOTIFICATION,
    SNS_SUBSCRIPTION_CONFIRMATION,
    SNS_UNSUBSCRIBE_CONFIRMATION,
    load_sns_certificates,
    parse_sns,
    sns_string_to_sign,
    verify_sns,
)

__all__ = [
    "BAD_CREDENTIALS",
    "BAD_SIGNATURE",
    "BAD_TIMESTAMP",
    "DEFAULT_MAX_AGE",
    "MALFORMED",
    "MISSING_CREDENTIALS",
    "NOT_CONFIGURED",
    "REASONS",
    "REPLAYED_TOKEN",
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "SNS_NOTIFICATION",
    "SNS_SUBSCRIPTION_CONFIRMATION",
    "SNS_UNSUBSCRIBE_CONFIRMATION",
    "STALE_TIMESTAMP",
    "UNKNOWN_TOPIC",
    "UNSUPPORTED_SIGNATURE_VERSION",
    "UNSUPPORTED_TYPE",
    "MailgunSignature",
    "ReplayGuard",
    "Unauthorized",
    "load_sendgrid_public_key",
    "load_sns_certificates",
    "mailgun_signature",
    "parse_sns",
    "read_mailgun_signature",
    "sns_string_to_sign",
    "verify_basic_auth",
    "verify_bearer",
    "verify_mailgun",
    "verify_mailgun_signature",
    "verify_sendgrid",
    "verify_sns",
]
