"""One parser per provider. Each module exposes:

- `split(body: bytes) -> list[bytes]`: the units of a request body, one per
  message (SendGrid posts arrays of events; the others one notification per body).
- `parse(unit: bytes) -> list[Notification]`: the normalized notifications of one
  unit; raises NotificationError (reason + message naming the field) when it cannot.
"""

from __future__ import annotations

from types import ModuleType

from processors.delivery.providers import dsn, mailgun, postmark, sendgrid, ses

# By the `provider` header's value (schemas.headers.PROVIDERS).
PARSERS: dict[str, ModuleType] = {
    "ses": ses,
    "sendgrid": sendgrid,
    "mailgun": mailgun,
    "postmark": postmark,
    "dsn": dsn,
}
