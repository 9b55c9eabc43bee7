"""The generated fast path of the worker's check (schemas/revalidation_fast.py) passes
exactly the events the planned walk passes: hypothesis replaces any field, envelope or
payload, of every example event with any value."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.examples import EXAMPLES
from schemas.field_rules import _Refusal
from schemas.model import PAYLOAD_BY_TYPE
from schemas.revalidation import _passes_fast, _plans
from schemas.validation import event_from_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TEXTS = st.text(max_size=30) | st.sampled_from(
    ["", " ", "<script>", "a" * 2001, "\ud800", "ok-id", "x" * 201, "a|b"]
)
TIMES = st.datetimes(min_value=datetime(1971, 1, 1), timezones=st.just(UTC)) | st.datetimes(
    min_value=datetime(1971, 1, 1)
)  # naive ones too: refused by both


def _planned_passes(event: Any) -> bool:
    envelope, payload = _plans()
    try:
        envelope(event, "")
        payload(event.payload.AVRO_NAME)(event.payload, "")
    except _Refusal:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.booleans(), st.data())
def test_the_fast_path_agrees_with_the_planned_walk(name: str, in_payload: bool, data: Any) -> None:
    event = event_from_json(EXAMPLES[name], NOW)
    target = event.payload if in_payload else event
    # What a decoder can hand over: any string or time where the schema has one.
    fields = [
        f.name
        for f in dataclasses.fields(target)
        if isinstance(getattr(target, f.name), str | datetime) and f.name != "type"
    ]
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    value = data.draw(TEXTS if isinstance(getattr(target, field), str) else TIMES)
    changed = dataclasses.replace(target, **{field: value})
    broken = dataclasses.replace(event, payload=changed) if in_payload else changed
    expected = PAYLOAD_BY_TYPE[broken.type].AVRO_NAME
    assert _passes_fast(broken, expected) == _planned_passes(broken)


def test_every_example_passes_fast() -> None:
    for name, raw in EXAMPLES.items():
        event = event_from_json(raw, NOW)
        assert _passes_fast(event, PAYLOAD_BY_TYPE[event.type].AVRO_NAME), name
