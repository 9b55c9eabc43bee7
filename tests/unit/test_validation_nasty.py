"""Every kind of bad input gets a refusal naming its field, never a crash (issue 12).

The same tables feed the `produce` CLI suite and the worker's raw-record suite.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.traffic import generate
from schemas.examples import EXAMPLES
from schemas.revalidation import check_decoded
from schemas.validation import InvalidEvent, avro_record_from_json, check_event, event_from_json
from tests.support.nasty import NASTY_EVENTS, NOW, RULE_BREAKERS, rule_breaker


def test_the_tables_hold_at_least_fifty_kinds() -> None:
    assert len({kind for kind, _, _ in NASTY_EVENTS}) == len(NASTY_EVENTS) >= 50
    assert len({kind for kind, _, _, _ in RULE_BREAKERS}) == len(RULE_BREAKERS) >= 25


@pytest.mark.parametrize(
    ("kind", "raw", "field"), NASTY_EVENTS, ids=[k for k, _, _ in NASTY_EVENTS]
)
def test_a_nasty_event_is_refused_naming_its_field(kind: str, raw: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        avro_record_from_json(raw, NOW)
    assert refused.value.field == field, str(refused.value)
    message = str(refused.value)
    # Bounded and printable: it goes to a terminal, a log and a DLQ header.
    assert len(message) < 1200, message[:200]
    assert message.isprintable(), repr(message)
    message.encode()  # no lone surrogate


@pytest.mark.parametrize(
    ("kind", "event_type", "breaker", "field"), RULE_BREAKERS, ids=[k for k, *_ in RULE_BREAKERS]
)
def test_a_typed_event_that_breaks_a_rule_is_refused(
    kind: str, event_type: str, breaker: Any, field: str
) -> None:
    event = rule_breaker(event_type, breaker, f"evt-{kind}")
    with pytest.raises(InvalidEvent) as refused:
        check_event(event, NOW)
    assert refused.value.field == field, str(refused.value)
    assert len(str(refused.value)) < 1200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


def _accepted_or_refused(raw: Any) -> None:
    try:
        record = avro_record_from_json(raw, NOW)
    except InvalidEvent as refusal:
        assert str(refusal).isprintable()
        return
    assert record["event_id"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_any_json_structure_is_valid_or_refused(raw: Any) -> None:
    _accepted_or_refused(raw)


# A valid event with one field, at any depth, replaced by any JSON value: the refusals
# that matter are the ones deep inside an otherwise plausible event.
def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_any_field_replaced_by_any_json_is_valid_or_refused(name: str, data: Any) -> None:
    raw = copy.deepcopy(EXAMPLES[name])
    path = data.draw(st.sampled_from(_paths(raw)))
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = data.draw(JSON | st.integers(min_value=-(2**80), max_value=2**80))
    _accepted_or_refused(raw)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_as_json_line_is_valid_or_refused(text: str) -> None:
    try:
        raw = json.loads(text)
    except ValueError:
        return
    _accepted_or_refused(raw)


# The worker's check on decoded events (schemas/revalidation.py) refuses what the
# publisher's does, naming the same field, and accepts what it accepts.
@pytest.mark.parametrize(
    ("kind", "event_type", "breaker", "field"), RULE_BREAKERS, ids=[k for k, *_ in RULE_BREAKERS]
)
def test_the_workers_check_refuses_a_rule_breaker_like_the_publisher(
    kind: str, event_type: str, breaker: Any, field: str
) -> None:
    event = rule_breaker(event_type, breaker, f"evt-{kind}")
    with pytest.raises(InvalidEvent) as refused:
        check_decoded(event, NOW)
    assert refused.value.field == field, str(refused.value)


def test_the_workers_check_refuses_a_payload_of_another_type() -> None:
    resolved = event_from_json(EXAMPLES["RESOLVED"], NOW)
    mixed = dataclasses.replace(event_from_json(EXAMPLES["TAG_ADDED"], NOW),
                                payload=resolved.payload)  # fmt: skip
    with pytest.raises(InvalidEvent, match="payload: is a Resolved but type TAG_ADDED needs"):
        check_decoded(mixed, NOW)


def test_the_workers_check_accepts_every_example_and_generated_event() -> None:
    events = [event_from_json(raw, NOW) for raw in EXAMPLES.values()]
    events += generate(seed=3, conversations=300, start=NOW - timedelta(days=20))
    for event in events:
        check_event(event, NOW)
        check_decoded(event, NOW)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_both_checks_agree_on_any_string_or_time_field(name: str, data: Any) -> None:
    event = event_from_json(EXAMPLES[name], NOW)
    raw = event.to_avro()
    strings = [(k, v) for k, v in raw.items() if isinstance(v, str | datetime) and k != "type"]
    field, value = data.draw(st.sampled_from(strings))
    if isinstance(value, datetime):
        new: Any = data.draw(st.datetimes(timezones=st.just(UTC)))
    else:
        new = data.draw(st.text(max_size=40) | st.sampled_from(["", " ", "a" * 201, "x\ud800"]))
    changed = dataclasses.replace(event, **{field: new})
    try:
        check_event(changed, NOW)
        publisher: str | None = None
    except InvalidEvent as refused:
        publisher = refused.field
    try:
        check_decoded(changed, NOW)
        worker: str | None = None
    except InvalidEvent as refused:
        worker = refused.field
    assert worker == publisher


def test_both_checks_name_an_array_item_alike() -> None:
    event = event_from_json(EXAMPLES["MESSAGE_ADDED"], NOW)
    message: Any = event.payload
    payload = dataclasses.replace(message, recipients=("jo@example.com", "x" * 2001))
    broken = dataclasses.replace(event, payload=payload)
    for check in (check_event, check_decoded):
        with pytest.raises(InvalidEvent) as refused:
            check(broken, NOW)
        assert refused.value.field == "payload.recipients[1]", str(refused.value)
