"""Checks of one field's value, shared by the publisher's validation and the worker's.

Pure; each raises `_Refusal(path, rule)` and the caller names the event. Untrusted
values are quoted bounded and escaped (`shown`): refusals reach terminals, logs and
DLQ headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# No timestamp of a support conversation lies this far ahead; the bound also keeps
# the processors' arithmetic on due times (plus policies, minus idle spans) in range.
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# What a datetime can hold, in epoch milliseconds (years 1 to 9999).
_MIN_MS = -62135596800000
_MAX_MS = 253402300799999
INT64 = 2**63
MAX_FUTURE_SKEW = timedelta(hours=24)
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 2000
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=#-]*")
# Ids that come from email headers or providers keep their own syntax (<a@b>).
FOREIGN_IDS = {"email_message_id", "provider_message_id"}
_NON_EMPTY = {"name", "tag", "to_subject", "workflow_name", "bot_name", "file_name", "recipient"}
_ISO_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
_GOOD_IDS = 4096  # ids remembered as valid, per field check


def _epoch_millis_to_datetime(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def shown(value: str, limit: int = 80) -> str:
    """A bounded, printable quotation of untrusted text for a refusal: repr escapes
    control characters and lone surrogates, and a 300 KB value stays 80 characters."""
    if len(value) > limit:
        return repr(value[:limit])[:-1] + f"...' ({len(value)} characters)"
    return repr(value)


def _utf8(value: str) -> bool:
    """Lone surrogates (JSON's "\\ud800") cannot be encoded; refuse them, not crash."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Refusal(Exception):
    """Raised inside the compiled checks; turned into InvalidEvent with the event's id."""

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule


# A compiled check: (value, path) -> the Avro-ready value, or raises _Refusal.
Check = Callable[[Any, str], Any]


def _string_check(field_name: str) -> Check:
    """A string check with the rule its field name calls for, decided once at compile time."""
    is_id = field_name not in FOREIGN_IDS and (
        field_name == "id" or field_name.endswith("_id") or field_name == "on_behalf_of"
    )
    non_empty = field_name in FOREIGN_IDS or field_name in _NON_EMPTY

    def check(value: Any, path: str) -> str:
        if type(value) is str and value in good:  # ids repeat: each checked once
            return value
        if type(value) is not str and not isinstance(value, str):
            raise _Refusal(path, f"must be a string, not {type(value).__name__}")
        if not value.isascii() and not _utf8(value):
            raise _Refusal(path, "is not valid Unicode (a lone surrogate)")
        if is_id:
            if not value.strip():
                raise _Refusal(path, "must not be empty")
            if len(value) > MAX_ID_LENGTH:
                raise _Refusal(path, f"is longer than {MAX_ID_LENGTH} characters")
            if not ID_PATTERN.fullmatch(value):
                raise _Refusal(
                    path,
                    f"{shown(value)} has characters an id cannot have "
                    "(letters, digits and ._:@/+=#- only)",
                )
        elif non_empty and not value.strip():
            raise _Refusal(path, "must not be empty")
        if len(value) > MAX_TEXT_LENGTH:
            raise _Refusal(path, f"is longer than {MAX_TEXT_LENGTH} characters")
        if is_id:
            if len(good) >= _GOOD_IDS:
                good.clear()
            good.add(value)
        return value

    good: set[str] = set()
    return check


def _int_check(bits: int) -> Check:
    def check(value: Any, path: str) -> int:
        if type(value) is not int:
            raise _Refusal(path, f"must be an integer, not {type(value).__name__}")
        if bits == 32 and not -(2**31) <= value < 2**31:
            raise _Refusal(path, "does not fit a 32-bit integer")
        if not -INT64 <= value < INT64:
            raise _Refusal(path, "does not fit a 64-bit integer")
        return value

    return check


def _boolean_check(value: Any, path: str) -> bool:
    if type(value) is not bool:
        raise _Refusal(path, f"must be true or false, not {type(value).__name__}")
    return value


def _timestamp_check(value: Any, path: str) -> datetime:
    if type(value) is datetime or isinstance(value, datetime):
        if value.tzinfo is None:
            raise _Refusal(path, "must carry a timezone (naive datetimes are ambiguous)")
        moment = value if value.tzinfo is UTC else value.astimezone(UTC)
    elif type(value) is int:
        # Bounded before any arithmetic: epoch 10**20 overflows a timedelta.
        if not _MIN_MS <= value <= _MAX_MS:
            raise _Refusal(path, "epoch milliseconds out of range (years 1 to 9999)")
        moment = _epoch_millis_to_datetime(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64 or not _ISO_OFFSET.search(text):
            raise _Refusal(
                path, f"{shown(value)} has no UTC offset: write it like 2026-11-25T09:30:00Z"
            )
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError):
            # OverflowError: 0001-01-01T00:00:00+01:00 is before year 1 in UTC.
            raise _Refusal(path, f"{shown(value)} is not an ISO-8601 timestamp in range") from None
    else:
        raise _Refusal(path, "must be an ISO-8601 timestamp or epoch milliseconds")
    if moment < EARLIEST:
        raise _Refusal(path, f"{moment.isoformat()} is before 2000-01-01")
    if moment >= LATEST:
        raise _Refusal(path, f"{moment.isoformat()} is after 2199-12-31")
    return moment


def _enum_check(schema: dict[str, Any]) -> Check:
    symbols = frozenset(schema["symbols"])
    listed = ", ".join(schema["symbols"])
    name = schema["name"]

    def check(value: Any, path: str) -> str:
        # The type first: a list or an object is not hashable, so `in symbols` would raise.
        if not isinstance(value, str):
            what = f"a {name} (see docs/events.md)" if len(symbols) > 8 else f"one of {listed}"
            raise _Refusal(path, f"must be {what}, not {type(value).__name__}")
        if value not in symbols:
            if len(symbols) > 8:  # listing 36 event types helps nobody
                raise _Refusal(path, f"{shown(value)} is not a known {name} (see docs/events.md)")
            raise _Refusal(path, f"{shown(value)} is not one of {listed}")
        return str(value)

    return check
