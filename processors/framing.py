"""Binary building blocks of the processors' store formats (their changelog values).

Internal formats, read only by the processors: a version byte first, then fields in
a fixed order, each a varint, a length-prefixed string or bytes, an optional epoch
millisecond, a NUL-joined list of ids, or a model record as the compiled Avro codec
writes it (schemas/compiled.py). Several times cheaper than the JSON the first
versions stored (docs/benchmarks.md), which the decoders still read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.compiled import CompiledCodec

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)


class Writer:
    def __init__(self, version: int) -> None:
        self.out = bytearray((version,))

    def varint(self, value: int) -> None:
        out = self.out
        while value > 0x7F:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)

    def raw(self, data: bytes | bytearray) -> None:
        self.varint(len(data))
        self.out += data

    def string(self, value: str) -> None:
        self.raw(value.encode())

    def optional_ms(self, moment: datetime | None) -> None:
        # 0: none; else the zigzagged epoch ms + 1 (dates before 1970 too).
        if moment is None:
            self.out.append(0)
            return
        value = ms(moment)
        self.varint(((value << 1) ^ (value >> 63)) + 1)

    def strings(self, items: tuple[str, ...]) -> None:
        """One NUL-joined string (one encode, one split); item by item if an id holds NUL."""
        if not items:
            self.out.append(0)
            return
        joined = "\x00".join(items)
        if joined.count("\x00") == len(items) - 1:
            self.out.append(1)
            self.string(joined)
            return
        self.out.append(2)
        self.varint(len(items))
        for item in items:
            self.string(item)

    def record(self, codec: CompiledCodec, value: Any) -> None:
        self.raw(codec.encode(value))

    def bytes(self) -> bytes:
        return bytes(self.out)


class Reader:
    def __init__(self, data: bytes, pos: int = 1) -> None:
        self.data = data
        self.pos = pos

    def varint(self) -> int:
        data, pos = self.data, self.pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                return value
            shift += 7

    def raw(self) -> bytes:
        size = self.varint()
        start = self.pos
        self.pos = start + size
        if self.pos > len(self.data):
            raise ValueError("field runs past the value")
        return self.data[start : self.pos]

    def string(self) -> str:
        return self.raw().decode()

    def optional_ms(self) -> datetime | None:
        value = self.varint()
        if value == 0:
            return None
        value -= 1
        return from_ms((value >> 1) ^ -(value & 1))

    def strings(self) -> tuple[str, ...]:
        kind = self.data[self.pos]
        self.pos += 1
        if kind == 0:
            return ()
        if kind == 1:
            return tuple(self.string().split("\x00"))
        return tuple(self.string() for _ in range(self.varint()))

    def record(self, codec: CompiledCodec) -> Any:
        return codec.decode_all(self.raw())
