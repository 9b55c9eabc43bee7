"""Avro bodies <-> model objects through straight-line Python compiled from the schema.

fastavro reads a body into dicts and the model converts those dicts (`from_avro`,
`to_avro`): two walks of every value, with logical-type and union bookkeeping in
between. Measured on the demo traffic (docs/benchmarks.md) that was 41 µs to read a
ConversationEvent and 58 µs to write a ConversationState, more than the state
machine itself. Here each top-level schema is compiled once, at first use, into a
pair of Python functions that go from bytes to the model's dataclasses and back in
one pass: enums by index, `[null, X]` unions by a branch test, records by keyword
construction, timestamp-millis as fastavro converts them.

Scope: the schema as the contract expands it (records, enums, arrays, maps,
unions, the primitive types and timestamp-millis). The compiled reader only reads
bodies written with the *same* schema; ModelCodec sends other writer versions
through fastavro's schema resolution. Never accept what the Avro specification
refuses: every malformed body raises UndecodableBody (tests compare bytes and
objects with fastavro under hypothesis).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from types import ModuleType
from typing import Any

from schemas.errors import SerdeError, UndecodableBody

Json = Any
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


# -- helpers the generated code calls --------------------------------------------------


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    pos += 1
    value = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    return (value >> 1) ^ -(value & 1), pos


def _write_long(out: bytearray, value: int) -> None:
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{value} does not fit in an Avro long")
    zigzag = (value << 1) ^ (value >> 63)
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _long_bytes(value: int) -> bytes:
    out = bytearray()
    _write_long(out, value)
    return bytes(out)


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    size, pos = _read_long(buf, pos)
    end = pos + size
    if size < 0 or end > len(buf):
        raise ValueError(f"string of {size} bytes at {pos} runs past the body")
    return buf[pos:end].decode(), end


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _read_long(buf, pos)
    end = pos + size
    if size < 0 or end > len(buf):
        raise ValueError(f"bytes of {size} at {pos} run past the body")
    return buf[pos:end], end


def _block_count(buf: bytes, pos: int) -> tuple[int, int]:
    """An array or map block's item count; a negative count is followed by a byte size."""
    count, pos = _read_long(buf, pos)
    if count < 0:
        _, pos = _read_long(buf, pos)
        count = -count
    return count, pos


