"""The conversation memory's changelog format (internal: not registered, not a topic
anyone else reads). The first byte is the format version.

Format 2 (written): the state's Avro body as the compiled codec writes it for the
conversation-state topic, so the snapshot and the memory share one encoding per
commit, then the seen event_ids and the fired timers (each list one NUL-joined
string, or item by item when an id holds a NUL).
About 4x cheaper to write and 3x cheaper to read than format 1, which was the state
wrapped in a second Avro record by fastavro (docs/benchmarks.md).

Format 1 (read only): what the faust worker wrote, so its changelog restores as is.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import fastavro
from fastavro.types import Schema as ParsedSchema

from processors.conversation.core import Memory
from schemas import compiled, contract
from schemas.model import ConversationState

FORMAT_V1 = b"\x01"
FORMAT_V2 = 2


@cache
def _state_codec() -> compiled.CompiledCodec:
    return compiled.codec_for(contract.expanded_json(contract.CONVERSATION_STATE))


def state_body(state: ConversationState) -> bytes:
    """The state's Avro body (what conversation-state carries after the 5-byte header)."""
    return bytes(_state_codec().encode(state))


def _write_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _write_strings(out: bytearray, items: tuple[str, ...]) -> None:
    # Usually one string joined by NUL (one encode, one split: the per-item loop was a
    # third of a restore); a list whose ids hold a NUL is written item by item.
    if not items:
        out.append(0)
        return
    joined = "\x00".join(items)
    if joined.count("\x00") == len(items) - 1:
        raw = joined.encode()
        out.append(1)
        _write_varint(out, len(raw))
        out += raw
        return
    out.append(2)
    _write_varint(out, len(items))
    for item in items:
        raw = item.encode()
        _write_varint(out, len(raw))
        out += raw


def _read_strings(data: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    kind = data[pos]
    pos += 1
    if kind == 0:
        return (), pos
    if kind == 1:
        size, pos = _read_varint(data, pos)
        return tuple(data[pos : pos + size].decode().split("\x00")), pos + size
    count, pos = _read_varint(data, pos)
    items = []
    for _ in range(count):
        size, pos = _read_varint(data, pos)
        items.append(data[pos : pos + size].decode())
        pos += size
    return tuple(items), pos


def encode_memory(memory: Memory, body: bytes | None = None) -> bytes:
    """`body`: the state's Avro body when the caller has encoded it already."""
    out = bytearray((FORMAT_V2,))
    if memory.state is None:
        out.append(0)
    else:
        out.append(1)
        raw = body if body is not None else state_body(memory.state)
        _write_varint(out, len(raw))
        out += raw
    _write_strings(out, memory.seen)
    _write_strings(out, memory.fired)
    return bytes(out)


def decode_memory(data: bytes) -> Memory:
    if data[:1] == FORMAT_V1:
        return _decode_v1(data)
    if not data or data[0] != FORMAT_V2:
        raise ValueError(f"unknown memory format {data[:1]!r}")
    pos = 2
    state = None
    if data[1] == 1:
        size, pos = _read_varint(data, pos)
        state = _state_codec().decode_all(data[pos : pos + size])
        pos += size
    seen, pos = _read_strings(data, pos)
    fired, pos = _read_strings(data, pos)
    return Memory(state=state, seen=seen, fired=fired)


class MemoryCodec:
    """The store's codec (processors.runtime.store.ValueCodec)."""

    def encode(self, value: Memory) -> bytes:
        return encode_memory(value)

    def decode(self, data: bytes) -> Memory:
        return decode_memory(data)


@cache
def _v1_schema() -> ParsedSchema:
    state = contract.expand(contract.CONVERSATION_STATE)
    return fastavro.parse_schema(
        {
            "type": "record",
            "name": "ConversationMemory",
            "namespace": "dev.convotrail.processors",
            "fields": [
                {"name": "state", "type": ["null", state], "default": None},
                {"name": "seen", "type": {"type": "array", "items": "string"}, "default": []},
            ],
        }
    )


def _decode_v1(data: bytes) -> Memory:
    record: Any = fastavro.schemaless_reader(io.BytesIO(data[1:]), _v1_schema(), None)
    state = record["state"]
    return Memory(
        state=ConversationState.from_avro(state) if state is not None else None,
        seen=tuple(record["seen"]),
    )


def encode_memory_v1(memory: Memory) -> bytes:
    """Format 1, as the faust worker wrote it (tests of the upgrade path)."""
    out = io.BytesIO()
    out.write(FORMAT_V1)
    record = {
        "state": memory.state.to_avro() if memory.state is not None else None,
        "seen": list(memory.seen),
    }
    fastavro.schemaless_writer(out, _v1_schema(), record)
    return out.getvalue()
