"""Invalid events are refused before Kafka, with the event, the field and the rule."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.examples import EXAMPLES
from schemas.model import Actor, ActorKind, ConversationEvent, EventType, TagAdded
from schemas.validation import InvalidEvent, check_event, event_from_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


# (example type, mutation, expected message): each a distinct kind of bad input.
CASES: list[tuple[str, str, Mutation, str]] = [
    ("missing event_id", "TAG_ADDED", _drop("event_id"),
     "event <no event_id>: event_id: is required"),
    ("empty event_id", "TAG_ADDED", _set("event_id", "  "),
     "event <no event_id>: event_id: must not be empty"),
    ("event_id too long", "TAG_ADDED", _set("event_id", "e" * 201),
     "event " + "e" * 80 + ": event_id: is longer than 200 characters"),
    ("event_id with spaces", "TAG_ADDED", _set("event_id", "evt 1"),
     "event evt 1: event_id: 'evt 1' has characters an id cannot have "
     "(letters, digits and ._:@/+=#- only)"),
    ("missing conversation_id", "TAG_ADDED", _drop("conversation_id"),
     "event evt-0005: conversation_id: is required"),
    ("missing account_id", "TAG_ADDED", _drop("account_id"),
     "event evt-0005: account_id: is required"),
    ("unknown event type", "TAG_ADDED", _set("type", "TAG_RENAMED"),
     "event evt-0005: type: 'TAG_RENAMED' is not a known EventType (see docs/events.md)"),
    ("missing type", "TAG_ADDED", _drop("type"), "event evt-0005: type: is required"),
    ("payload of another type", "RESOLVED", _set("payload", {"tag": "vip"}),
     "event evt-0007: payload.tag: is not a field of Resolved"),
    ("missing payload", "TAG_ADDED", _drop("payload"), "event evt-0005: payload: is required"),
    ("missing payload field", "TAG_ADDED", _set("payload", {}),
     "event evt-0005: payload.tag: is required"),
    ("empty tag", "TAG_ADDED", _set("payload.tag", " "),
     "event evt-0005: payload.tag: must not be empty"),
    ("missing occurred_at", "TAG_ADDED", _drop("occurred_at"),
     "event evt-0005: occurred_at: is required"),
    ("occurred_at not a timestamp", "TAG_ADDED", _set("occurred_at", "yesterday"),
     "event evt-0005: occurred_at: 'yesterday' has no UTC offset: write it like "
     "2026-11-25T09:30:00Z"),
    ("occurred_at without offset", "TAG_ADDED", _set("occurred_at", "2026-11-25T09:30:00"),
     "event evt-0005: occurred_at: '2026-11-25T09:30:00' has no UTC offset"),
    ("occurred_at malformed", "TAG_ADDED", _set("occurred_at", "2026-13-45T09:30:00Z"),
     "event evt-0005: occurred_at: '2026-13-45T09:30:00Z' is not an ISO-8601 timestamp"),
    ("occurred_at before 2000", "TAG_ADDED", _set("occurred_at", 0),
     "event evt-0005: occurred_at: 1970-01-01T00:00:00+00:00 is before 2000-01-01"),
    ("occurred_at in the future", "TAG_ADDED", _set("occurred_at", "2026-11-27T12:00:00Z"),
     "event evt-0005: occurred_at: 2026-11-27T12:00:00+00:00 is more than 24 hours in the future"),
    ("occurred_at a boolean", "TAG_ADDED", _set("occurred_at", True),
     "event evt-0005: occurred_at: must be an ISO-8601 timestamp or epoch milliseconds"),
    ("missing actor", "TAG_ADDED", _drop("actor"), "event evt-0005: actor: is required"),
    ("unknown actor kind", "TAG_ADDED", _set("actor.kind", "ROBOT"),
     "event evt-0005: actor.kind: 'ROBOT' is not one of STAFF, CUSTOMER, BOT, ASSISTANT, "
     "WORKFLOW, SYSTEM"),
    ("staff actor without id", "TAG_ADDED", _set("actor", {"kind": "STAFF", "name": "Dana"}),
     "event evt-0005: actor.id: is required for a STAFF actor"),
    ("unknown envelope field", "TAG_ADDED", _set("priority", "high"),
     "event evt-0005: priority: is not a field of ConversationEvent"),
    ("string where an int belongs", "AUTO_RESOLVED", _set("payload.idle_minutes", "30"),
     "event evt-0022: payload.idle_minutes: must be an integer, not str"),
    ("non-positive idle minutes", "AUTO_RESOLVED", _set("payload.idle_minutes", 0),
     "event evt-0022: payload.idle_minutes: must be positive"),
    ("number where a string belongs", "TAG_ADDED", _set("payload.tag", 7),
     "event evt-0005: payload.tag: must be a string, not int"),
    ("unknown channel", "CONVERSATION_CREATED", _set("payload.channel", "PIGEON"),
     "event evt-0001: payload.channel: 'PIGEON' is not one of EMAIL, CHAT, SMS, SOCIAL, "
     "VOICE, API"),
    ("unknown direction", "MESSAGE_ADDED", _set("payload.direction", "SIDEWAYS"),
     "event evt-0002: payload.direction: 'SIDEWAYS' is not one of INBOUND, OUTBOUND"),
    ("recipients not a list", "MESSAGE_ADDED", _set("payload.recipients", "jo@example.com"),
     "event evt-0002: payload.recipients: must be a list"),
    ("inbound internal note", "MESSAGE_ADDED",
     lambda e: (_set("payload.direction", "INBOUND")(e), _set("payload.visibility", "NOTE")(e)),
     "event evt-0002: payload.visibility: an internal NOTE cannot be INBOUND"),
    ("merge into itself", "MERGED", _set("payload.into_conversation_id", "cnv-1042"),
     "event evt-0020: payload.into_conversation_id: a conversation cannot merge into itself"),
    ("reassigned from nobody to nobody", "REASSIGNED", _set("payload", {}),
     "event evt-0003: payload.to_assignee: from and to cannot both be unassigned"),
    ("moved to the same inbox", "MOVED",
     _set("payload.to_inbox", {"id": "inb-support", "name": "S"}),
     "event evt-0004: payload.to_inbox: must differ from from_inbox"),
    ("reminder without due time", "REMINDER_ADDED", _drop("payload.due_at"),
     "event evt-0029: payload.due_at: is required"),
    ("unknown bounce class", "BOUNCE_DETECTED", _set("payload.bounce_class", "SQUISHY"),
     "event evt-0025: payload.bounce_class: 'SQUISHY' is not one of HARD, SOFT, POLICY, UNKNOWN"),
    ("bounce recipient not an address", "BOUNCE_DETECTED", _set("payload.recipient", "jo"),
     "event evt-0025: payload.recipient: 'jo' is not an email address"),
    ("causation is itself", "TAG_ADDED", _set("causation_id", "evt-0005"),
     "event evt-0005: causation_id: must not be the event's own event_id"),
    ("derived event without causation", "REMINDER_TRIGGERED", _set("causation_id", None),
     "event evt-0031: causation_id: is required for the derived event REMINDER_TRIGGERED"),
    ("boolean that is a string", "BOUNCE_DETECTED", _set("payload.escalated", "yes"),
     "event evt-0025: payload.escalated: must be true or false, not str"),
    ("id with control characters", "NOTE_PINNED", _set("payload.note_id", "msg\n3"),
     "event evt-0018: payload.note_id: 'msg\\n3' has characters an id cannot have"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("example", "mutate", "expected"),
    [pytest.param(example, mutate, expected, id=name) for name, example, mutate, expected in CASES],
)
def test_invalid_event_is_refused_naming_field_and_rule(
    example: str, mutate: Mutation, expected: str
) -> None:
    raw = copy.deepcopy(EXAMPLES[example])
    mutate(raw)
    with pytest.raises(InvalidEvent) as caught:
        event_from_json(raw, NOW)
    assert str(caught.value).startswith(expected)


def test_at_least_twenty_distinct_kinds_are_covered() -> None:
    assert len({name for name, *_ in CASES}) >= 20
    assert len({expected for *_, expected in CASES}) == len(CASES)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="event <no event_id>: event: must be a JSON object"):
        event_from_json(["not", "an", "event"], NOW)


def test_epoch_millis_and_iso_timestamps_mean_the_same_instant() -> None:
    iso = copy.deepcopy(EXAMPLES["TAG_ADDED"])
    millis = copy.deepcopy(iso) | {"occurred_at": 1795597440000}
    offset = copy.deepcopy(iso) | {"occurred_at": "2026-11-25T10:04:00+01:00"}
    assert event_from_json(iso, NOW) == event_from_json(millis, NOW) == event_from_json(offset, NOW)


def test_optional_fields_take_their_defaults() -> None:
    event = event_from_json(EXAMPLES["ARCHIVED"], NOW)
    assert event.correlation_id is None and event.payload.to_avro() == {"reason": None}


def test_events_built_in_code_are_checked_too() -> None:
    good = ConversationEvent(
        event_id="evt-x", conversation_id="cnv-1", account_id="acct-1", type=EventType.TAG_ADDED,
        occurred_at=NOW, actor=Actor(kind=ActorKind.STAFF, id="stf-1", name="Dana"),
        payload=TagAdded(tag="vip"),
    )  # fmt: skip
    assert check_event(good, NOW)["payload"] == ("dev.convotrail.events.TagAdded", {"tag": "vip"})
    naive = dataclasses.replace(good, occurred_at=datetime(2026, 11, 25, 9))
    with pytest.raises(InvalidEvent, match="occurred_at: must carry a timezone"):
        check_event(naive, NOW)
    wrong = ConversationEvent(
        event_id="evt-y", conversation_id="cnv-1", account_id="acct-1", type=EventType.RESOLVED,
        occurred_at=NOW, actor=good.actor, payload=TagAdded(tag="vip"),
    )  # fmt: skip
    with pytest.raises(
        InvalidEvent, match="payload: is a TagAdded but type RESOLVED needs a Resolved"
    ):
        check_event(wrong, NOW)


@given(st.text(max_size=30))
def test_any_event_id_is_accepted_or_refused_with_a_message(event_id: str) -> None:
    raw = copy.deepcopy(EXAMPLES["TAG_ADDED"]) | {"event_id": event_id}
    try:
        event = event_from_json(raw, NOW)
    except InvalidEvent as refused:
        assert refused.field == "event_id" and refused.rule
    else:
        assert event.event_id == event_id and event_id.strip()
