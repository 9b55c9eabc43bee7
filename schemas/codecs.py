"""Typed codecs: model objects <-> Confluent-framed Avro on a topic.

`ModelCodec(serde, topic, ConversationEvent)` registers the expanded schema of
the model's record under the topic's value subject and encodes/decodes model
objects. Records written with the current schema (the common case) go through
the compiled codec (schemas/compiled.py: bytes to dataclasses in one pass);
records of any other registered writer version are read into the current
schema by fastavro's schema resolution, so consumers keep working across
BACKWARD changes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from schemas import compiled, contract
from schemas.errors import SerdeError
from schemas.registry import value_subject
from schemas.serde import AvroSerde, decode_body, parse
from schemas.wire import frame, unframe


class AvroModel(Protocol):
    """What every generated record class offers (see schemas/codegen.py)."""

    AVRO_NAME: ClassVar[str]

    def to_avro(self) -> dict[str, Any]: ...

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> Self: ...


M = TypeVar("M", bound=AvroModel)


class ModelCodec(Generic[M]):
    def __init__(self, serde: AvroSerde, topic: str, model: type[M]) -> None:
        self.topic = topic
        self.model = model
        self.schema = contract.expand(model.AVRO_NAME)
        self._serde = serde
        self._encode_record = serde.encoder(topic, self.schema)
        self.schema_id = serde.registry.register(value_subject(topic), self.schema)
        self.header = frame(self.schema_id, b"")
        self.compiled = compiled.codec_for(contract.expanded_json(model.AVRO_NAME))
        self._reader = parse(self.schema)
        self._current: dict[int, bool] = {self.schema_id: True}

    def encode(self, value: M) -> bytes:
        return bytes(self.compiled.encode(value, bytearray(self.header)))

    def encode_record(self, record: dict[str, Any]) -> bytes:
        """Encode an Avro-ready record (e.g. from `schemas.validation`)."""
        return self._encode_record(record)

    def _written_with_current(self, schema_id: int) -> bool:
        current = self._current.get(schema_id)
        if current is None:
            current = self._current[schema_id] = self._serde.writer_matches(schema_id, self.schema)
        return current

    def decode(self, data: bytes | None) -> M:
        schema_id, body = unframe(data)
        if self._written_with_current(schema_id):
            value: M = self.compiled.decode_all(body)
            return value
        record = decode_body(self._serde.writer_schema(schema_id), body, self._reader)
        try:
            return self.model.from_avro(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise SerdeError(f"record does not fit {self.model.__name__}: {exc}") from exc
