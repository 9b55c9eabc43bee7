"""Typed codecs: model objects <-> Confluent-framed Avro on a topic.

`ModelCodec(serde, topic, ConversationEvent)` registers the expanded schema of
the model's record under the topic's value subject and encodes/decodes model
objects. Decoding reads any registered writer version into the current schema
(Avro schema resolution), so consumers keep working across BACKWARD changes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from schemas import contract
from schemas.errors import SerdeError
from schemas.serde import AvroSerde


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
        self._encode_record = serde.encoder(topic, self.schema)
        self._decode_record = serde.decoder(self.schema)

    def encode(self, value: M) -> bytes:
        return self._encode_record(value.to_avro())

    def encode_record(self, record: dict[str, Any]) -> bytes:
        """Encode an Avro-ready record (e.g. from `schemas.validation`)."""
        return self._encode_record(record)

    def decode(self, data: bytes | None) -> M:
        record = self._decode_record(data)
        try:
            value = self.model.from_avro(record)
        except (KeyError, ValueError, TypeError) as exc:
            raise SerdeError(f"record does not fit {self.model.__name__}: {exc}") from exc
        return value
