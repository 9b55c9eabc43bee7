"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro body.

Pure byte handling, no registry and no Avro: the registry-aware serde builds on it.
"""

from __future__ import annotations

import struct

from schemas.errors import BadMagicByte, TruncatedRecord

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
HEADER_SIZE = HEADER.size  # 5


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header for `schema_id`."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema id {schema_id} does not fit in 4 bytes")
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split a framed record into (schema id, body); raise a typed error when it is not one."""
    if data is None or len(data) < HEADER_SIZE:
        size = 0 if data is None else len(data)
        raise TruncatedRecord(f"record of {size} bytes is shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise BadMagicByte(f"magic byte is {magic}, expected {MAGIC_BYTE} (not Confluent-framed)")
    return schema_id, memoryview(data)[HEADER_SIZE:]
