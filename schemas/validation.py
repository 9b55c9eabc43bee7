"""Validate an event before anything reaches Kafka; refuse it naming the field and rule.

Two layers, both pure (the clock is a parameter):

1. structure, driven by the Avro schema itself: required fields, types, enum
   symbols, timestamps (ISO-8601 with an offset, or epoch milliseconds), no
   unknown fields, and the payload record that the `type` selects;
2. rules the schema cannot say: id formats, non-empty names, plausible
   timestamps, actors that must be identified, a merge into itself, and so on.

`event_from_json` turns the JSON shape of `convotrail produce` into a typed
`ConversationEvent`; `check_event` checks one built in code. Both raise
`InvalidEvent` with the first problem found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from schemas import contract
from schemas.model import PAYLOAD_BY_TYPE, ConversationEvent

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


class InvalidEvent(ValueError):
    """An event refused before publishing: which event, which field, which rule."""

    def __init__(self, event_ref: str, field: str, rule: str) -> None:
        self.event_ref = event_ref
        self.field = field
        self.rule = rule
        super().__init__(f"event {event_ref}: {field}: {rule}")


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


class _Compiler:
    """Turns Avro schemas into nested check closures, once per named type."""

    def __init__(self) -> None:
        self.types = contract.named_types()
        self.records: dict[str, Check] = {}

    def compile(self, schema: Any, namespace: str, field_name: str) -> Check:
        if isinstance(schema, str):
            if schema == "string":
                return _string_check(field_name)
            if schema in ("int", "long"):
                return _int_check(32 if schema == "int" else 64)
            if schema == "boolean":
                return _boolean_check
            full = schema if "." in schema else f"{namespace}.{schema}"
            return self.compile(self.types[full], namespace, field_name)
        if isinstance(schema, list):
            branches = [branch for branch in schema if branch != "null"]
            if len(branches) != 1:  # pragma: no cover - the payload union is handled apart
                raise ValueError("only optional unions are compiled")
            inner = self.compile(branches[0], namespace, field_name)
            nullable = "null" in schema

            def optional(value: Any, path: str) -> Any:
                if value is None:
                    if nullable:
                        return None
                    raise _Refusal(path, "is required")
                return inner(value, path)

            return optional
        if schema.get("logicalType") == "timestamp-millis":
            return _timestamp_check
        kind = schema["type"]
        if kind == "enum":
            return _enum_check(schema)
        if kind == "array":
            item = self.compile(schema["items"], namespace, field_name)

            def array(value: Any, path: str) -> list[Any]:
                if not isinstance(value, (list, tuple)):
                    raise _Refusal(path, "must be a list")
                return [item(element, f"{path}[{index}]") for index, element in enumerate(value)]

            return array
        if kind == "record":
            return self.record(schema, namespace)
        return self.compile(kind, namespace, field_name)

    def record(self, schema: dict[str, Any], namespace: str, skip: str = "") -> Check:
        full = contract._fullname(schema, namespace)
        key = f"{full}-{skip}"
        if key in self.records:
            return self.records[key]
        space = full.rsplit(".", 1)[0]
        plan: list[tuple[str, bool, Any, Check | None]] = []

        def check(value: Any, path: str) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise _Refusal(path or "event", "must be an object")
            prefix = f"{path}." if path else ""
            out: dict[str, Any] = {}
            seen = 0
            for name, has_default, default, field_check in plan:
                if name in value:
                    seen += 1
                    out[name] = field_check(value[name], prefix + name)  # type: ignore[misc]
                elif has_default:
                    out[name] = default
                else:
                    raise _Refusal(prefix + name, "is required")
            if seen != len(value):
                unknown = sorted(str(k) for k in value if k not in known)
                name = unknown[0]
                if len(name) > 80 or not name.isprintable() or not _utf8(name):
                    name = shown(name)  # a field name is untrusted text too
                raise _Refusal(f"{prefix}{name}", "is not a field of " + schema["name"])
            return out

        self.records[key] = check  # before compiling fields, for recursive types
        known = {field["name"] for field in schema["fields"]} - {skip}
        for field in schema["fields"]:
            if field["name"] == skip:
                continue
            plan.append(
                (
                    field["name"],
                    "default" in field,
                    field.get("default"),
                    self.compile(field["type"], space, field["name"]),
                )
            )
        return check


@cache
def _compiled() -> tuple[Check, Check, dict[str, tuple[str, Check]]]:
    """(type check, envelope-without-payload check, {type: (payload name, payload check)})."""
    compiler = _Compiler()
    types = contract.named_types()
    envelope = types[contract.CONVERSATION_EVENT]
    type_check = compiler.compile(f"{contract.EVENTS_NS}.EventType", contract.EVENTS_NS, "type")
    # The envelope without its payload; `type` stays in, checked twice (cheap) but first alone.
    envelope_check = compiler.record(envelope, contract.EVENTS_NS, skip="payload")
    payloads = {
        event_type.value: (
            payload.AVRO_NAME,
            compiler.record(types[payload.AVRO_NAME], contract.EVENTS_NS),
        )
        for event_type, payload in PAYLOAD_BY_TYPE.items()
    }
    return type_check, envelope_check, payloads


def _event_ref(raw: Any) -> str:
    if isinstance(raw, Mapping):
        event_id = raw.get("event_id")
        if isinstance(event_id, str) and event_id.strip():
            if event_id.isprintable() and _utf8(event_id):
                return event_id[:80]
            return shown(event_id)  # escaped: the refusal is printed to a terminal
    return "<no event_id>"


def _structure(raw: Any) -> dict[str, Any]:
    """Check the envelope and payload against the schema; return the Avro-ready record."""
    type_check, envelope_check, payloads = _compiled()
    if not isinstance(raw, Mapping):
        raise _Refusal("event", "must be a JSON object")
    # The type decides the payload record, so it is checked before the rest.
    if "type" not in raw:
        raise _Refusal("type", "is required")
    event_type = type_check(raw["type"], "type")
    if "payload" not in raw:
        rest = raw
    else:
        rest = {key: value for key, value in raw.items() if key != "payload"}
    record: dict[str, Any] = envelope_check(rest, "")
    if "payload" not in raw:
        raise _Refusal("payload", "is required")
    expected, payload_check = payloads[event_type]
    value = raw["payload"]
    if isinstance(value, tuple) and len(value) == 2:
        name, value = value
        if name != expected:
            raise _Refusal(
                "payload", f"is a {name.rsplit('.', 1)[-1]} but type {event_type} needs "
                f"a {expected.rsplit('.', 1)[-1]}"
            )  # fmt: skip
    record["payload"] = (expected, payload_check(value, "payload"))
    return record


def _rules(record: dict[str, Any], now: datetime) -> None:
    """The rules the schema cannot express (field-level ones are compiled in)."""
    occurred_at: datetime = record["occurred_at"]
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise _Refusal(
            "occurred_at", f"{occurred_at.isoformat()} is more than 24 hours in the future"
        )
    actor = record["actor"]
    if actor["kind"] in ("STAFF", "CUSTOMER", "BOT", "WORKFLOW") and actor["id"] is None:
        raise _Refusal("actor.id", f"is required for a {actor['kind']} actor")
    if record["causation_id"] is not None and record["causation_id"] == record["event_id"]:
        raise _Refusal("causation_id", "must not be the event's own event_id")
    _payload_rules(record)


def _payload_rules(record: dict[str, Any]) -> None:
    event_type = record["type"]
    payload = record["payload"][1]
    if event_type == "MERGED" and payload["into_conversation_id"] == record["conversation_id"]:
        raise _Refusal("payload.into_conversation_id", "a conversation cannot merge into itself")
    if (
        event_type == "REASSIGNED"
        and payload["from_assignee"] is None
        and (payload["to_assignee"] is None)
    ):
        raise _Refusal("payload.to_assignee", "from and to cannot both be unassigned")
    if event_type == "MOVED" and payload["from_inbox"]["id"] == payload["to_inbox"]["id"]:
        raise _Refusal("payload.to_inbox", "must differ from from_inbox")
    if event_type == "MESSAGE_ADDED" and (
        payload["visibility"] == "NOTE" and payload["direction"] == "INBOUND"
    ):
        raise _Refusal("payload.visibility", "an internal NOTE cannot be INBOUND")
    if event_type == "AUTO_RESOLVED" and payload["idle_minutes"] <= 0:
        raise _Refusal("payload.idle_minutes", "must be positive")
    if event_type in ("BOUNCE_DETECTED", "DELIVERY_FAILED", "CUSTOMER_MARKED_SPAM") and (
        "@" not in payload["recipient"]
    ):
        raise _Refusal(
            "payload.recipient", f"{shown(payload['recipient'])} is not an email address"
        )
    if event_type in ("MERGE_RECEIVED", "REMINDER_TRIGGERED", "AUTO_RESOLVED") and (
        record["causation_id"] is None
    ):
        raise _Refusal("causation_id", f"is required for the derived event {event_type}")


def avro_record_from_json(raw: Any, now: datetime) -> dict[str, Any]:
    """Validate the JSON shape and return the Avro-ready record (payload as (name, fields))."""
    try:
        record = _structure(raw)
        _rules(record, now)
    except _Refusal as refusal:
        raise InvalidEvent(_event_ref(raw), refusal.path, refusal.rule) from None
    return record


def event_from_json(raw: Any, now: datetime) -> ConversationEvent:
    """Validate the JSON shape of an event and build the typed event."""
    return ConversationEvent.from_avro(avro_record_from_json(raw, now))


def check_event(event: ConversationEvent, now: datetime) -> dict[str, Any]:
    """Validate an event built in code; return its Avro-ready record for encoding."""
    if not isinstance(event, ConversationEvent):
        raise InvalidEvent("<not an event>", "event", "must be a ConversationEvent")
    try:
        raw = event.to_avro()
    except AttributeError as exc:
        raise InvalidEvent(_event_ref({"event_id": event.event_id}), "payload",
                           f"is not a payload record ({exc})") from None  # fmt: skip
    return avro_record_from_json(raw, now)
