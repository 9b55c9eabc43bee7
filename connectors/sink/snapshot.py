"""Model records <-> the JSON text the sink stores (state snapshots, field changes).

The snapshot column holds a ConversationState as plain JSON (the Avro field
names, enums as their symbols, timestamps as ISO 8601 in UTC), so nothing of
the record is lost and SQL users can read it. Reading it back walks the current
Avro schema: timestamps become datetimes again, and a field added to the schema
after the row was written takes its schema default. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any

import fastavro

from connectors.sink.errors import SnapshotError
from schemas import contract
from schemas.model import ConversationState, FieldChange

_TIMESTAMPS = ("timestamp-millis", "timestamp-micros")
_MISSING = object()


def to_json_value(value: Any) -> Any:
    """A JSON-ready copy of an Avro-shaped value (`Model.to_avro()`)."""
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return value


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused, not guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the sink stores UTC instants")
    return moment.astimezone(UTC)


def dumps(value: Any) -> str:
    # Sorted keys and no spaces: the same record always gives the same text.
    return json.dumps(to_json_value(value), sort_keys=True, separators=(",", ":"))


@cache
def _state_schema() -> dict[str, Any]:
    # expand=True inlines every named type where it is used, so the walk below
    # needs no table of names (a type may be defined under a branch left null).
    parsed = fastavro.parse_schema(contract.expand(contract.CONVERSATION_STATE), expand=True)
    assert isinstance(parsed, dict)
    return parsed


def _revive(schema: Any, value: Any, path: str) -> Any:
    if isinstance(schema, str):
        return value
    if isinstance(schema, list):
        if value is None:
            return None
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) != 1:
            raise SnapshotError(f"snapshot field {path}: unions of several types are not stored")
        return _revive(branches[0], value, path)
    kind = schema["type"]
    if kind == "record":
        if not isinstance(value, Mapping):
            raise SnapshotError(f"snapshot field {path or '.'}: expected an object")
        record: dict[str, Any] = {}
        for field in schema["fields"]:
            name = field["name"]
            raw = value.get(name, field.get("default", _MISSING))
            if raw is _MISSING:
                raise SnapshotError(f"snapshot field {path}{name}: missing and has no default")
            record[name] = _revive(field["type"], raw, f"{path}{name}.")
        return record
    if kind == "array":
        return [_revive(schema["items"], item, f"{path}[].") for item in value]
    if kind == "map":
        return {key: _revive(schema["values"], item, path) for key, item in value.items()}
    if schema.get("logicalType") in _TIMESTAMPS:
        try:
            return utc(datetime.fromisoformat(value))
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot field {path.rstrip('.')}: {exc}") from exc
    if isinstance(kind, dict | list):
        return _revive(kind, value, path)
    return value


def state_to_json(state: ConversationState) -> str:
    return dumps(state.to_avro())


def state_from_json(text: str) -> ConversationState:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot is not JSON: {exc}") from exc
    record = _revive(_state_schema(), raw, "")
    try:
        return ConversationState.from_avro(record)
    except (KeyError, ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot does not fit ConversationState: {exc}") from exc


def changes_to_json(changes: tuple[FieldChange, ...]) -> str:
    return dumps([change.to_avro() for change in changes])


def changes_from_json(text: str) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(field=item["field"], before=item.get("before"), after=item.get("after"))
        for item in json.loads(text)
    )
