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

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from schemas import contract
from schemas.field_rules import (
    EARLIEST,
    LATEST,
    MAX_FUTURE_SKEW,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    Check,
    _boolean_check,
    _enum_check,
    _int_check,
    _Refusal,
    _string_check,
    _timestamp_check,
    _utf8,
    shown,
)
from schemas.model import PAYLOAD_BY_TYPE, ConversationEvent

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_FUTURE_SKEW",
    "MAX_ID_LENGTH",
    "MAX_TEXT_LENGTH",
    "InvalidEvent",
    "avro_record_from_json",
    "check_event",
    "event_from_json",
    "shown",
]


class InvalidEvent(ValueError):
    """An event refused before publishing: which event, which field, which rule."""

    def __init__(self, event_ref: str, field: str, rule: str) -> None:
        self.event_ref = event_ref
        self.field = field
        self.rule = rule
        super().__init__(f"event {event_ref}: {field}: {rule}")


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
