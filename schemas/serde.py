"""Avro serde with Confluent framing; fastavro on the hot path.

`AvroSerde.encoder(topic, schema)` registers the writer schema once and returns
a callable that frames each record; `decode` looks the writer schema up by id
(once, then cached) and reads the body, optionally into a reader schema.
Every failure is a `SerdeError` subclass so a processor can dead-letter it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.types import Schema as ParsedSchema

from schemas.errors import SerdeError, UndecodableBody
from schemas.registry import Registry, value_subject
from schemas.wire import frame, unframe

Record = dict[str, Any]


def parse(schema: dict[str, Any] | str) -> ParsedSchema:
    raw = json.loads(schema) if isinstance(schema, str) else schema
    return fastavro.parse_schema(raw)


def encode_body(parsed: ParsedSchema, record: Record) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


def decode_body(
    writer: ParsedSchema, body: bytes | memoryview, reader: ParsedSchema | None = None
) -> Record:
    buffer = io.BytesIO(body)
    try:
        # Record names come back only for unions of several records (the event
        # payload), as (name, fields); optional records stay plain dicts.
        record = fastavro.schemaless_reader(
            buffer, writer, reader, return_record_name=True, return_record_name_override=True
        )
    except (
        EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError, SchemaResolutionError
    ) as exc:  # fmt: skip
        # Bounded: a schema resolution error quotes both schemas whole (72 KB).
        raise UndecodableBody(
            f"Avro body does not match writer schema: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    if buffer.tell() != len(body):
        raise UndecodableBody(
            f"Avro body has {len(body) - buffer.tell()} trailing bytes after the record"
        )
    if not isinstance(record, dict):
        raise UndecodableBody("Avro body is not a record")
    return record


class AvroSerde:
    """Encode and decode framed Avro records against one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._writers: dict[int, ParsedSchema] = {}
        self._writer_json: dict[int, Any] = {}

    def encoder(self, topic: str, schema: dict[str, Any] | str) -> Callable[[Record], bytes]:
        """Register `schema` for the topic's values and return a fast framing encoder."""
        schema_id = self.registry.register(value_subject(topic), schema)
        parsed = parse(schema)
        header = frame(schema_id, b"")

        def encode(record: Record) -> bytes:
            out = io.BytesIO()
            out.write(header)
            try:
                fastavro.schemaless_writer(out, parsed, record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise SerdeError(f"record does not fit the schema for {topic}: {exc}") from exc
            return out.getvalue()

        return encode

    def writer_schema(self, schema_id: int) -> ParsedSchema:
        parsed = self._writers.get(schema_id)
        if parsed is None:
            raw = json.loads(self.registry.schema_text(schema_id))
            parsed = parse(raw)
            self._writers[schema_id] = parsed
            self._writer_json[schema_id] = raw
        return parsed

    def writer_matches(self, schema_id: int, schema: dict[str, Any]) -> bool:
        """Whether records with this schema id were written with exactly `schema`."""
        self.writer_schema(schema_id)
        return bool(self._writer_json[schema_id] == schema)

    def decode(self, data: bytes | None, reader: ParsedSchema | None = None) -> Record:
        schema_id, body = unframe(data)
        return decode_body(self.writer_schema(schema_id), body, reader)

    def decoder(self, reader_schema: dict[str, Any]) -> Callable[[bytes | None], Record]:
        """A decoder into `reader_schema` that skips schema resolution when writer == reader."""
        reader = parse(reader_schema)
        same_as_reader: dict[int, bool] = {}

        def decode(data: bytes | None) -> Record:
            schema_id, body = unframe(data)
            writer = self.writer_schema(schema_id)
            same = same_as_reader.get(schema_id)
            if same is None:
                same = same_as_reader[schema_id] = self._writer_json[schema_id] == reader_schema
            return decode_body(writer, body, None if same else reader)

        return decode
