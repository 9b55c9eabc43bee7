"""The schema files as one contract: load every .avsc, expand a top-level schema.

Each named type lives in its own file, `avro/**/<namespace>.<Name>.avsc`, so a
reviewer sees one event's payload per file. Kafka and the registry need one
self-contained schema per topic: `expand` inlines each referenced named type at
its first use and leaves later uses as name references, as Avro requires.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

AVRO_DIR = Path(__file__).resolve().parent / "avro"
RELEASED_DIR = Path(__file__).resolve().parent / "released"

EVENTS_NS = "dev.convotrail.events"
OUTPUTS_NS = "dev.convotrail.outputs"

CONVERSATION_EVENT = f"{EVENTS_NS}.ConversationEvent"
CONVERSATION_STATE = f"{OUTPUTS_NS}.ConversationState"
TIMELINE_ENTRY = f"{OUTPUTS_NS}.TimelineEntry"
READ_RECEIPT = f"{OUTPUTS_NS}.ReadReceipt"
DELIVERY_STATUS = f"{OUTPUTS_NS}.DeliveryStatus"
SUPPRESSED_RECIPIENT = f"{OUTPUTS_NS}.SuppressedRecipient"
MESSAGE_ROUTE = f"{OUTPUTS_NS}.MessageRoute"

# The top-level records: what topics carry and what the evolution gate checks.
TOP_LEVEL = (
    CONVERSATION_EVENT,
    CONVERSATION_STATE,
    TIMELINE_ENTRY,
    READ_RECEIPT,
    DELIVERY_STATUS,
    SUPPRESSED_RECIPIENT,
    MESSAGE_ROUTE,
)

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

Json = Any


def _fullname(schema: dict[str, Any], namespace: str | None) -> str:
    name: str = schema["name"]
    if "." in name:
        return name
    space = schema.get("namespace", namespace)
    return f"{space}.{name}" if space else name


def _collect_inline(schema: Json, namespace: str | None, into: dict[str, Json]) -> None:
    """Index named types defined inline inside a file (e.g. MovedReminder)."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_inline(branch, namespace, into)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _fullname(schema, namespace)
            into.setdefault(full, schema)
            space = full.rsplit(".", 1)[0] if "." in full else namespace
            for field in schema.get("fields", []):
                _collect_inline(field["type"], space, into)
        elif kind == "array":
            _collect_inline(schema["items"], namespace, into)
        elif kind == "map":
            _collect_inline(schema["values"], namespace, into)


@cache
def named_types(directory: Path = AVRO_DIR) -> dict[str, Json]:
    """Every named type of the contract by full name, from the files (and inline definitions)."""
    found: dict[str, Json] = {}
    for path in sorted(directory.rglob("*.avsc")):
        schema = json.loads(path.read_text())
        full = _fullname(schema, None)
        if path.name != f"{full}.avsc":
            raise ValueError(f"{path} defines {full}: a file is named after its type's full name")
        if full in found:
            raise ValueError(f"{full} is defined twice")
        found[full] = schema
    for full, schema in list(found.items()):
        _collect_inline(schema, full.rsplit(".", 1)[0], found)
    return found


def expand(fullname: str, types: dict[str, Json] | None = None) -> Json:
    """A self-contained schema for `fullname`: each named type defined once, at first use."""
    types = named_types() if types is None else types
    defined: set[str] = set()

    def resolve(schema: Json, namespace: str | None) -> Json:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return schema
            full = schema if "." in schema else f"{namespace}.{schema}"
            if full in defined:
                return full
            if full not in types:
                raise KeyError(f"unknown Avro type {schema!r} (looked for {full})")
            return resolve(types[full], namespace)
        if isinstance(schema, list):
            return [resolve(branch, namespace) for branch in schema]
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            full = _fullname(schema, namespace)
            if full in defined:
                return full
            defined.add(full)
            space = full.rsplit(".", 1)[0]
            out = {key: value for key, value in schema.items() if key not in ("name", "namespace")}
            out = {"type": kind, "name": full.rsplit(".", 1)[1], "namespace": space, **out}
            if kind == "record":
                out["fields"] = [
                    {**field, "type": resolve(field["type"], space)} for field in schema["fields"]
                ]
            return out
        if kind == "array":
            return {**schema, "items": resolve(schema["items"], namespace)}
        if kind == "map":
            return {**schema, "values": resolve(schema["values"], namespace)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            return resolve(kind, namespace)
        return schema

    return resolve(types[fullname], None)


@cache
def expanded_json(fullname: str) -> str:
    """The expanded schema as canonical-ish JSON text (sorted keys), as registered."""
    return json.dumps(expand(fullname), sort_keys=True)


def released_versions(directory: Path = RELEASED_DIR) -> dict[str, dict[str, Json]]:
    """Released schemas: {version: {fullname: expanded schema}} from released/<version>/."""
    versions: dict[str, dict[str, Json]] = {}
    if not directory.exists():
        return versions
    for version_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        versions[version_dir.name] = {
            path.name.removesuffix(".avsc"): json.loads(path.read_text())
            for path in sorted(version_dir.glob("*.avsc"))
        }
    return versions
