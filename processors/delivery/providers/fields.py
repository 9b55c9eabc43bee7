"""Reading fields of a provider's JSON body, the same way for every provider.

Webhook bodies are untrusted JSON: a field may be missing, null, or of another type
than documented. These readers return None for "not there" and raise
NotificationError (reason 'unparseable', the message naming the field) for "there
but unreadable", so every parser reports bad input the same way. Pure.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from processors.delivery.notification import NotificationError


def load_json(body: bytes, what: str) -> object:
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise NotificationError("unparseable", f"{what} is not JSON: {exc}") from exc


def load_object(body: bytes, what: str) -> dict[str, object]:
    document = load_json(body, what)
    if not isinstance(document, dict):
        raise NotificationError("unparseable", f"{what} is not a JSON object")
    return document


def obj(container: Mapping[str, object], key: str) -> dict[str, object] | None:
    value = container.get(key)
    return value if isinstance(value, dict) else None


def text(container: Mapping[str, object], key: str, *, numbers: bool = False) -> str | None:
    """A non-empty string field, stripped; with `numbers`, an integer is taken as its
    text (custom arguments are strings, but senders put numbers in them)."""
    value = container.get(key)
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return (value.strip() or None) if isinstance(value, str) else None


def unique(refs: Iterable[str | None]) -> tuple[str, ...]:
    """Present refs, first occurrence kept (providers often repeat an id)."""
    return tuple(dict.fromkeys(ref for ref in refs if ref))


def epoch_time(value: object, field: str) -> datetime | None:
    """A unix time in seconds (int, float or numeric string), as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # a numeric string is still a time
            value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise NotificationError("unparseable", f"{field} is not a unix time")


def iso_time(value: object, field: str) -> datetime | None:
    """An ISO 8601 timestamp (any fraction, any offset; none means UTC), as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    raise NotificationError("unparseable", f"{field} is not an ISO 8601 timestamp")
