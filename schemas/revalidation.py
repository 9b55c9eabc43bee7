"""The contract's rules on an event decoded from the topic: the worker's check.

The topic is not trusted (a raw producer skips the publisher), so a processor
applies the rules of `schemas.validation` again. What the Avro schema guarantees
for a decoded record (types, enum symbols, required fields, 32-bit ints) is not
checked twice: only what the schema cannot say is, straight on the typed objects
(ids, lengths, non-empty names, timestamps in range, and the event rules). A plan
per record type is compiled once from the same Avro schemas and the same field
checks as `schemas.validation`, so both boundaries refuse alike; walking the
dataclasses instead of `to_avro()` dicts costs a fraction of `check_event`
(docs/ARCHITECTURE.md, "Untrusted input", has the measurement).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from schemas import contract
from schemas.field_rules import _Refusal, _string_check, _timestamp_check
from schemas.model import PAYLOAD_BY_TYPE, ConversationEvent
from schemas.revalidation_fast import FastChecks
from schemas.validation import InvalidEvent, _event_ref, _rules

# (value, path) -> anything (ignored), or raises _Refusal with the path below `value`
# (the walks pass "" as path; see _join)
Walk = Callable[[Any, str], Any]

# Event types whose payload rules read payload fields (validation._payload_rules).
_PAYLOAD_RULES = frozenset(
    {"MERGED", "REASSIGNED", "MOVED", "MESSAGE_ADDED", "AUTO_RESOLVED", "BOUNCE_DETECTED",
     "DELIVERY_FAILED", "CUSTOMER_MARKED_SPAM"}
)  # fmt: skip


def _skip(value: Any, path: str) -> None:
    return None


def _join(name: str, rest: str) -> str:
    """A refusal's path, built only when there is a refusal: walks pass "" down and
    each level prefixes its field name on the way up (no string work per field)."""
    if not rest:
        return name
    return f"{name}{rest}" if rest.startswith("[") else f"{name}.{rest}"


class _Planner:
    def __init__(self) -> None:
        self.types = contract.named_types()
        self.records: dict[str, Walk] = {}

    def walk(self, schema: Any, namespace: str, field_name: str) -> Walk:
        if isinstance(schema, str):
            if schema == "string":
                return _string_check(field_name)  # its return value is ignored
            if schema in ("int", "long", "boolean", "double", "float", "bytes", "null"):
                return _skip  # the decoder guarantees them
            full = schema if "." in schema else f"{namespace}.{schema}"
            return self.walk(self.types[full], namespace, field_name)
        if isinstance(schema, list):
            branches = [branch for branch in schema if branch != "null"]
            if len(branches) != 1:  # pragma: no cover - the payload union is walked apart
                raise ValueError("only optional unions are planned")
            # A decoded value is None only where the schema allows it: records skip None.
            return self.walk(branches[0], namespace, field_name)
        if schema.get("logicalType") == "timestamp-millis":
            return _timestamp_check
        kind = schema["type"]
        if kind == "enum":
            return _skip
        if kind == "array":
            item = self.walk(schema["items"], namespace, field_name)
            if item is _skip:
                return _skip

            def array(value: Any, path: str) -> None:
                index = 0
                try:
                    for index, element in enumerate(value):  # noqa: B007 - read by except
                        item(element, "")
                except _Refusal as refusal:
                    raise _Refusal(_join(f"[{index}]", refusal.path), refusal.rule) from None

            return array
        if kind == "record":
            return self.record(schema, namespace)
        return self.walk(kind, namespace, field_name)

    def record(self, schema: dict[str, Any], namespace: str, skip: str = "") -> Walk:
        full = contract._fullname(schema, namespace)
        key = f"{full}-{skip}"
        if key in self.records:
            return self.records[key]
        space = full.rsplit(".", 1)[0]
        plan: list[tuple[str, Walk]] = []

        def record(value: Any, path: str) -> None:
            name = ""
            try:
                for name, walk in plan:
                    field = getattr(value, name)
                    if field is not None:
                        walk(field, "")
            except _Refusal as refusal:
                raise _Refusal(_join(name, refusal.path), refusal.rule) from None

        self.records[key] = record  # before planning fields, for recursive types
        for field in schema["fields"]:
            if field["name"] != skip:
                walk = self.walk(field["type"], space, field["name"])
                if walk is not _skip:
                    plan.append((field["name"], walk))
        return record


@cache
def _plans() -> tuple[Walk, Callable[[str], Walk]]:
    planner = _Planner()
    envelope = planner.record(
        planner.types[contract.CONVERSATION_EVENT], contract.EVENTS_NS, skip="payload"
    )

    @cache
    def payload(avro_name: str) -> Walk:
        return planner.record(planner.types[avro_name], contract.EVENTS_NS)

    return envelope, payload


@cache
def _fast() -> FastChecks:
    return FastChecks()


def _passes_fast(event: ConversationEvent, expected: str) -> bool:
    """The generated checks (revalidation_fast.py): whether the fields pass, cheaply."""
    if expected != event.payload.AVRO_NAME:
        return False
    fast = _fast()
    try:
        fast.envelope(event)
        fast.payload(expected)(event.payload)
    except _Refusal:
        return False
    return True


def check_decoded(event: ConversationEvent, now: datetime) -> None:
    """Raise InvalidEvent (event, field, rule) when a decoded event breaks the contract."""
    try:
        expected = PAYLOAD_BY_TYPE[event.type].AVRO_NAME
        if not _passes_fast(event, expected):
            # The planned walk again, for the refusal's field path and rule.
            envelope, payload = _plans()
            envelope(event, "")
            if expected != event.payload.AVRO_NAME:  # the union lets a raw producer mix them
                raise _Refusal(
                    "payload", f"is a {event.payload.AVRO_NAME.rsplit('.', 1)[-1]} but type "
                    f"{event.type.value} needs a {expected.rsplit('.', 1)[-1]}"
                )  # fmt: skip
            try:
                payload(expected)(event.payload, "")
            except _Refusal as refusal:
                raise _Refusal(_join("payload", refusal.path), refusal.rule) from None
        event_type = event.type.value
        body = event.payload.to_avro() if event_type in _PAYLOAD_RULES else {}
        _rules(
            {
                "event_id": event.event_id,
                "conversation_id": event.conversation_id,
                "type": event_type,
                "occurred_at": event.occurred_at,
                "actor": {"kind": event.actor.kind.value, "id": event.actor.id},
                "causation_id": event.causation_id,
                "payload": (event.payload.AVRO_NAME, body),
            },
            now,
        )
    except _Refusal as refusal:
        raise InvalidEvent(_event_ref({"event_id": event.event_id}), refusal.path,
                           refusal.rule) from None  # fmt: skip
