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
from typing import Any

from schemas import contract
from schemas.model import PAYLOAD_BY_TYPE, ConversationEvent, EventType

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE_SKEW = timedelta(hours=24)
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 2000
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=#-]*")
# Ids that come from email headers or providers keep their own syntax (<a@b>).
FOREIGN_IDS = {"email_message_id", "provider_message_id"}
_NON_EMPTY = {"name", "tag", "to_subject", "workflow_name", "bot_name", "file_name", "recipient"}
_ISO_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}


class InvalidEvent(ValueError):
    """An event refused before publishing: which event, which field, which rule."""

    def __init__(self, event_ref: str, field: str, rule: str) -> None:
        self.event_ref = event_ref
        self.field = field
        self.rule = rule
        super().__init__(f"event {event_ref}: {field}: {rule}")


def _epoch_millis_to_datetime(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


class _Walker:
    """Walks a value against an Avro schema, converting it to the Avro-ready form."""

    def __init__(self, event_ref: str) -> None:
        self.event_ref = event_ref
        self.types = contract.named_types()

    def fail(self, path: str, rule: str) -> InvalidEvent:
        return InvalidEvent(self.event_ref, path, rule)

    def resolve(self, schema: Any, namespace: str) -> Any:
        """Follow named references and {"type": <name>} wrappers to a concrete schema."""
        while True:
            if isinstance(schema, str):
                if schema in _PRIMITIVE_CHECKS:
                    return schema
                schema = self.types[schema if "." in schema else f"{namespace}.{schema}"]
            elif isinstance(schema, dict):
                kind = schema["type"]
                if kind in ("record", "enum", "array", "map") or schema.get("logicalType"):
                    return schema
                schema = kind
            else:
                return schema

    def walk(self, value: Any, schema: Any, namespace: str, path: str) -> Any:
        schema = self.resolve(schema, namespace)
        if isinstance(schema, str):
            return _PRIMITIVE_CHECKS[schema](self, value, path)
        if isinstance(schema, list):
            return self.walk_optional(value, schema, namespace, path)
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-millis":
            return self.timestamp(value, path)
        if kind == "enum":
            if not isinstance(value, str):
                raise self.fail(path, f"must be one of {', '.join(schema['symbols'])}")
            if value not in schema["symbols"]:
                symbols = schema["symbols"]
                if len(symbols) > 8:  # listing 36 event types helps nobody
                    raise self.fail(
                        path, f"{value!r} is not a known {schema['name']} (see docs/events.md)"
                    )
                raise self.fail(path, f"{value!r} is not one of {', '.join(symbols)}")
            return str(value)
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                raise self.fail(path, "must be a list")
            return [
                self.walk(item, schema["items"], namespace, f"{path}[{index}]")
                for index, item in enumerate(value)
            ]
        if kind == "record":
            full = contract._fullname(schema, namespace)
            return self.record(value, schema, full.rsplit(".", 1)[0], path)
        raise self.fail(path, f"unsupported schema {kind}")  # pragma: no cover - contract bug

    def walk_optional(self, value: Any, schema: list[Any], namespace: str, path: str) -> Any:
        branches = [branch for branch in schema if branch != "null"]
        if value is None:
            if "null" in schema:
                return None
            raise self.fail(path, "is required")
        if len(branches) != 1:  # pragma: no cover - only the payload, handled by `payload`
            raise self.fail(path, "ambiguous union")
        return self.walk(value, branches[0], namespace, path)

    def record(self, value: Any, schema: dict[str, Any], namespace: str, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise self.fail(path or "event", "must be an object")
        prefix = f"{path}." if path else ""
        known = {field["name"] for field in schema["fields"]}
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise self.fail(f"{prefix}{unknown[0]}", "is not a field of " + schema["name"])
        out: dict[str, Any] = {}
        for field in schema["fields"]:
            name = field["name"]
            if name not in value:
                if "default" in field:
                    out[name] = field["default"]
                    continue
                raise self.fail(f"{prefix}{name}", "is required")
            out[name] = self.walk(value[name], field["type"], namespace, f"{prefix}{name}")
        return out

    def payload(self, value: Any, event_type: str, path: str) -> tuple[str, dict[str, Any]]:
        expected = PAYLOAD_BY_TYPE[EventType(event_type)].AVRO_NAME
        if isinstance(value, tuple) and len(value) == 2:
            name, fields = value
            if name != expected:
                raise self.fail(
                    path, f"is a {name.rsplit('.', 1)[-1]} but type {event_type} needs "
                    f"a {expected.rsplit('.', 1)[-1]}"
                )  # fmt: skip
            value = fields
        schema = self.types[expected]
        return expected, self.record(value, schema, contract.EVENTS_NS, path)

    def timestamp(self, value: Any, path: str) -> datetime:
        if isinstance(value, bool):
            raise self.fail(path, "must be an ISO-8601 timestamp or epoch milliseconds")
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.fail(path, "must carry a timezone (naive datetimes are ambiguous)")
            moment = value.astimezone(UTC)
        elif isinstance(value, int):
            moment = _epoch_millis_to_datetime(value)
        elif isinstance(value, str):
            text = value.strip()
            if not _ISO_OFFSET.search(text):
                raise self.fail(
                    path, f"{value!r} has no UTC offset: write it like 2026-11-25T09:30:00Z"
                )
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                raise self.fail(path, f"{value!r} is not an ISO-8601 timestamp") from None
        else:
            raise self.fail(path, "must be an ISO-8601 timestamp or epoch milliseconds")
        if moment < EARLIEST:
            raise self.fail(path, f"{moment.isoformat()} is before 2000-01-01")
        return moment


def _string(walker: _Walker, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise walker.fail(path, f"must be a string, not {type(value).__name__}")
    return value


def _integer(walker: _Walker, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise walker.fail(path, f"must be an integer, not {type(value).__name__}")
    if not -(2**31) <= value < 2**31:
        raise walker.fail(path, "does not fit a 32-bit integer")
    return value


def _long(walker: _Walker, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise walker.fail(path, f"must be an integer, not {type(value).__name__}")
    return value


def _boolean(walker: _Walker, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise walker.fail(path, f"must be true or false, not {type(value).__name__}")
    return value


def _null(walker: _Walker, value: Any, path: str) -> None:
    if value is not None:
        raise walker.fail(path, "must be null")


_PRIMITIVE_CHECKS: dict[str, Callable[[_Walker, Any, str], Any]] = {
    "string": _string,
    "int": _integer,
    "long": _long,
    "boolean": _boolean,
    "null": _null,
}


def _event_ref(raw: Any) -> str:
    if isinstance(raw, Mapping):
        event_id = raw.get("event_id")
        if isinstance(event_id, str) and event_id.strip():
            return event_id[:80]
    return "<no event_id>"


def _structure(raw: Any, walker: _Walker) -> dict[str, Any]:
    """Check the envelope and payload against the schema; return the Avro-ready record."""
    envelope = contract.named_types()[contract.CONVERSATION_EVENT]
    if not isinstance(raw, Mapping):
        raise walker.fail("event", "must be a JSON object")
    # The type decides the payload record, so it is checked before the rest.
    if "type" not in raw:
        raise walker.fail("type", "is required")
    event_type = walker.walk(raw["type"], f"{contract.EVENTS_NS}.EventType", "", "type")
    without_payload = {
        **envelope,
        "fields": [field for field in envelope["fields"] if field["name"] != "payload"],
    }
    rest = {key: value for key, value in raw.items() if key != "payload"}
    record: dict[str, Any] = walker.record(rest, without_payload, contract.EVENTS_NS, "")
    if "payload" not in raw:
        raise walker.fail("payload", "is required")
    record["payload"] = walker.payload(raw["payload"], event_type, "payload")
    return record


def _check_id(walker: _Walker, value: str | None, path: str, required: bool = True) -> None:
    if value is None:
        if required:
            raise walker.fail(path, "is required")
        return
    if not value.strip():
        raise walker.fail(path, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise walker.fail(path, f"is longer than {MAX_ID_LENGTH} characters")
    if not ID_PATTERN.fullmatch(value):
        raise walker.fail(
            path, f"{value!r} has characters an id cannot have (letters, digits and ._:@/+=#- only)"
        )


def _walk_strings(value: Any, path: str) -> list[tuple[str, str, str]]:
    """(path, field name, text) for every string field of an Avro-ready record."""
    found: list[tuple[str, str, str]] = []
    if isinstance(value, tuple):  # the payload: (record name, fields)
        value = value[1]
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if isinstance(item, str):
                found.append((child, key, item))
            else:
                found += _walk_strings(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _walk_strings(item, f"{path}[{index}]")
    return found


def _rules(record: dict[str, Any], walker: _Walker, now: datetime) -> None:
    """The rules the schema cannot express."""
    # Ids: every *_id and id field, in the envelope and the payload.
    for path, name, text in _walk_strings(record, ""):
        if name in FOREIGN_IDS:
            if not text.strip():
                raise walker.fail(path, "must not be empty")
        elif name == "id" or name.endswith("_id") or name == "on_behalf_of":
            _check_id(walker, text, path)
        elif name in _NON_EMPTY and not text.strip():
            raise walker.fail(path, "must not be empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise walker.fail(path, f"is longer than {MAX_TEXT_LENGTH} characters")
    occurred_at: datetime = record["occurred_at"]
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise walker.fail(
            "occurred_at", f"{occurred_at.isoformat()} is more than 24 hours in the future"
        )
    actor = record["actor"]
    if actor["kind"] in ("STAFF", "CUSTOMER", "BOT", "WORKFLOW") and actor["id"] is None:
        raise walker.fail("actor.id", f"is required for a {actor['kind']} actor")
    if record["causation_id"] is not None and record["causation_id"] == record["event_id"]:
        raise walker.fail("causation_id", "must not be the event's own event_id")
    _payload_rules(record, walker)


def _payload_rules(record: dict[str, Any], walker: _Walker) -> None:
    event_type = record["type"]
    payload = record["payload"][1]
    if event_type == "MERGED" and payload["into_conversation_id"] == record["conversation_id"]:
        raise walker.fail("payload.into_conversation_id", "a conversation cannot merge into itself")
    if (
        event_type == "REASSIGNED"
        and payload["from_assignee"] is None
        and (payload["to_assignee"] is None)
    ):
        raise walker.fail("payload.to_assignee", "from and to cannot both be unassigned")
    if event_type == "MOVED" and payload["from_inbox"]["id"] == payload["to_inbox"]["id"]:
        raise walker.fail("payload.to_inbox", "must differ from from_inbox")
    if event_type == "MESSAGE_ADDED" and (
        payload["visibility"] == "NOTE" and payload["direction"] == "INBOUND"
    ):
        raise walker.fail("payload.visibility", "an internal NOTE cannot be INBOUND")
    if event_type == "AUTO_RESOLVED" and payload["idle_minutes"] <= 0:
        raise walker.fail("payload.idle_minutes", "must be positive")
    if event_type in ("BOUNCE_DETECTED", "DELIVERY_FAILED", "CUSTOMER_MARKED_SPAM") and (
        "@" not in payload["recipient"]
    ):
        raise walker.fail("payload.recipient", f"{payload['recipient']!r} is not an email address")
    if event_type in ("MERGE_RECEIVED", "REMINDER_TRIGGERED", "AUTO_RESOLVED") and (
        record["causation_id"] is None
    ):
        raise walker.fail("causation_id", f"is required for the derived event {event_type}")


def avro_record_from_json(raw: Any, now: datetime) -> dict[str, Any]:
    """Validate the JSON shape and return the Avro-ready record (payload as (name, fields))."""
    walker = _Walker(_event_ref(raw))
    record = _structure(raw, walker)
    _rules(record, walker, now)
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
