"""Bad input, one entry per kind, shared by the suites of every boundary.

`NASTY_EVENTS`: JSON-shaped events the contract refuses (validation, `produce`).
`RULE_BREAKERS`: typed events that encode as valid Avro but break the contract's
rules: what a raw producer that skips validation can put on the topic (the worker).
`nasty_lines()`: whole lines of a `produce` file, as bytes, that are not events.
Each entry names the field its refusal must name, so a suite can check the reason.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.examples import EXAMPLES
from schemas.model import ConversationEvent
from schemas.validation import event_from_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _with(kind: str, event_type: str = "TAG_ADDED", **changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(EXAMPLES[event_type])
    raw["event_id"] = f"evt-nasty-{kind}"
    payload = changes.pop("payload_changes", None)
    raw.update(changes)
    if payload is not None:
        raw["payload"] = {**raw["payload"], **payload}
    return raw


def _without(kind: str, field: str, event_type: str = "TAG_ADDED") -> dict[str, Any]:
    raw = _with(kind, event_type)
    del raw[field]
    return raw


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


BIG = "s" * 300_000
# (kind, raw event, the field its refusal names)
NASTY_EVENTS: list[tuple[str, Any, str]] = [
    (
        "script-conversation-id",
        _with("a1", conversation_id="<script>alert(1)</script>"),
        "conversation_id",
    ),
    ("occurred-1970", _with("a2", occurred_at="1970-01-01T00:00:00Z"), "occurred_at"),
    ("occurred-epoch-zero", _with("a3", occurred_at=0), "occurred_at"),
    ("empty-account-id", _with("a4", account_id=""), "account_id"),
    ("blank-account-id", _with("a5", account_id="   "), "account_id"),
    (
        "subject-300kb",
        _with("a6", "SUBJECT_EDITED", payload_changes={"to_subject": BIG}),
        "payload.to_subject",
    ),
    ("enum-as-list", _with("a7", type=["TAG_ADDED"]), "type"),
    ("enum-as-object", _with("a8", type={"TAG_ADDED": True}), "type"),
    ("actor-kind-as-list", _with("a9", actor={"kind": ["STAFF"], "id": "stf-1"}), "actor.kind"),
    ("epoch-10e20", _with("b1", occurred_at=10**20), "occurred_at"),
    ("epoch-negative-huge", _with("b2", occurred_at=-(10**30)), "occurred_at"),
    ("year-10000", _with("b3", occurred_at="10000-01-01T00:00:00Z"), "occurred_at"),
    ("year-1-plus-one-hour", _with("b4", occurred_at="0001-01-01T00:00:00+01:00"), "occurred_at"),
    ("year-9999-end", _with("b5", occurred_at="9999-12-31T23:59:59-01:00"), "occurred_at"),
    ("unpaired-surrogate-id", _with("b6", conversation_id="cnv-\ud800"), "conversation_id"),
    ("unpaired-surrogate-text", _with("b7", payload={"tag": "vip\udfff"}), "payload.tag"),
    (
        "reminder-due-overflow",
        _with("b8", "REMINDER_ADDED", payload_changes={"due_at": 10**20}),
        "payload.due_at",
    ),
    (
        "reminder-due-year-9999",
        _with("b9", "REMINDER_ADDED", payload_changes={"due_at": "9999-12-31T23:59:59Z"}),
        "payload.due_at",
    ),
    (
        "reminder-due-not-a-time",
        _with("c1", "REMINDER_ADDED", payload_changes={"due_at": {"at": 1}}),
        "payload.due_at",
    ),
    ("deeply-nested-payload", _with("c2", payload=_deep(500)), "payload"),
    ("deeply-nested-field", _with("c3", payload={"tag": _deep(500)}), "payload.tag"),
    ("not-an-object-list", [1, 2, 3], "event"),
    ("not-an-object-string", "TAG_ADDED", "event"),
    ("not-an-object-number", 42, "event"),
    ("not-an-object-null", None, "event"),
    ("empty-object", {}, "type"),
    ("missing-type", _without("c4", "type"), "type"),
    ("missing-event-id", _without("c5", "event_id"), "event_id"),
    ("missing-occurred-at", _without("c6", "occurred_at"), "occurred_at"),
    ("missing-actor", _without("c7", "actor"), "actor"),
    ("missing-payload", _without("c8", "payload"), "payload"),
    ("unknown-field", _with("c9", surprise=1), "surprise"),
    ("unknown-type", _with("d1", type="TAG_RENAMED"), "type"),
    ("lowercase-type", _with("d2", type="tag_added"), "type"),
    ("type-300kb", _with("d3", type=BIG), "type"),
    ("event-id-300kb", _with("d4", event_id=BIG), "event_id"),
    ("event-id-with-nul", _with("d5", event_id="evt-\x00"), "event_id"),
    ("event-id-with-escape", _with("d6", event_id="evt-\x1b[31mred"), "event_id"),
    ("conversation-id-newline", _with("d7", conversation_id="cnv-1\ncnv-2"), "conversation_id"),
    ("conversation-id-rtl-override", _with("d8", conversation_id="cnv-\u202e1"), "conversation_id"),
    ("account-id-number", _with("d9", account_id=12), "account_id"),
    ("account-id-null", _with("e1", account_id=None), "account_id"),
    ("occurred-at-bool", _with("e2", occurred_at=True), "occurred_at"),
    ("occurred-at-float", _with("e3", occurred_at=1.7e12), "occurred_at"),
    ("occurred-at-no-offset", _with("e4", occurred_at="2026-11-25T09:30:00"), "occurred_at"),
    ("occurred-at-garbage", _with("e5", occurred_at="2026-13-45T99:99:99Z"), "occurred_at"),
    ("occurred-at-300kb", _with("e6", occurred_at=BIG + "Z"), "occurred_at"),
    ("occurred-at-far-future", _with("e7", occurred_at="2100-01-01T00:00:00Z"), "occurred_at"),
    ("payload-as-list", _with("e8", payload=["billing"]), "payload"),
    ("payload-as-string", _with("e9", payload="billing"), "payload"),
    ("payload-of-another-type", _with("f1", payload={"reason": "x"}), "payload.tag"),
    ("tag-empty", _with("f2", payload={"tag": ""}), "payload.tag"),
    ("tag-number", _with("f3", payload={"tag": 7}), "payload.tag"),
    ("actor-as-string", _with("f4", actor="Dana"), "actor"),
    ("staff-actor-without-id", _with("f5", actor={"kind": "STAFF", "name": "Dana"}), "actor.id"),
    ("actor-unknown-kind", _with("f6", actor={"kind": "ROBOT", "id": "r-1"}), "actor.kind"),
    ("causation-is-itself", _with("f7", causation_id="evt-nasty-f7"), "causation_id"),
    (
        "merge-into-itself",
        _with("f8", "MERGED", payload_changes={"into_conversation_id": "cnv-1042"}),
        "payload.into_conversation_id",
    ),
    (
        "reassign-nobody-to-nobody",
        _with("f9", "REASSIGNED", payload={"from_assignee": None, "to_assignee": None}),
        "payload.to_assignee",
    ),
    (
        "move-to-same-inbox",
        _with(
            "g1", "MOVED", payload_changes={"to_inbox": EXAMPLES["MOVED"]["payload"]["from_inbox"]}
        ),
        "payload.to_inbox",
    ),
    (
        "bounce-recipient-not-email",
        _with("g2", "BOUNCE_DETECTED", payload_changes={"recipient": "jo"}),
        "payload.recipient",
    ),
    (
        "auto-resolved-idle-zero",
        _with("g3", "AUTO_RESOLVED", payload_changes={"idle_minutes": 0}),
        "payload.idle_minutes",
    ),
    (
        "auto-resolved-int-overflow",
        _with("g4", "AUTO_RESOLVED", payload_changes={"idle_minutes": 2**40}),
        "payload.idle_minutes",
    ),
    ("derived-without-causation", _with("g5", "AUTO_RESOLVED", causation_id=None), "causation_id"),
    (
        "recipients-not-a-list",
        _with("g6", "MESSAGE_ADDED", payload_changes={"recipients": "jo"}),
        "payload.recipients",
    ),
    (
        "note-inbound",
        _with(
            "g7", "MESSAGE_ADDED", payload_changes={"visibility": "NOTE", "direction": "INBOUND"}
        ),
        "payload.visibility",
    ),
    ("long-out-of-64-bits", _with("g8", occurred_at=2**70), "occurred_at"),
]


def nasty_lines() -> list[tuple[str, bytes]]:
    """Lines of a `produce` file that are refused as lines (not JSON, not UTF-8...)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("invalid-utf8", b'{"event_id": "evt-\xff\xfe"}'),
        ("latin1-text", '{"tag": "caf\u00e9"}'.encode("latin-1")),
        ("truncated-json", b'{"event_id": "evt-1", '),
        ("json-deeply-nested", deep),
        ("json-object-nested", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        ("nul-and-escape", b"\x00\x1b[2J\x1b]0;pwned\x07"),
        ("huge-integer", b"1" * 5000),
        ("nan", b"NaN"),
        ("bare-string", b'"just a string"'),
        ("trailing-garbage", b"{} {}"),
    ]


