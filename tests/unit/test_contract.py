"""The event contract: schema files, generated model, wire round trip, evolution gate."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from schemas import codegen, contract, evolution, model
from schemas.examples import EXAMPLES
from schemas.validation import event_from_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Every line of the seed help page, and the event type(s) that record it.
SEED_LINES = {
    "Reassigns": ["REASSIGNED"],
    "Moves": ["MOVED"],
    "adds or removes a Tag": ["TAG_ADDED", "TAG_REMOVED"],
    "Resolves or Reopens": ["RESOLVED", "REOPENED"],
    "Archives or Unarchives": ["ARCHIVED", "UNARCHIVED"],
    "marks or unmarks as Spam": ["MARKED_SPAM", "UNMARKED_SPAM"],
    "Ends a chat": ["CHAT_ENDED"],
    "Replies and Archives": ["REPLIED_AND_ARCHIVED"],
    "Reply and Reopens": ["REPLIED_AND_REOPENED"],
    "runs a manual workflow": ["WORKFLOW_RAN"],
    "puts back on hold": ["PUT_ON_HOLD"],
    "pins an internal note": ["NOTE_PINNED"],
    "unpins an internal note": ["NOTE_UNPINNED"],
    "merges a conversation": ["MERGED", "MERGE_RECEIVED"],
    "auto-resolved by the Assistant": ["AUTO_RESOLVED"],
    "Automated or Manual Workflow runs": ["WORKFLOW_RAN"],
    "attachment is deleted": ["ATTACHMENT_DELETED"],
    "delivery fails or a bounce is detected": ["DELIVERY_FAILED", "BOUNCE_DETECTED"],
    "chatbot hands over or resolves": ["CHATBOT_HANDED_OVER", "CHATBOT_RESOLVED"],
    "subject is edited": ["SUBJECT_EDITED"],
    "reminder added and triggered": ["REMINDER_ADDED", "REMINDER_TRIGGERED"],
    "customer marks your message as spam": ["CUSTOMER_MARKED_SPAM"],
    "satisfaction survey is sent": ["CSAT_SURVEY_SENT"],
    "bounce is detected": ["BOUNCE_DETECTED"],
    "Viewed indicators": ["MESSAGE_VIEWED"],
    "sent successfully (hover the sender)": ["MESSAGE_SENT", "MESSAGE_DELIVERED"],
}
LIFECYCLE = ["CONVERSATION_CREATED", "MESSAGE_ADDED", "REMINDER_CANCELLED"]


def test_every_seed_line_and_lifecycle_event_has_a_type() -> None:
    symbols = set(model.EventType)
    wanted = {t for types in SEED_LINES.values() for t in types} | set(LIFECYCLE)
    assert wanted <= symbols
    assert len(symbols) == 36


def test_every_type_has_exactly_one_payload_record() -> None:
    assert set(model.PAYLOAD_BY_TYPE) == set(model.EventType)
    assert len(set(model.PAYLOAD_BY_TYPE.values())) == len(model.EventType)
    envelope = contract.named_types()[contract.CONVERSATION_EVENT]
    union = next(f["type"] for f in envelope["fields"] if f["name"] == "payload")
    assert sorted(union) == sorted(p.AVRO_NAME for p in model.PAYLOAD_BY_TYPE.values())


def _docs_missing(schema: Any, path: str) -> list[str]:
    missing: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum") and not schema.get("doc"):
            missing.append(path)
        for field in schema.get("fields", []):
            if not field.get("doc"):
                missing.append(f"{path}.{field['name']}")
            missing += _docs_missing(field["type"], f"{path}.{field['name']}")
        if schema.get("type") == "array":
            missing += _docs_missing(schema["items"], path)
    elif isinstance(schema, list):
        for branch in schema:
            missing += _docs_missing(branch, path)
    return missing


def test_every_type_and_field_is_documented() -> None:
    missing = [m for name, s in contract.named_types().items() for m in _docs_missing(s, name)]
    assert missing == []


def test_top_level_schemas_expand_to_self_contained_schemas() -> None:
    for fullname in contract.TOP_LEVEL:
        expanded = contract.expand(fullname)
        fastavro.parse_schema(expanded)  # raises on an unknown or redefined name
        text = json.dumps(expanded)
        for name in contract.named_types():
            # a named type is defined at most once in the expanded schema
            short = name.rsplit(".", 1)[1]
            assert text.count(f'"name": "{short}", "namespace"') <= 1, name


def test_generated_model_is_up_to_date() -> None:
    committed = codegen.MODEL_PATH.read_text()
    assert codegen.generate() == committed, "run `python -m schemas.codegen` and commit"


def test_model_fields_match_the_schema_fields() -> None:
    for fullname, schema in contract.named_types().items():
        if schema["type"] != "record":
            continue
        cls = getattr(model, fullname.rsplit(".", 1)[1])
        assert [f.name for f in fields(cls)] == [f["name"] for f in schema["fields"]], fullname
        assert fullname == cls.AVRO_NAME


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_example_round_trips_through_avro(event_type: str) -> None:
    event = event_from_json(EXAMPLES[event_type], NOW)
    assert event.type == event_type
    assert isinstance(event.payload, model.PAYLOAD_BY_TYPE[event.type])
    schema = fastavro.parse_schema(contract.expand(contract.CONVERSATION_EVENT))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, event.to_avro())
    buffer.seek(0)
    record = fastavro.schemaless_reader(
        buffer, schema, None, return_record_name=True, return_record_name_override=True
    )
    assert model.ConversationEvent.from_avro(record) == event


# -- evolution gate ----------------------------------------------------------------


def _released() -> dict[str, dict[str, Any]]:
    versions = contract.released_versions()
    # Every released schema is still a top-level one; later releases add new ones.
    assert "v1" in versions and set(versions["v1"]) <= set(contract.TOP_LEVEL)
    assert set(versions[max(versions)]) == set(contract.TOP_LEVEL)
    return versions


def test_current_schemas_pass_the_gate_against_every_release() -> None:
    results = evolution.gate(evolution.current_schemas(), _released())
    assert results and all(r.passed for r in results), [r.describe() for r in results]


def _changed(fullname: str, change: Any) -> dict[str, Any]:
    current = copy.deepcopy(evolution.current_schemas())
    change(current[fullname])
    return current


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _gate_of(current: dict[str, Any], fullname: str) -> evolution.GateResult:
    return next(r for r in evolution.gate(current, _released()) if r.fullname == fullname)


def test_gate_fails_on_a_new_required_field() -> None:
    current = _changed(
        contract.CONVERSATION_STATE,
        lambda s: s["fields"].append({"name": "priority", "type": "int", "doc": "new"}),
    )
    result = _gate_of(current, contract.CONVERSATION_STATE)
    assert not result.passed
    assert not result.backward.compatible
    assert "reader_field_missing_default_value" in result.describe()


def test_gate_fails_on_a_removed_enum_symbol() -> None:
    def drop_symbol(schema: dict[str, Any]) -> None:
        enum = _field(schema, "type")["type"]
        enum["symbols"].remove("TAG_REMOVED")

    result = _gate_of(
        _changed(contract.CONVERSATION_EVENT, drop_symbol), contract.CONVERSATION_EVENT
    )
    assert not result.passed
    assert "missing_enum_symbols" in result.describe()


def test_gate_fails_on_a_changed_field_type() -> None:
    def retype(schema: dict[str, Any]) -> None:
        _field(schema, "view_count")["type"] = "string"

    result = _gate_of(_changed(contract.READ_RECEIPT, retype), contract.READ_RECEIPT)
    assert not result.passed
    assert "type_mismatch" in result.describe()


def test_gate_fails_when_output_consumers_would_break() -> None:
    # Removing a field that has no default breaks old readers (FORWARD), enforced for outputs.
    def remove_version(schema: dict[str, Any]) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "version"]

    result = _gate_of(
        _changed(contract.CONVERSATION_STATE, remove_version), contract.CONVERSATION_STATE
    )
    assert result.backward.compatible
    assert not result.forward.compatible and result.forward_enforced
    assert not result.passed


def test_gate_accepts_an_optional_field_with_a_default() -> None:
    current = _changed(
        contract.CONVERSATION_STATE,
        lambda s: s["fields"].append(
            {"name": "priority", "type": ["null", "int"], "default": None, "doc": "new"}
        ),
    )
    result = _gate_of(current, contract.CONVERSATION_STATE)
    assert result.passed and result.backward.compatible and result.forward.compatible


def test_gate_accepts_a_new_event_type_backward_only() -> None:
    def add_type(schema: dict[str, Any]) -> None:
        _field(schema, "type")["type"]["symbols"].append("PRIORITY_CHANGED")
        _field(schema, "payload")["type"].append(
            {"type": "record", "name": "PriorityChanged", "doc": "new",
             "fields": [{"name": "priority", "type": "int", "doc": "new"}]}
        )  # fmt: skip

    result = _gate_of(_changed(contract.CONVERSATION_EVENT, add_type), contract.CONVERSATION_EVENT)
    assert result.backward.compatible
    assert not result.forward.compatible and not result.forward_enforced
    assert result.passed


def test_release_refuses_to_rewrite_a_version(tmp_path: Any) -> None:
    evolution.release("v9", tmp_path)
    assert len(list((tmp_path / "v9").glob("*.avsc"))) == len(contract.TOP_LEVEL)
    with pytest.raises(FileExistsError):
        evolution.release("v9", tmp_path)


def test_event_catalogue_is_up_to_date() -> None:
    from schemas import catalogue

    assert catalogue.generate() == catalogue.CATALOGUE_PATH.read_text(), (
        "run `python -m schemas.catalogue` and commit docs/events.md"
    )
    text = catalogue.CATALOGUE_PATH.read_text()
    for event_type in model.EventType:
        assert f"`{event_type.value}`" in text
