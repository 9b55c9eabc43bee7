"""Every Kafka and schema registry client of every convotrail process is built here.

One builder per role, from `Settings`, so a secured cluster works for every
process alike: the bootstrap servers, then the role's defaults, then the
environment's pass-through settings (each `KAFKA_<NAME>` is librdkafka's `<name>`:
KAFKA_SECURITY_PROTOCOL=SASL_SSL, KAFKA_SASL_MECHANISM=SCRAM-SHA-512,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CA_LOCATION...), then the
role's guarantees, which nothing may weaken (a transactional producer stays
transactional whatever the environment says). The registry client takes
SCHEMA_REGISTRY_URL plus each `SCHEMA_REGISTRY_<NAME>` (basic.auth.user.info,
ssl.ca.location...).

Nothing else in the project constructs a Consumer, Producer, AdminClient or
registry client from raw settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from convotrail.settings import KafkaConfig, KafkaValue, Settings
from schemas.registry import Registry

log = logging.getLogger(__name__)

# Java's murmur2: a conversation's events, whoever produces them (the SDK, a Java
# service, a processor's derived events), land on one partition. librdkafka's
# default (CRC32) would scatter them.
PARTITIONER = "murmur2_random"

# Every producer: nothing lost or reordered by librdkafka's retries.
PRODUCER_GUARANTEES: dict[str, KafkaValue] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": PARTITIONER,
}


def _config(
    settings: Settings,
    defaults: Mapping[str, KafkaValue] | None = None,
    guarantees: Mapping[str, KafkaValue] | None = None,
) -> KafkaConfig:
    config: KafkaConfig = {"bootstrap.servers": settings.bootstrap_servers}
    config.update(defaults or {})
    config.update(settings.kafka_extra)
    config.update(guarantees or {})
    return config


def consumer_config(
    settings: Settings,
    group_id: str,
    defaults: Mapping[str, KafkaValue] | None = None,
    guarantees: Mapping[str, KafkaValue] | None = None,
) -> KafkaConfig:
    return _config(settings, defaults, {**(guarantees or {}), "group.id": group_id})


def producer_config(
    settings: Settings,
    defaults: Mapping[str, KafkaValue] | None = None,
    guarantees: Mapping[str, KafkaValue] | None = None,
) -> KafkaConfig:
    return _config(settings, defaults, {**PRODUCER_GUARANTEES, **(guarantees or {})})


def admin_config(settings: Settings) -> KafkaConfig:
    return _config(settings)


def consumer(
    settings: Settings,
    group_id: str,
    defaults: Mapping[str, KafkaValue] | None = None,
    guarantees: Mapping[str, KafkaValue] | None = None,
    **callbacks: Any,
) -> Consumer:
    config: dict[str, Any] = dict(consumer_config(settings, group_id, defaults, guarantees))
    config.update(callbacks)
    return Consumer(config, logger=log)


def producer(
    settings: Settings,
    defaults: Mapping[str, KafkaValue] | None = None,
    guarantees: Mapping[str, KafkaValue] | None = None,
    **callbacks: Any,
) -> Producer:
    config: dict[str, Any] = dict(producer_config(settings, defaults, guarantees))
    config.update(callbacks)
    return Producer(config, logger=log)


def admin(settings: Settings) -> AdminClient:
    return AdminClient(admin_config(settings), logger=log)


def registry_config(
    settings: Settings, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {"url": settings.registry_url, **(defaults or {}), **settings.registry_extra}


def registry(settings: Settings, defaults: Mapping[str, Any] | None = None) -> Registry:
    """`defaults` (a `timeout`, `max.retries`...) yield to the environment's settings."""
    config = registry_config(settings, defaults)
    url = config.pop("url")
    return Registry(url, config)


def checked_registry(settings: Settings, defaults: Mapping[str, Any] | None = None) -> Registry:
    """The registry client, once the registry has answered: a wrong SCHEMA_REGISTRY_URL is
    one line at start-up (ConfigError), not a traceback at the first record."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from convotrail.errors import ConfigError

    client = registry(settings, defaults)
    try:
        client.client.get_subjects()
    except SchemaRegistryError as exc:
        raise ConfigError(
            f"schema registry at {settings.registry_url} refused the request ({exc}): "
            "check SCHEMA_REGISTRY_URL and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
        ) from exc
    except Exception as exc:  # the HTTP client's transport errors have no public base class
        raise ConfigError(
            f"schema registry at {settings.registry_url} did not answer "
            f"({type(exc).__name__}: {exc}): check SCHEMA_REGISTRY_URL"
        ) from exc
    return client
