"""Settings for every convotrail process, read once from the environment.

One frozen object, built by `Settings.from_env()` at the edge of a process and
passed inward; nothing else reads os.environ. Secrets (SASL passwords, key
passwords) are kept out of `repr` so they never reach a log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from convotrail.errors import ConfigError

KafkaValue = str | int | float | bool
KafkaConfig = dict[str, KafkaValue]

DEFAULT_PARTITIONS = 6
DEFAULT_KAFKA_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_KAFKA_SASL_PORT = 19094
DEFAULT_REGISTRY_PORT = 18081

# Environment variables KAFKA_<NAME> (other than the bootstrap servers) are passed
# to librdkafka as <name> with "_" turned into ".": KAFKA_SECURITY_PROTOCOL=SASL_SSL
# becomes security.protocol=SASL_SSL. That is how SASL/SCRAM/TLS reach every client.
_KAFKA_PASSTHROUGH_PREFIX = "KAFKA_"
# Likewise SCHEMA_REGISTRY_<NAME> (other than the URL) for the registry client:
# SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=user:pass becomes basic.auth.user.info.
_REGISTRY_PASSTHROUGH_PREFIX = "SCHEMA_REGISTRY_"
_SECRET_MARKERS = ("password", "secret", "key.pem", "token", "user.info", "jaas")


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive integer")
    return value


def _seconds_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 3600 seconds")
    return value


@dataclass(frozen=True)
class TopicNames:
    """Topic names (DESIGN.md section 2); a prefix keeps environments and tests apart."""

    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def conversation_events(self) -> str:
        return self._name("conversation-events")

    @property
    def delivery_notifications(self) -> str:
        return self._name("delivery-notifications")

    @property
    def conversation_state(self) -> str:
        return self._name("conversation-state")

    @property
    def conversation_timeline(self) -> str:
        return self._name("conversation-timeline")

    @property
    def read_receipts(self) -> str:
        return self._name("read-receipts")

    @property
    def delivery_status(self) -> str:
        return self._name("delivery-status")

    @property
    def suppressed_recipients(self) -> str:
        return self._name("suppressed-recipients")

    @property
    def message_routes(self) -> str:
        return self._name("message-routes")

    @property
    def delivery_facts(self) -> str:
        return self._name("delivery-facts")

    @property
    def conversation_events_dlq(self) -> str:
        return self._name("conversation-events.dlq")

    @property
    def delivery_notifications_dlq(self) -> str:
        return self._name("delivery-notifications.dlq")

    @property
    def conversation_timeline_dlq(self) -> str:
        return self._name("conversation-timeline.dlq")

    @property
    def conversation_state_dlq(self) -> str:
        return self._name("conversation-state.dlq")

    @property
    def read_receipts_dlq(self) -> str:
        return self._name("read-receipts.dlq")

    @property
    def delivery_status_dlq(self) -> str:
        return self._name("delivery-status.dlq")


@dataclass(frozen=True)
class Settings:
    """Everything a convotrail process needs to know about its surroundings."""

    home: Path
    cache_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    # The local broker's SASL_PLAINTEXT listener (SCRAM-SHA-512), for testing secured clients.
    kafka_sasl_port: int = DEFAULT_KAFKA_SASL_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    registry_port: int = DEFAULT_REGISTRY_PORT
    external_bootstrap: str | None = None
    external_registry: str | None = None
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    topics: TopicNames = field(default_factory=TopicNames)
    kafka_extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    registry_extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    # How long a worker or the sink waits for Kafka at start-up before one line and exit 1.
    connect_timeout: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("CONVOTRAIL_HOME") or Path.home() / ".local/state/convotrail")
        cache = Path(env.get("CONVOTRAIL_CACHE") or Path.home() / ".cache/convotrail")
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS") or None
        registry = env.get("SCHEMA_REGISTRY_URL") or None
        if bool(bootstrap) != bool(registry):
            missing = "SCHEMA_REGISTRY_URL" if bootstrap else "KAFKA_BOOTSTRAP_SERVERS"
            raise ConfigError(
                f"{missing} is not set: set both KAFKA_BOOTSTRAP_SERVERS and "
                "SCHEMA_REGISTRY_URL to use an external cluster, or neither for the local stack"
            )
        extra = {
            key[len(_KAFKA_PASSTHROUGH_PREFIX) :].lower().replace("_", "."): value
            for key, value in env.items()
            if key.startswith(_KAFKA_PASSTHROUGH_PREFIX) and key != "KAFKA_BOOTSTRAP_SERVERS"
        }
        registry_extra = {
            key[len(_REGISTRY_PASSTHROUGH_PREFIX) :].lower().replace("_", "."): value
            for key, value in env.items()
            if key.startswith(_REGISTRY_PASSTHROUGH_PREFIX) and key != "SCHEMA_REGISTRY_URL"
        }
        return cls(
            home=home,
            cache_dir=cache,
            kafka_port=_int_env(env, "CONVOTRAIL_KAFKA_PORT", DEFAULT_KAFKA_PORT),
            kafka_sasl_port=_int_env(env, "CONVOTRAIL_KAFKA_SASL_PORT", DEFAULT_KAFKA_SASL_PORT),
            controller_port=_int_env(env, "CONVOTRAIL_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT),
            registry_port=_int_env(env, "CONVOTRAIL_REGISTRY_PORT", DEFAULT_REGISTRY_PORT),
            external_bootstrap=bootstrap,
            external_registry=registry,
            partitions=_int_env(env, "CONVOTRAIL_PARTITIONS", DEFAULT_PARTITIONS),
            replication_factor=_int_env(env, "CONVOTRAIL_REPLICATION_FACTOR", 1),
            topics=TopicNames(prefix=env.get("CONVOTRAIL_TOPIC_PREFIX", "")),
            kafka_extra=extra,
            registry_extra=registry_extra,
            connect_timeout=_seconds_env(env, "CONVOTRAIL_CONNECT_TIMEOUT", 15.0),
        )

    @property
    def uses_local_stack(self) -> bool:
        return self.external_bootstrap is None

    @property
    def bootstrap_servers(self) -> str:
        return self.external_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return self.external_registry or f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7"

    def kafka_config(self, overrides: Mapping[str, KafkaValue] | None = None) -> KafkaConfig:
        """librdkafka configuration: bootstrap servers, pass-through settings, then overrides."""
        config: KafkaConfig = {"bootstrap.servers": self.bootstrap_servers}
        config.update(self.kafka_extra)
        config.update(overrides or {})
        return config

    def redacted_kafka_extra(self) -> dict[str, str]:
        """The pass-through settings with secrets masked, for logs and `config show`."""
        return _redacted(self.kafka_extra)

    def redacted_registry_extra(self) -> dict[str, str]:
        return _redacted(self.registry_extra)


def _redacted(extra: Mapping[str, str]) -> dict[str, str]:
    return {
        key: ("***" if any(marker in key for marker in _SECRET_MARKERS) else value)
        for key, value in extra.items()
    }
