"""Generate docs/events.md, the event catalogue, from the schemas and the examples.

Run `python -m schemas.catalogue` after changing a schema; a test fails when the
committed catalogue differs from what this module generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas import contract
from schemas.examples import EXAMPLES
from schemas.model import PAYLOAD_BY_TYPE, EventType

CATALOGUE_PATH = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, list):
        branches = [_type_name(branch) for branch in schema if branch != "null"]
        text = " | ".join(branches)
        return f"{text} (nullable)" if "null" in schema else text
    if schema.get("logicalType"):
        return str(schema["logicalType"])
    kind = schema["type"]
    if kind in ("record", "enum"):
        return str(schema["name"])
    if kind == "array":
        return f"array of {_type_name(schema['items'])}"
    return _type_name(kind)


def _default(field: dict[str, Any]) -> str:
    if "default" not in field:
        return "required"
    return f"default `{json.dumps(field['default'])}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fields_table(schema: dict[str, Any]) -> list[str]:
    if not schema["fields"]:
        return ["(no fields)", ""]
    lines = ["| field | type | presence | meaning |", "|---|---|---|---|"]
    for field in schema["fields"]:
        shown = _type_name(field["type"])
        if isinstance(field["type"], list) and len(field["type"]) > 2:
            shown = "the payload record of the type (see below)"
        lines.append(
            f"| `{field['name']}` | {_escape(shown)} | {_default(field)} "
            f"| {_escape(field.get('doc', ''))} |"
        )
    return [*lines, ""]


def generate() -> str:
    types = contract.named_types()
    envelope = types[contract.CONVERSATION_EVENT]
    out = [
        "# Event catalogue",
        "",
        "Generated from `schemas/avro` and `schemas/examples.py` by `python -m schemas.catalogue`;",
        "do not edit by hand. Topics, keys and headers: [asyncapi.yaml](asyncapi.yaml).",
        "",
        "Every fact about a conversation is one `ConversationEvent` on `conversation-events`,",
        "keyed by `account_id|conversation_id` (`schemas/keys.py`), Avro with Confluent",
        "framing (magic byte 0, 4-byte schema id, body). The `type` selects the payload",
        "record. `convotrail produce` reads the JSON shape shown in the examples: timestamps",
        "as ISO-8601 with an offset or epoch milliseconds, the payload as an object, optional",
        "fields may be left out.",
        "",
        "## Ids are unique per account",
        "",
        "Every id an event carries (`conversation_id`, `event_id`, `message_id`,",
        "`reminder_id`, note and staff ids...) needs to be unique only within its",
        "`account_id`: two accounts may use the same ids and never see or change each",
        "other's data. Deduplication is per account too: an `event_id` is dropped as a",
        "duplicate only when its conversation in the same account has seen it. Every",
        "record key, table row, store entry and lookup is the account plus the id. The one",
        "exception is a provider's message ref on delivery notifications (a platform",
        "message id, an RFC 5322 Message-ID, a provider id): a provider rarely says the",
        "account, so a notification whose ref two accounts use must name its account in",
        "the `convotrail_account_id` custom argument (or the `X-Convotrail-Account-Id`",
        "header), or it is dead-lettered as `ambiguous-route` (docs/delivery.md).",
        "",
        "## The envelope: ConversationEvent",
        "",
        envelope["doc"],
        "",
        *_fields_table(envelope),
        "## Actor",
        "",
        *_fields_table(types[f"{contract.EVENTS_NS}.Actor"]),
        "Actor kinds: "
        + ", ".join(f"`{s}`" for s in types[f"{contract.EVENTS_NS}.ActorKind"]["symbols"])
        + ".",
        "",
        "## Event types",
        "",
        "| type | when it happens |",
        "|---|---|",
    ]
    for event_type in EventType:
        payload = types[PAYLOAD_BY_TYPE[event_type].AVRO_NAME]
        anchor = event_type.value.lower().replace("_", "-")
        out.append(f"| [`{event_type.value}`](#{anchor}) | {_escape(payload['doc'])} |")
    out.append("")
    for event_type in EventType:
        payload = types[PAYLOAD_BY_TYPE[event_type].AVRO_NAME]
        out += [
            f"### {event_type.value.lower().replace('_', '-')}",
            "",
            f"`{event_type.value}`: {payload['doc']} Payload record `{payload['name']}`.",
            "",
            *_fields_table(payload),
            "```json",
            json.dumps(EXAMPLES[event_type.value], indent=2),
            "```",
            "",
        ]
    out += ["## Shared types", ""]
    for fullname, schema in sorted(types.items()):
        if not fullname.startswith(contract.EVENTS_NS) or fullname == contract.CONVERSATION_EVENT:
            continue
        name = schema["name"]
        if schema["type"] == "enum":
            symbols = ", ".join(f"`{s}`" for s in schema["symbols"])
            if name != "EventType":
                out += [f"### {name}", "", f"{schema['doc']} Symbols: {symbols}.", ""]
        elif name in ("StaffRef", "InboxRef", "MovedReminder"):
            out += [f"### {name}", "", schema["doc"], "", *_fields_table(schema)]
    out += ["## Output records", ""]
    for fullname in contract.TOP_LEVEL[1:]:
        schema = types[fullname]
        out += [f"### {schema['name']}", "", schema["doc"], "", *_fields_table(schema)]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    CATALOGUE_PATH.write_text(generate())
    sys.stdout.write(f"wrote {CATALOGUE_PATH}\n")


if __name__ == "__main__":
    main()
