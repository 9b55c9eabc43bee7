"""The table's value format: a conversation's Memory as Avro bytes (changelog format).

Internal to the processor (not registered, not a public topic): the first byte is
a format version so a later release can still read an older changelog.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import fastavro
from fastavro.types import Schema as ParsedSchema

from processors.conversation.core import Memory
from schemas import contract
from schemas.model import ConversationState

FORMAT_V1 = b"\x01"


@cache
def _schema() -> ParsedSchema:
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


def encode_memory(memory: Memory) -> bytes:
    out = io.BytesIO()
    out.write(FORMAT_V1)
    record: dict[str, Any] = {
        "state": memory.state.to_avro() if memory.state is not None else None,
        "seen": list(memory.seen),
    }
    fastavro.schemaless_writer(out, _schema(), record)
    return out.getvalue()


def decode_memory(data: bytes) -> Memory:
    if data[:1] != FORMAT_V1:
        raise ValueError(f"unknown memory format {data[:1]!r}")
    record = fastavro.schemaless_reader(io.BytesIO(data[1:]), _schema(), None)
    assert isinstance(record, dict)
    state = record["state"]
    return Memory(
        state=ConversationState.from_avro(state) if state is not None else None,
        seen=tuple(record["seen"]),
    )
