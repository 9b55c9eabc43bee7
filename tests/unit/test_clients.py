"""One client-config builder for every process (convotrail/clients.py), and the keys'
partitioner (schemas/keys.py) against Kafka's own murmur2 test vectors."""

from __future__ import annotations

import pytest

from convotrail import clients
from convotrail.settings import Settings
from schemas import keys

SECURED = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker:9094",
    "SCHEMA_REGISTRY_URL": "https://registry:8081",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "convotrail",
    "KAFKA_SASL_PASSWORD": "s3cret",
    "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "user:pass",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION": "/etc/ca.pem",
}
SECURITY = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "convotrail",
    "sasl.password": "s3cret",
    "ssl.ca.location": "/etc/ca.pem",
}


def test_every_role_gets_the_security_settings() -> None:
    settings = Settings.from_env(SECURED)
    for config in (
        clients.consumer_config(settings, "g"),
        clients.producer_config(settings),
        clients.admin_config(settings),
    ):
        assert config["bootstrap.servers"] == "broker:9094"
        assert {k: config[k] for k in SECURITY} == SECURITY
    assert clients.registry_config(settings) == {
        "url": "https://registry:8081",
        "basic.auth.user.info": "user:pass",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert "s3cret" not in repr(settings) and "user:pass" not in repr(settings)
    assert settings.redacted_registry_extra()["basic.auth.user.info"] == "***"


def test_guarantees_win_over_the_environment_and_defaults_lose_to_it() -> None:
    settings = Settings.from_env({**SECURED, "KAFKA_ACKS": "1", "KAFKA_LINGER_MS": "20"})
    config = clients.producer_config(settings, {"linger.ms": 5}, {"transactional.id": "t"})
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["partitioner"] == "murmur2_random" and config["transactional.id"] == "t"
    assert config["linger.ms"] == "20"
    consumer = clients.consumer_config(settings, "group-a", guarantees={"isolation.level": "x"})
    assert consumer["group.id"] == "group-a" and consumer["isolation.level"] == "x"


@pytest.mark.parametrize(
    ("key", "signed"),
    [
        # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_javas(key: bytes, signed: int) -> None:
    assert keys._murmur2(key) == signed & 0xFFFFFFFF
    assert keys.partition_of(key, 7) == (signed & 0x7FFFFFFF) % 7
