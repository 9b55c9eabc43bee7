"""Configuration of the webhook intake, read once from the environment.

Every provider is optional. One whose credentials are absent is not switched off but
refused: its endpoint answers 401 'not-configured' to every request (and the app logs
that at start-up), so a forgotten variable can never mean an unauthenticated door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.intake.auth import DEFAULT_MAX_AGE, load_sendgrid_public_key, load_sns_certificates
from convotrail.errors import ConfigError

MAX_BODY_BYTES = "CONVOTRAIL_INTAKE_MAX_BODY_BYTES"
BROKER_MAX_MESSAGE_BYTES = "CONVOTRAIL_KAFKA_MAX_MESSAGE_BYTES"
READ_TIMEOUT = "CONVOTRAIL_INTAKE_READ_TIMEOUT"
DELIVERY_TIMEOUT = "CONVOTRAIL_INTAKE_DELIVERY_TIMEOUT"
MAILGUN_SIGNING_KEY = "CONVOTRAIL_MAILGUN_SIGNING_KEY"
SENDGRID_PUBLIC_KEY = "CONVOTRAIL_SENDGRID_PUBLIC_KEY"
SNS_CERTIFICATE = "CONVOTRAIL_SNS_CERTIFICATE"
SNS_TOPIC_ARNS = "CONVOTRAIL_SNS_TOPIC_ARNS"
POSTMARK_USER = "CONVOTRAIL_POSTMARK_USER"
POSTMARK_PASSWORD = "CONVOTRAIL_POSTMARK_PASSWORD"
DSN_TOKEN = "CONVOTRAIL_DSN_TOKEN"

# The broker's (and the topic's) max message size: Kafka's default message.max.bytes,
# 1 MiB plus the 12 bytes of a record batch's length and magic, rounded down to 1 MiB.
DEFAULT_BROKER_MAX_MESSAGE_BYTES = 1024 * 1024
# What a published record carries besides the body, with room to spare: the key (a
# message ref, capped at records.MAX_KEY_BYTES = 1 KiB), the provider and
# idempotency_key headers (< 300 bytes), the record and batch framing (< 100 bytes) and
# lz4's worst-case expansion of an incompressible body (1/255 of it, about 4 KiB).
RECORD_OVERHEAD_BYTES = 16 * 1024


def body_limit(broker_max_message_bytes: int) -> int:
    """The largest body whose record still fits the broker's max message size."""
    return broker_max_message_bytes - RECORD_OVERHEAD_BYTES


# 1,032,192 bytes (1008 KiB): the documented limit (docs/delivery.md).
DEFAULT_MAX_BODY_BYTES = body_limit(DEFAULT_BROKER_MAX_MESSAGE_BYTES)
# A request's headers and its body must each arrive within this many seconds (the
# slow-loris bound), and an idle keep-alive connection is closed after it.
DEFAULT_READ_TIMEOUT = 10.0
# How long the broker has to take a body's records. Shorter than the read timeout and
# than any provider's own request timeout (SendGrid, SNS: 15 s and more), so the reply
# is only sent once librdkafka has decided: a 503 is never followed by a late write.
DEFAULT_DELIVERY_TIMEOUT = 8.0


