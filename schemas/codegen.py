"""Generate the typed Python model (schemas/model.py) from the .avsc files.

The Avro schemas are the source of the field names; the model is derived from
them, never written by hand, so the two cannot drift: a test regenerates the
module and compares it with the committed one. Run `python -m schemas.codegen`
(or `convotrail schemas codegen`) after changing a schema.

Records become frozen, slotted, keyword-only dataclasses with straight-line
`to_avro` / `from_avro` conversions (no reflection on the hot path); enums
become StrEnums; arrays become tuples; the payload union becomes `Payload`.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from schemas import contract

MODEL_PATH = Path(__file__).resolve().parent / "model.py"

_PY_PRIMITIVES = {
    "string": "str",
    "int": "int",
    "long": "int",
    "boolean": "bool",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
}


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def _snake_upper(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


class _Generator:
    def __init__(self) -> None:
        self.types = contract.named_types()
        self.order: list[str] = []  # full names, dependencies first
        self.payloads: list[str] = []

    # -- discovery ---------------------------------------------------------------

    def _full(self, name: str, namespace: str) -> str:
        return name if "." in name else f"{namespace}.{name}"

    def visit(self, schema: Any, namespace: str) -> None:
        if isinstance(schema, str):
            if schema in _PY_PRIMITIVES or schema == "null":
                return
            self.visit_named(self._full(schema, namespace))
        elif isinstance(schema, list):
            for branch in schema:
                self.visit(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema["type"]
            if kind in ("record", "enum"):
                self.visit_named(contract._fullname(schema, namespace))
            elif kind == "array":
                self.visit(schema["items"], namespace)
            elif not isinstance(kind, str) or kind not in _PY_PRIMITIVES:
                self.visit(kind, namespace)

    def visit_named(self, full: str) -> None:
        if full in self.order:
            return
        schema = self.types[full]
        space = full.rsplit(".", 1)[0]
        if schema["type"] == "record":
            self.order.append(full)  # placeholder to stop cycles; moved after deps below
            for field in schema["fields"]:
                self.visit(field["type"], space)
            self.order.remove(full)
        self.order.append(full)

    # -- types and expressions ----------------------------------------------------

    def py_type(self, schema: Any, namespace: str) -> str:
        if isinstance(schema, str):
            if schema in _PY_PRIMITIVES:
                return _PY_PRIMITIVES[schema]
            return _short(self._full(schema, namespace))
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) > 1:
                return "Payload"
            inner = self.py_type(branches[0], namespace)
            return f"{inner} | None" if "null" in schema else inner
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-millis":
            return "datetime"
        if kind in ("record", "enum"):
            return _short(contract._fullname(schema, namespace))
        if kind == "array":
            return f"tuple[{self.py_type(schema['items'], namespace)}, ...]"
        return self.py_type(kind, namespace)

    def _kind_of(self, schema: Any, namespace: str) -> tuple[str, Any]:
        """('primitive'|'enum'|'record'|'array'|'optional'|'payload', detail)."""
        if isinstance(schema, str):
            if schema in _PY_PRIMITIVES:
                return "primitive", None
            full = self._full(schema, namespace)
            return self.types[full]["type"], _short(full)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) > 1:
                return "payload", None
            return "optional", branches[0]
        kind = schema["type"]
        if schema.get("logicalType"):
            return "primitive", None
        if kind in ("record", "enum"):
            return kind, _short(contract._fullname(schema, namespace))
        if kind == "array":
            return "array", schema["items"]
        return self._kind_of(kind, namespace)

    def to_expr(self, value: str, schema: Any, namespace: str) -> str:
        kind, detail = self._kind_of(schema, namespace)
        if kind in ("primitive", "enum"):
            return value
        if kind == "record":
            return f"{value}.to_avro()"
        if kind == "payload":
            return f"({value}.AVRO_NAME, {value}.to_avro())"
        if kind == "optional":
            inner = self.to_expr(value, detail, namespace)
            return value if inner == value else f"None if {value} is None else {inner}"
        inner = self.to_expr("item", detail, namespace)
        return f"list({value})" if inner == "item" else f"[{inner} for item in {value}]"

    def from_expr(self, value: str, schema: Any, namespace: str) -> str:
        kind, detail = self._kind_of(schema, namespace)
        if kind == "primitive":
            return value
        if kind == "enum":
            return f"{detail}({value})"
        if kind == "record":
            return f"{detail}.from_avro({value})"
        if kind == "payload":
            return f"_payload_from_avro({value})"
        if kind == "optional":
            inner = self.from_expr("inner", detail, namespace)
            if inner == "inner":
                return value
            return f"None if (inner := {value}) is None else {inner}"
        inner = self.from_expr("item", detail, namespace)
        return f"tuple({value})" if inner == "item" else f"tuple({inner} for item in {value})"

    def default_expr(self, field: dict[str, Any], namespace: str) -> str | None:
        if "default" not in field:
            return None
        default = field["default"]
        kind, detail = self._kind_of(field["type"], namespace)
        if default is None:
            return "None"
        if kind == "array":
            return "()"
        if kind == "enum":
            return f"{detail}.{default}"
        return repr(default)

    # -- rendering ----------------------------------------------------------------

    def render_enum(self, full: str) -> list[str]:
        schema = self.types[full]
        lines = [f"class {_short(full)}(StrEnum):", f'    """{schema.get("doc", "")}"""', ""]
        for symbol in schema["symbols"]:
            name = f"{symbol}_" if keyword.iskeyword(symbol) else symbol
            lines.append(f'    {name} = "{symbol}"')
        return lines

    def render_record(self, full: str) -> list[str]:
        schema = self.types[full]
        name, space = _short(full), full.rsplit(".", 1)[0]
        lines = [
            "@dataclass(frozen=True, slots=True, kw_only=True)",
            f"class {name}:",
            f'    """{schema.get("doc", "")}"""',
            "",
            f'    AVRO_NAME: ClassVar[str] = "{full}"',
        ]
        for field in schema["fields"]:
            annotation = self.py_type(field["type"], space)
            default = self.default_expr(field, space)
            suffix = f" = {default}" if default is not None else ""
            lines.append(f"    {field['name']}: {annotation}{suffix}")
        lines += ["", "    def to_avro(self) -> dict[str, Any]:", "        return {"]
        for field in schema["fields"]:
            expr = self.to_expr(f"self.{field['name']}", field["type"], space)
            lines.append(f'            "{field["name"]}": {expr},')
        lines += [
            "        }",
            "",
            "    @classmethod",
            f"    def from_avro(cls, d: dict[str, Any]) -> {name}:",
        ]
        if not schema["fields"]:
            lines.append("        return cls()")
            return lines
        lines.append("        return cls(")
        for field in schema["fields"]:
            expr = self.from_expr(f'd["{field["name"]}"]', field["type"], space)
            lines.append(f"            {field['name']}={expr},")
        lines.append("        )")
        return lines

    def generate(self) -> str:
        for top in contract.TOP_LEVEL:
            self.visit_named(top)
        envelope = self.types[contract.CONVERSATION_EVENT]
        payload_field = next(f for f in envelope["fields"] if f["name"] == "payload")
        self.payloads = [self._full(b, contract.EVENTS_NS) for b in payload_field["type"]]
        symbols = self.types[f"{contract.EVENTS_NS}.EventType"]["symbols"]
        by_symbol = {_snake_upper(_short(p)): _short(p) for p in self.payloads}
        if sorted(by_symbol) != sorted(symbols):
            raise ValueError(
                "EventType symbols and payload records must match one to one: "
                f"{sorted(set(symbols) ^ set(by_symbol))}"
            )
        out = [
            '"""Typed model of the event contract. GENERATED from schemas/avro by',
            "`python -m schemas.codegen`: do not edit; change the .avsc files instead.",
            '"""',
            "",
            "# ruff: noqa: E501",
            "from __future__ import annotations",
            "",
            "from dataclasses import dataclass",
            "from datetime import datetime",
            "from enum import StrEnum",
            "from typing import Any, ClassVar, TypeAlias",
            "",
        ]
        for full in self.order:
            kind = self.types[full]["type"]
            out += ["", ""]
            out += self.render_enum(full) if kind == "enum" else self.render_record(full)
        payload_names = [_short(p) for p in self.payloads]
        out += ["", "", "Payload: TypeAlias = " + " | ".join(payload_names), ""]
        out += ["PAYLOAD_BY_TYPE: dict[EventType, type[Payload]] = {"]
        out += [f"    EventType.{symbol}: {by_symbol[symbol]}," for symbol in symbols]
        out += ["}", "TYPE_BY_PAYLOAD: dict[type[Payload], EventType] = {"]
        out += ["    payload: event_type for event_type, payload in PAYLOAD_BY_TYPE.items()", "}"]
        out += ["_PAYLOAD_BY_AVRO_NAME: dict[str, type[Payload]] = {"]
        out += ["    payload.AVRO_NAME: payload for payload in PAYLOAD_BY_TYPE.values()", "}", ""]
        out += [
            "",
            "def _payload_from_avro(value: tuple[str, dict[str, Any]]) -> Payload:",
            "    # fastavro returns (record name, fields) for the payload union",
            "    # (decode with return_record_name=True, return_record_name_override=True).",
            "    name, fields = value",
            "    return _PAYLOAD_BY_AVRO_NAME[name].from_avro(fields)",
            "",
        ]
        return "\n".join(out)


def generate() -> str:
    """The model module's text, formatted by ruff exactly as the committed file is."""
    source = _Generator().generate()
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(MODEL_PATH), "-"],
        input=source, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return formatted.stdout


def main() -> None:
    MODEL_PATH.write_text(generate())
    sys.stdout.write(f"wrote {MODEL_PATH}\n")


if __name__ == "__main__":
    main()