def _millis_to_datetime(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _datetime_to_millis(moment: datetime) -> int:
    # As fastavro computes it: whole seconds, then microseconds truncated to ms.
    delta = moment - (_EPOCH if moment.tzinfo is not None else _EPOCH_NAIVE)
    return (delta.days * 86400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)


_HELPERS: dict[str, object] = {
    "_rl": _read_long,
    "_wl": _write_long,
    "_rs": _read_string,
    "_rb": _read_bytes,
    "_bc": _block_count,
    "_m2d": _millis_to_datetime,
    "_d2m": _datetime_to_millis,
    "_D": _DOUBLE,
    "_F": _FLOAT,
    "_new": object.__new__,
}


# -- the compiler -----------------------------------------------------------------------


class _Compiler:
    """Emits one decoder and one encoder function per named record of a schema."""

    def __init__(self, model: ModuleType) -> None:
        self.model = model
        self.records = {
            obj.AVRO_NAME: obj
            for obj in vars(model).values()
            if isinstance(obj, type) and hasattr(obj, "AVRO_NAME")
        }
        self.enums = {
            name: obj
            for name, obj in vars(model).items()
            if isinstance(obj, type) and issubclass(obj, Enum)
        }
        self.named: dict[str, Json] = {}  # full name -> its schema
        self.names: dict[str, str] = {}  # full name -> generated suffix
        self.lines: list[str] = []
        self.env: dict[str, object] = dict(_HELPERS)
        self.counter = 0

    def _fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # Names: record and enum definitions are collected first, in schema order.
    def collect(self, schema: Json, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self.collect(branch, namespace)
            return
        if not isinstance(schema, dict):
            return
        kind = schema["type"]
        if kind in ("record", "enum", "fixed"):
            name = schema["name"]
            space = schema.get("namespace", namespace)
            full = name if "." in name else f"{space}.{name}" if space else name
            if full in self.named:
                return
            if kind == "fixed":
                raise NotImplementedError("fixed is not used by the contract")
            self.named[full] = schema
            self.names[full] = self._fresh("R" if kind == "record" else "E")
            if kind == "record":
                inner = full.rsplit(".", 1)[0]
                for field in schema["fields"]:
                    self.collect(field["type"], inner)
        elif kind == "array":
            self.collect(schema["items"], namespace)
        elif kind == "map":
            self.collect(schema["values"], namespace)
        elif isinstance(kind, (dict, list)):
            self.collect(kind, namespace)

    def full_name(self, schema: Json, namespace: str | None) -> str | None:
        """The full name a schema refers to or defines, None for anonymous types."""
        if isinstance(schema, str):
            if schema in _PRIMITIVE_NAMES:
                return None
            return schema if "." in schema else f"{namespace}.{schema}"
        if isinstance(schema, dict) and schema["type"] in ("record", "enum"):
            name = schema["name"]
            space = schema.get("namespace", namespace)
            return name if "." in name else f"{space}.{name}" if space else name
        if isinstance(schema, dict) and isinstance(schema["type"], (str, dict, list)):
            inner = schema["type"]
            if isinstance(inner, str) and inner not in _PRIMITIVE_NAMES and inner not in (
                "array", "map", "record", "enum", "fixed",
            ):  # fmt: skip
                return inner if "." in inner else f"{namespace}.{inner}"
            if isinstance(inner, (dict, list)):
                return self.full_name(inner, namespace)
        return None

    def model_class(self, full: str) -> type:
        if full in self.records:
            return self.records[full]
        short = full.rsplit(".", 1)[-1]
        if short in self.enums:
            return self.enums[short]
        raise NotImplementedError(f"no model class for {full}")

    # -- decoding ------------------------------------------------------------------

    def read(self, schema: Json, namespace: str | None, target: str, indent: str) -> list[str]:
        """Lines that read one value of `schema` from buf at p into `target`."""
        full = self.full_name(schema, namespace)
        if full is not None and full in self.named:
            named = self.named[full]
            if named["type"] == "record":
                return [f"{indent}{target}, p = _dec_{self.names[full]}(b, p)"]
            members = f"_EM_{self.names[full]}"
            return [
                f"{indent}_i, p = _rl(b, p)",
                f"{indent}if _i < 0: raise IndexError('negative enum index')",
                f"{indent}{target} = {members}[_i]",
            ]
        if isinstance(schema, list):
            return self.read_union(schema, namespace, target, indent)
        if isinstance(schema, dict):
            kind = schema["type"]
            logical = schema.get("logicalType")
            if kind == "long" and logical == "timestamp-millis":
                return [f"{indent}_v, p = _rl(b, p)", f"{indent}{target} = _m2d(_v)"]
            if kind == "array":
                item = self._fresh("_x")
                counter = self._fresh("_n")
                acc = self._fresh("_a")
                lines = [f"{indent}{acc} = []", f"{indent}{counter}, p = _bc(b, p)",
                         f"{indent}while {counter}:",
                         f"{indent}    for _ in range({counter}):"]  # fmt: skip
                lines += self.read(schema["items"], namespace, item, indent + "        ")
                lines += [f"{indent}        {acc}.append({item})",
                          f"{indent}    {counter}, p = _bc(b, p)",
                          f"{indent}{target} = tuple({acc})"]  # fmt: skip
                return lines
            if kind == "map":
                value = self._fresh("_x")
                counter = self._fresh("_n")
                acc = self._fresh("_a")
                lines = [f"{indent}{acc} = {{}}", f"{indent}{counter}, p = _bc(b, p)",
                         f"{indent}while {counter}:",
                         f"{indent}    for _ in range({counter}):",
                         f"{indent}        _k, p = _rs(b, p)"]  # fmt: skip
                lines += self.read(schema["values"], namespace, value, indent + "        ")
                lines += [f"{indent}        {acc}[_k] = {value}",
                          f"{indent}    {counter}, p = _bc(b, p)",
                          f"{indent}{target} = {acc}"]  # fmt: skip
                return lines
            return self.read(kind, namespace, target, indent)
        return self.read_primitive(schema, target, indent)

    def read_primitive(self, kind: str, target: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind in ("int", "long"):
            # One-byte values (most lengths, counts, small numbers) without a call.
            return [
                f"{indent}_c = b[p]",
                f"{indent}if _c < 128:",
                f"{indent}    p += 1",
                f"{indent}    {target} = (_c >> 1) ^ -(_c & 1)",
                f"{indent}else:",
                f"{indent}    {target}, p = _rl(b, p)",
            ]
        if kind == "string":
            # Strings under 64 bytes (nearly all ids and names) without a call.
            return [
                f"{indent}_c = b[p]",
                f"{indent}if _c < 128 and not _c & 1:",
                f"{indent}    _e = p + 1 + (_c >> 1)",
                f"{indent}    if _e > len(b): raise IndexError('string runs past the body')",
                f"{indent}    {target} = b[p + 1:_e].decode()",
                f"{indent}    p = _e",
                f"{indent}else:",
                f"{indent}    {target}, p = _rs(b, p)",
            ]
        if kind == "bytes":
            return [f"{indent}{target}, p = _rb(b, p)"]
        if kind == "boolean":
            return [
                f"{indent}_c = b[p]",
                f"{indent}if _c > 1: raise ValueError('boolean byte is not 0 or 1')",
                f"{indent}p += 1",
                f"{indent}{target} = _c == 1",
            ]
        if kind == "double":
            return [f"{indent}{target}, = _D.unpack_from(b, p)", f"{indent}p += 8"]
        if kind == "float":
            return [f"{indent}{target}, = _F.unpack_from(b, p)", f"{indent}p += 4"]
        raise NotImplementedError(f"Avro type {kind!r}")

    def read_union(self, branches: list[Json], namespace: str | None, target: str,
                   indent: str) -> list[str]:  # fmt: skip
        lines = [f"{indent}_u = b[p]", f"{indent}p += 1",
                 f"{indent}if _u > 127: raise IndexError('union index out of range')",
                 f"{indent}_u = (_u >> 1) ^ -(_u & 1)"]  # fmt: skip
        for index, branch in enumerate(branches):
            keyword = "if" if index == 0 else "elif"
            lines.append(f"{indent}{keyword} _u == {index}:")
            lines += self.read(branch, namespace, target, indent + "    ")
        lines.append(f"{indent}else: raise IndexError(f'union index {{_u}} out of range')")
        return lines

    def emit_decoder(self, full: str) -> None:
        schema = self.named[full]
        space = full.rsplit(".", 1)[0]
        suffix = self.names[full]
        cls_name = f"_C_{suffix}"
        cls = self.model_class(full)
        self.env[cls_name] = cls
        lines = [f"def _dec_{suffix}(b, p):"]
        names = [field["name"] for field in schema["fields"]]
        for number, field in enumerate(schema["fields"]):
            lines += self.read(field["type"], space, f"f{number}", "    ")
        slots = getattr(cls, "__slots__", ())
        if set(slots) == set(names) and not hasattr(cls, "__post_init__"):
            # The slot descriptors directly: a frozen dataclass's __init__ goes
            # through object.__setattr__ per field, three times slower.
            lines.append(f"    o = _new({cls_name})")
            for number, name in enumerate(names):
                setter = f"_S_{suffix}_{number}"
                self.env[setter] = cls.__dict__[name].__set__
                lines.append(f"    {setter}(o, f{number})")
            lines.append("    return o, p")
        else:
            args = ", ".join(f"{name}=f{number}" for number, name in enumerate(names))
            lines.append(f"    return {cls_name}({args}), p")
        self.lines += lines

    # -- encoding --------------------------------------------------------------------

    def write(self, schema: Json, namespace: str | None, source: str, indent: str) -> list[str]:
        """Lines that append `source`, a value of `schema`, to the bytearray `out`."""
        full = self.full_name(schema, namespace)
        if full is not None and full in self.named:
            named = self.named[full]
            if named["type"] == "record":
                return [f"{indent}_enc_{self.names[full]}({source}, out)"]
            return [f"{indent}out += _EI_{self.names[full]}[{source}]"]
        if isinstance(schema, list):
            return self.write_union(schema, namespace, source, indent)
        if isinstance(schema, dict):
            kind = schema["type"]
            if kind == "long" and schema.get("logicalType") == "timestamp-millis":
                return [f"{indent}_wl(out, _d2m({source}) if {source}.__class__ is not int "
                        f"else {source})"]  # fmt: skip
            if kind == "array":
                item = self._fresh("_x")
                lines = [f"{indent}if {source}:",
                         f"{indent}    _wl(out, len({source}))",
                         f"{indent}    for {item} in {source}:"]  # fmt: skip
                lines += self.write(schema["items"], namespace, item, indent + "        ")
                lines.append(f"{indent}out.append(0)")
                return lines
            if kind == "map":
                key, value = self._fresh("_k"), self._fresh("_x")
                lines = [f"{indent}if {source}:",
                         f"{indent}    _wl(out, len({source}))",
                         f"{indent}    for {key}, {value} in {source}.items():",
                         f"{indent}        _s = {key}.encode()",
                         f"{indent}        _wl(out, len(_s))",
                         f"{indent}        out += _s"]  # fmt: skip
                lines += self.write(schema["values"], namespace, value, indent + "        ")
                lines.append(f"{indent}out.append(0)")
                return lines
            return self.write(kind, namespace, source, indent)
        return self.write_primitive(schema, source, indent)

    def write_primitive(self, kind: str, source: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}if {source} is not None: raise TypeError('null expected')"]
        if kind in ("int", "long"):
            # Small non-negative values (counts, versions) in one byte, without a call.
            return [f"{indent}_v = {source}",
                    f"{indent}if _v.__class__ is int and 0 <= _v < 64: out.append(_v << 1)",
                    f"{indent}else: _wl(out, _v)"]  # fmt: skip
        if kind == "string":
            return [f"{indent}_s = {source}.encode()", f"{indent}_n = len(_s)",
                    f"{indent}if _n < 64: out.append(_n << 1)",
                    f"{indent}else: _wl(out, _n)",
                    f"{indent}out += _s"]  # fmt: skip
        if kind == "bytes":
            return [f"{indent}_wl(out, len({source}))", f"{indent}out += {source}"]
        if kind == "boolean":
            return [f"{indent}out.append(1 if {source} else 0)"]
        if kind == "double":
            return [f"{indent}out += _D.pack({source})"]
        if kind == "float":
            return [f"{indent}out += _F.pack({source})"]
        raise NotImplementedError(f"Avro type {kind!r}")

    def write_union(self, branches: list[Json], namespace: str | None, source: str,
                    indent: str) -> list[str]:  # fmt: skip
        non_null = [b for b in branches if b != "null"]
        if "null" in branches and len(non_null) == 1:
            null_index, other_index = branches.index("null"), branches.index(non_null[0])
            lines = [f"{indent}if {source} is None:",
                     f"{indent}    out.append({null_index * 2})",
                     f"{indent}else:",
                     f"{indent}    out.append({other_index * 2})"]  # fmt: skip
            return lines + self.write(non_null[0], namespace, source, indent + "    ")
        # A union of records: the branch is the value's class.
        lines = [f"{indent}_t = {source}.__class__"]
        first = True
        for index, branch in enumerate(branches):
            full = self.full_name(branch, namespace)
            if branch == "null":
                test = f"{source} is None"
            elif full is not None and self.named.get(full, {}).get("type") == "record":
                alias = f"_C_{self.names[full]}"
                self.env[alias] = self.model_class(full)
                test = f"_t is {alias}"
            else:
                raise NotImplementedError(f"union branch {branch!r}")
            lines.append(f"{indent}{'if' if first else 'elif'} {test}:")
            lines.append(f"{indent}    out += {_long_bytes(index)!r}")
            lines += self.write(branch, namespace, source, indent + "    ")
            first = False
        lines.append(f"{indent}else: raise TypeError(f'{{_t.__name__}} is not a union branch')")
        return lines

    def emit_encoder(self, full: str) -> None:
        schema = self.named[full]
        space = full.rsplit(".", 1)[0]
        lines = [f"def _enc_{self.names[full]}(o, out):"]
        for field in schema["fields"]:
            local = f"o.{field['name']}"
            lines += self.write(field["type"], space, local, "    ")
        if len(lines) == 1:
            lines.append("    pass")
        self.lines += lines

    def emit_enum(self, full: str) -> None:
        schema = self.named[full]
        suffix = self.names[full]
        cls = self.model_class(full)
        members = tuple(cls(symbol) for symbol in schema["symbols"])
        self.env[f"_EM_{suffix}"] = members
        self.env[f"_EI_{suffix}"] = {
            member: _long_bytes(index) for index, member in enumerate(members)
        }

    def compile(self, schema: Json) -> tuple[Callable[..., Any], Callable[..., Any]]:
        self.collect(schema, None)
        for full, named in self.named.items():
            if named["type"] == "enum":
                self.emit_enum(full)
            else:
                self.emit_decoder(full)
                self.emit_encoder(full)
        top = self.full_name(schema, None)
        assert top is not None and self.named[top]["type"] == "record"
        source = "\n".join(self.lines)
        exec(compile(source, f"<compiled avro {top}>", "exec"), self.env)
        decoder = self.env[f"_dec_{self.names[top]}"]
        encoder = self.env[f"_enc_{self.names[top]}"]
        assert callable(decoder) and callable(encoder)
        return decoder, encoder


_PRIMITIVE_NAMES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


@dataclass(frozen=True)
class CompiledCodec:
    """Model object <-> schemaless Avro body for one schema."""

    name: str
    _decode: Callable[[bytes, int], tuple[Any, int]]
    _encode: Callable[[Any, bytearray], None]

    def encode(self, value: Any, out: bytearray | None = None) -> bytearray:
        """Append `value`'s body to `out` (a new bytearray when None) and return it."""
        out = bytearray() if out is None else out
        try:
            self._encode(value, out)
        except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
            raise SerdeError(f"{self.name}: value does not fit the schema: {exc!r}") from exc
        return out

    def decode(self, body: bytes | bytearray | memoryview, pos: int = 0) -> tuple[Any, int]:
        """The value at `pos` and the position after it."""
        data = body if isinstance(body, bytes) else bytes(body)
        try:
            return self._decode(data, pos)
        except (IndexError, ValueError, UnicodeDecodeError, OverflowError, KeyError,
                TypeError, struct.error) as exc:  # fmt: skip
            raise UndecodableBody(f"Avro body does not match {self.name}: {exc!r}") from exc

    def decode_all(self, body: bytes | bytearray | memoryview) -> Any:
        """The value that is the whole body; trailing bytes are an error."""
        value, end = self.decode(body)
        if end != len(body):
            raise UndecodableBody(
                f"Avro body has {len(body) - end} trailing bytes after the {self.name} record"
            )
        return value


@cache
def _compile(schema_text: str) -> CompiledCodec:
    import json

    from schemas import model

    schema = json.loads(schema_text)
    decoder, encoder = _Compiler(model).compile(schema)
    return CompiledCodec(schema.get("name", "record"), decoder, encoder)


def codec_for(schema_text: str) -> CompiledCodec:
    """The compiled codec of an expanded top-level record schema (JSON text), cached."""
    return _compile(schema_text)