class IntakeConfigError(ConfigError, ValueError):
    """A bad intake setting; the message names the variable. A ValueError as well as the
    project's ConfigError, so either kind of handler catches it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeConfig:
    # Larger bodies are refused with 413 before (or while) reading them. Provider
    # batches are far smaller (SendGrid posts at most ~1000 events, a few hundred KiB).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Bodies above body_limit(broker_max_message_bytes) are refused at start-up: Kafka
    # would refuse their records, so the intake could only ever answer 503 to them.
    broker_max_message_bytes: int = DEFAULT_BROKER_MAX_MESSAGE_BYTES
    read_timeout: float = DEFAULT_READ_TIMEOUT
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT
    # Secrets stay out of repr() so that logging a config never leaks them.
    mailgun_signing_key: str | None = field(default=None, repr=False)
    mailgun_max_age: float = DEFAULT_MAX_AGE
    sendgrid_public_key: str | None = None  # base64 DER (as SendGrid shows it) or PEM
    sendgrid_max_age: float = DEFAULT_MAX_AGE
    sns_certificate_pem: str | None = field(default=None, repr=False)  # one or more certs
    sns_topic_arns: frozenset[str] = frozenset()  # empty: any topic
    postmark_user: str | None = None
    postmark_password: str | None = field(default=None, repr=False)
    dsn_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise IntakeConfigError(f"max_body_bytes must be positive, not {self.max_body_bytes}")
        ceiling = body_limit(self.broker_max_message_bytes)
        if self.max_body_bytes > ceiling:
            raise IntakeConfigError(
                f"{MAX_BODY_BYTES}={self.max_body_bytes} exceeds {ceiling}, the largest body "
                f"whose record fits a {self.broker_max_message_bytes}-byte Kafka message "
                f"({BROKER_MAX_MESSAGE_BYTES} minus {RECORD_OVERHEAD_BYTES} for key, "
                "headers and framing)"
            )
        for name in ("mailgun_max_age", "sendgrid_max_age", "read_timeout", "delivery_timeout"):
            if getattr(self, name) <= 0:
                raise IntakeConfigError(f"{name} must be positive")

    def unconfigured(self) -> tuple[str, ...]:
        """The providers (by endpoint name) that will refuse every request."""
        configured = {
            "ses": bool(self.sns_certificate_pem),
            "sendgrid": bool(self.sendgrid_public_key),
            "mailgun": bool(self.mailgun_signing_key),
            "postmark": bool(self.postmark_user and self.postmark_password),
            "dsn": bool(self.dsn_token),
        }
        return tuple(name for name, ok in configured.items() if not ok)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IntakeConfig:
        """Read the CONVOTRAIL_* intake variables. An empty value counts as unset. Keys
        and certificates are parsed here, so a bad one fails at start-up, not on the
        first webhook."""

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        def number(name: str, default: float, kind: type[int] | type[float]) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise IntakeConfigError(f"{name}={raw!r} is not a number") from None
            if not value > 0:  # also refuses nan
                raise IntakeConfigError(f"{name}={raw!r} must be positive")
            return value

        broker_max = int(number(BROKER_MAX_MESSAGE_BYTES, DEFAULT_BROKER_MAX_MESSAGE_BYTES, int))
        if broker_max <= RECORD_OVERHEAD_BYTES:
            raise IntakeConfigError(
                f"{BROKER_MAX_MESSAGE_BYTES}={broker_max} leaves no room for a body"
            )
        max_body_bytes = int(number(MAX_BODY_BYTES, body_limit(broker_max), int))
        read_timeout = number(READ_TIMEOUT, DEFAULT_READ_TIMEOUT, float)
        delivery_timeout = number(DELIVERY_TIMEOUT, DEFAULT_DELIVERY_TIMEOUT, float)

        sendgrid_key = get(SENDGRID_PUBLIC_KEY)
        if sendgrid_key is not None:
            try:
                load_sendgrid_public_key(sendgrid_key)
            except ValueError as exc:
                raise IntakeConfigError(f"{SENDGRID_PUBLIC_KEY}: {exc}") from None

        sns_pem = None
        sns_path = get(SNS_CERTIFICATE)
        if sns_path is not None:
            try:
                sns_pem = Path(sns_path).read_text(encoding="ascii")
                load_sns_certificates(sns_pem)
            except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
                raise IntakeConfigError(f"{SNS_CERTIFICATE}={sns_path!r}: {exc}") from None

        topics = frozenset(arn.strip() for arn in (get(SNS_TOPIC_ARNS) or "").split(","))
        topics -= {""}
        for arn in topics:
            if not arn.startswith("arn:"):
                raise IntakeConfigError(f"{SNS_TOPIC_ARNS}: {arn!r} is not an ARN")

        user, password = get(POSTMARK_USER), get(POSTMARK_PASSWORD)
        if (user is None) != (password is None):
            missing = POSTMARK_PASSWORD if password is None else POSTMARK_USER
            raise IntakeConfigError(f"{missing} is required when the other Postmark one is set")

        return cls(
            max_body_bytes=max_body_bytes,
            broker_max_message_bytes=broker_max,
            read_timeout=read_timeout,
            delivery_timeout=delivery_timeout,
            mailgun_signing_key=get(MAILGUN_SIGNING_KEY),
            sendgrid_public_key=sendgrid_key,
            sns_certificate_pem=sns_pem,
            sns_topic_arns=topics,
            postmark_user=user,
            postmark_password=password,
            dsn_token=get(DSN_TOKEN),
        )
