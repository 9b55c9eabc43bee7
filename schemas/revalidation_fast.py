"""The worker's check compiled to straight-line code: the fast path of `check_decoded`.

`revalidation._Planner` walks a record through closures, one call and one
`getattr` per field and a try/except per level, which made the check a quarter of
the conversation worker's work. Here the same plan (the same field checks, with
their memo of valid ids) is generated as one Python function per record type, as
schemas/compiled.py does for the Avro codec. It only says *whether* an event
passes: on a refusal the caller runs the planned walk again, which names the field
path and rule, so refusals read exactly as before. Generated once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import contract
from schemas.field_rules import _string_check, _timestamp_check

Fast = Callable[[Any], None]
_SKIPPED = ("int", "long", "boolean", "double", "float", "bytes", "null")


class _Generator:
    def __init__(self) -> None:
        self.types = contract.named_types()
        self.names: dict[str, Any] = {"T": _timestamp_check}
        self.counter = 0

    def _check_name(self, field_name: str) -> str:
        self.counter += 1
        name = f"S{self.counter}"
        self.names[name] = _string_check(field_name)
        return name

    def _resolve(self, schema: Any, namespace: str) -> tuple[Any, str]:
        """(the schema without its optional union and named references, its namespace)"""
        while True:
            if isinstance(schema, list):
                branches = [branch for branch in schema if branch != "null"]
                if len(branches) != 1:
                    raise ValueError("only optional unions are compiled")
                schema = branches[0]
                continue
            if isinstance(schema, str) and schema != "string" and schema not in _SKIPPED:
                full = schema if "." in schema else f"{namespace}.{schema}"
                schema = self.types[full]
                namespace = full.rsplit(".", 1)[0]
                continue
            return schema, namespace

    def value(self, schema: Any, namespace: str, field_name: str, var: str, depth: int,
              indent: str) -> list[str]:  # fmt: skip
        """Lines checking `var` (not None) against `schema`."""
        if depth > 12:
            raise ValueError("recursive types are not compiled")
        schema, namespace = self._resolve(schema, namespace)
        if schema == "string":
            return [f"{indent}{self._check_name(field_name)}({var}, '')"]
        if isinstance(schema, str):
            return []  # guaranteed by the decoder
        if schema.get("logicalType") == "timestamp-millis":
            return [f"{indent}T({var}, '')"]
        kind = schema["type"]
        if kind == "enum" or kind in _SKIPPED:
            return []
        if kind == "array":
            item = f"i{depth}"
            body = self.value(schema["items"], namespace, field_name, item, depth + 1,
                              indent + "    ")  # fmt: skip
            return [f"{indent}for {item} in {var}:", *body] if body else []
        if kind == "record":
            return self.fields(schema, namespace, var, depth, indent)
        return self.value(kind, namespace, field_name, var, depth, indent)

    def fields(self, schema: dict[str, Any], namespace: str, var: str, depth: int,
               indent: str, skip: str = "") -> list[str]:  # fmt: skip
        space = contract._fullname(schema, namespace).rsplit(".", 1)[0]
        lines: list[str] = []
        for field in schema["fields"]:
            if field["name"] == skip:
                continue
            child = f"v{depth + 1}"
            body = self.value(field["type"], space, field["name"], child, depth + 1,
                              indent + "    ")  # fmt: skip
            if body:
                lines += [f"{indent}{child} = {var}.{field['name']}",
                          f"{indent}if {child} is not None:", *body]  # fmt: skip
        return lines

    def function(self, name: str, fullname: str, skip: str = "") -> Fast:
        schema = self.types[fullname]
        namespace = fullname.rsplit(".", 1)[0]
        body = self.fields(schema, namespace, "v0", 0, "    ", skip) or ["    pass"]
        source = "\n".join([f"def {name}(v0):", *body])
        scope: dict[str, Any] = dict(self.names)
        exec(compile(source, f"<fast check {fullname}>", "exec"), scope)
        self.names.update({k: v for k, v in scope.items() if k.startswith("S")})
        fast: Fast = scope[name]
        return fast


class FastChecks:
    """One generated function for the envelope and one per payload type."""

    def __init__(self) -> None:
        self._generator = _Generator()
        self.envelope = self._generator.function(
            "envelope", contract.CONVERSATION_EVENT, skip="payload"
        )
        self._payloads: dict[str, Fast] = {}

    def payload(self, avro_name: str) -> Fast:
        fast = self._payloads.get(avro_name)
        if fast is None:
            fast = self._payloads[avro_name] = self._generator.function("payload", avro_name)
        return fast
