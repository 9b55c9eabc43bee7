"""A thin client for a Confluent-compatible schema registry (Apicurio's ccompat API here).

It registers schemas under TopicNameStrategy subjects (`<topic>-value`,
`<topic>-key`), looks schemas up by id with a cache, and sets compatibility.
It is the only module in `schemas` that does network I/O.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.errors import UnknownSchemaId


def value_subject(topic: str) -> str:
    """TopicNameStrategy: the subject of a topic's record values."""
    return f"{topic}-value"


class Registry:
    """Registry access with caches on both directions (id -> schema, schema -> id)."""

    def __init__(self, url: str, config: dict[str, Any] | None = None) -> None:
        self.url = url
        # new_client: a "mock://" URL gives the in-process registry pure unit tests use.
        self._client = SchemaRegistryClient.new_client({"url": url, **(config or {})})
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}

    @property
    def client(self) -> SchemaRegistryClient:
        return self._client

    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        text = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        schema_id: int = self._client.register_schema(subject, Schema(text, "AVRO"))
        self._ids[(subject, text)] = schema_id
        self._by_id[schema_id] = text
        return schema_id

    def schema_text(self, schema_id: int) -> str:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = self._client.get_schema(schema_id).schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaId(f"schema id {schema_id} is not in the registry") from exc
            raise
        if text is None:
            raise UnknownSchemaId(f"schema id {schema_id} has no schema text in the registry")
        self._by_id[schema_id] = text
        return text

    def latest(self, subject: str) -> tuple[int, int, str]:
        """(schema id, version, schema text) of a subject's latest version."""
        registered = self._client.get_latest_version(subject)
        schema_id, version = registered.schema_id, registered.version
        text = registered.schema.schema_str if registered.schema else None
        if schema_id is None or version is None or text is None:
            raise UnknownSchemaId(f"subject {subject} has no complete latest version")
        return schema_id, version, text

    def versions(self, subject: str) -> list[int]:
        versions: list[int] = self._client.get_versions(subject)
        return versions

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        result: Any = self._client.set_compatibility(subject_name=subject, level=level)
        if isinstance(result, dict):
            return str(result.get("compatibilityLevel", result.get("compatibility", level)))
        return str(result)

    def compatibility(self, subject: str | None = None) -> str:
        return str(self._client.get_compatibility(subject_name=subject))
