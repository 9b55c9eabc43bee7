"""The compiled Avro codec (schemas/compiled.py) against fastavro: the same bytes out,
the same objects in, for any value the contract's schemas allow; and nothing but
UndecodableBody from bytes that are not a body of the schema."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import contract
from schemas import model as m
from schemas.compiled import codec_for
from schemas.errors import UndecodableBody
from tests.unit.processors.test_conversation_core import Script

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MODELS = {
    contract.CONVERSATION_EVENT: m.ConversationEvent,
    contract.CONVERSATION_STATE: m.ConversationState,
    contract.TIMELINE_ENTRY: m.TimelineEntry,
    contract.READ_RECEIPT: m.ReadReceipt,
    contract.DELIVERY_STATUS: m.DeliveryStatus,
    contract.SUPPRESSED_RECIPIENT: m.SuppressedRecipient,
    contract.MESSAGE_ROUTE: m.MessageRoute,
}


def _records(schema: Any) -> st.SearchStrategy[Any]:
    """Values of an expanded schema, as fastavro reads them (unions of several
    records as (name, fields) pairs)."""
    named: dict[str, Any] = {}

    def of(s: Any, space: str | None) -> st.SearchStrategy[Any]:
        if isinstance(s, str):
            if s in named:
                return st.deferred(lambda: of(named[s], space))
            full = f"{space}.{s}" if space and "." not in s else s
            if full in named:
                return st.deferred(lambda: of(named[full], space))
            return {
                "null": st.none(), "boolean": st.booleans(), "string": st.text(max_size=12),
                "int": st.integers(-(2**31), 2**31 - 1), "long": st.integers(-(2**63), 2**63 - 1),
            }[s]  # fmt: skip
        if isinstance(s, list):
            records = [b for b in s if isinstance(b, dict) and b.get("type") == "record"]
            if len(records) > 1:
                return st.one_of(
                    *[of(b, space).map(lambda v, b=b: (f"{b['namespace']}.{b['name']}", v))
                      for b in records]
                )  # fmt: skip
            return st.one_of(*[of(b, space) for b in s])
        kind = s["type"]
        if kind == "record":
            full = f"{s['namespace']}.{s['name']}"
            named[full] = s
            inner = s["namespace"]
            return st.fixed_dictionaries({f["name"]: of(f["type"], inner) for f in s["fields"]})
        if kind == "enum":
            named[f"{s['namespace']}.{s['name']}"] = s
            return st.sampled_from(s["symbols"])
        if kind == "array":
            return st.lists(of(s["items"], space), max_size=3)
        if kind == "long" and s.get("logicalType") == "timestamp-millis":
            millis = st.integers(-(10**12), 4 * 10**12)
            return millis.map(lambda ms: EPOCH + timedelta(milliseconds=ms))
        return of(kind, space)

    return of(schema, None)


def _fastavro_bytes(parsed: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bytes_and_objects_agree_with_fastavro(name: str) -> None:
    schema = contract.expand(name)
    parsed = fastavro.parse_schema(schema)
    codec = codec_for(contract.expanded_json(name))
    model = MODELS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_records(json.loads(contract.expanded_json(name))))
    def check(record: dict[str, Any]) -> None:
        value = model.from_avro(record)
        expected = _fastavro_bytes(parsed, value.to_avro())
        assert bytes(codec.encode(value)) == expected
        assert codec.decode_all(expected) == value

    check()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_undecodable_never_a_crash(data: bytes) -> None:
    codec = codec_for(contract.expanded_json(contract.CONVERSATION_EVENT))
    with contextlib.suppress(UndecodableBody):
        codec.decode_all(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_truncated_or_extended_body_is_undecodable(data: st.DataObject) -> None:
    codec = codec_for(contract.expanded_json(contract.CONVERSATION_EVENT))
    body = bytes(codec.encode(Script().created()))
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(UndecodableBody):
        codec.decode_all(body[:cut])
    with pytest.raises(UndecodableBody):
        codec.decode_all(body + b"\x00")