# Rule breakers, built as typed events so that the compiled codec encodes them as a raw
# producer would, without validation. (kind, mutation of a valid event, field named)
Breaker = Callable[[ConversationEvent], ConversationEvent]


def _replace(**changes: Any) -> Breaker:
    return lambda event: dataclasses.replace(event, **changes)


def _payload(**changes: Any) -> Breaker:
    return lambda event: dataclasses.replace(
        event, payload=dataclasses.replace(event.payload, **changes)
    )


def _actor(**changes: Any) -> Breaker:
    return lambda event: dataclasses.replace(
        event, actor=dataclasses.replace(event.actor, **changes)
    )


def _empty_inbox_id(event: ConversationEvent) -> ConversationEvent:
    payload: Any = event.payload
    inbox = dataclasses.replace(payload.inbox, id="")
    return dataclasses.replace(event, payload=dataclasses.replace(payload, inbox=inbox))


RULE_BREAKERS: list[tuple[str, str, Breaker, str]] = [
    (
        "script-conversation-id",
        "TAG_ADDED",
        _replace(conversation_id="<script>alert(1)</script>"),
        "conversation_id",
    ),
    (
        "occurred-1970",
        "TAG_ADDED",
        _replace(occurred_at=datetime(1970, 1, 1, tzinfo=UTC)),
        "occurred_at",
    ),
    (
        "occurred-far-future",
        "TAG_ADDED",
        _replace(occurred_at=NOW + timedelta(days=400)),
        "occurred_at",
    ),
    (
        "occurred-year-9999",
        "TAG_ADDED",
        _replace(occurred_at=datetime(9999, 12, 31, tzinfo=UTC)),
        "occurred_at",
    ),
    ("empty-account-id", "TAG_ADDED", _replace(account_id=""), "account_id"),
    ("blank-conversation-id", "TAG_ADDED", _replace(conversation_id=" "), "conversation_id"),
    ("subject-300kb", "SUBJECT_EDITED", _payload(to_subject=BIG), "payload.to_subject"),
    ("event-id-300kb", "TAG_ADDED", _replace(event_id=BIG), "event_id"),
    ("event-id-escape", "TAG_ADDED", _replace(event_id="evt-\x1b[31m"), "event_id"),
    ("event-id-nul", "TAG_ADDED", _replace(event_id="evt-\x00"), "event_id"),
    ("account-id-spaces", "TAG_ADDED", _replace(account_id="acct acme"), "account_id"),
    ("tag-empty", "TAG_ADDED", _payload(tag=""), "payload.tag"),
    ("tag-2001-chars", "TAG_ADDED", _payload(tag="t" * 2001), "payload.tag"),
    ("staff-without-id", "TAG_ADDED", _actor(id=None), "actor.id"),
    ("actor-id-html", "TAG_ADDED", _actor(id="<b>x</b>"), "actor.id"),
    (
        "causation-is-itself",
        "TAG_ADDED",
        lambda e: dataclasses.replace(e, causation_id=e.event_id),
        "causation_id",
    ),
    (
        "merge-into-itself",
        "MERGED",
        _payload(into_conversation_id="cnv-1042"),
        "payload.into_conversation_id",
    ),
    (
        "reassign-nobody",
        "REASSIGNED",
        _payload(from_assignee=None, to_assignee=None),
        "payload.to_assignee",
    ),
    (
        "bounce-recipient-not-email",
        "BOUNCE_DETECTED",
        _payload(recipient="jo"),
        "payload.recipient",
    ),
    (
        "auto-resolved-idle-negative",
        "AUTO_RESOLVED",
        _payload(idle_minutes=-5),
        "payload.idle_minutes",
    ),
    ("derived-without-causation", "AUTO_RESOLVED", _replace(causation_id=None), "causation_id"),
    (
        "reminder-due-year-9999",
        "REMINDER_ADDED",
        _payload(due_at=datetime(9999, 12, 31, tzinfo=UTC)),
        "payload.due_at",
    ),
    (
        "reminder-due-1970",
        "REMINDER_ADDED",
        _payload(due_at=datetime(1970, 1, 2, tzinfo=UTC)),
        "payload.due_at",
    ),
    (
        "created-inbox-id-empty",
        "CONVERSATION_CREATED",
        _empty_inbox_id,
        "payload.inbox.id",
    ),
    ("message-id-with-space", "MESSAGE_ADDED", _payload(message_id="msg 2"), "payload.message_id"),
    ("file-name-blank", "ATTACHMENT_DELETED", _payload(file_name="  "), "payload.file_name"),
]


def rule_breaker(event_type: str, breaker: Breaker, event_id: str) -> ConversationEvent:
    """A valid example of `event_type` with id `event_id`, then broken."""
    return breaker(event_from_json(dict(EXAMPLES[event_type], event_id=event_id), NOW))
