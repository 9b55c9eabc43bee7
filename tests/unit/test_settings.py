from pathlib import Path

import pytest

from convotrail.errors import ConfigError
from convotrail.settings import Settings


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings.from_env({"CONVOTRAIL_HOME": "/tmp/h", "CONVOTRAIL_CACHE": "/tmp/c"})
    assert settings.uses_local_stack
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert settings.home == Path("/tmp/h")
    assert settings.partitions == 6
    assert settings.topics.conversation_events == "conversation-events"
    assert settings.topics.conversation_events_dlq == "conversation-events.dlq"


def test_external_cluster_needs_both_variables() -> None:
    with pytest.raises(ConfigError, match="SCHEMA_REGISTRY_URL is not set"):
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "broker:9092"})
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        Settings.from_env({"SCHEMA_REGISTRY_URL": "http://registry"})
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "broker:9092", "SCHEMA_REGISTRY_URL": "http://registry"}
    )
    assert not settings.uses_local_stack
    assert settings.bootstrap_servers == "broker:9092"
    assert settings.registry_url == "http://registry"


def test_librdkafka_settings_pass_through_and_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker:9093",
            "SCHEMA_REGISTRY_URL": "http://registry",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_PASSWORD": "hunter2",
        }
    )
    config = settings.kafka_config({"group.id": "sink"})
    assert config == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.password": "hunter2",
        "group.id": "sink",
    }
    assert "hunter2" not in repr(settings)
    assert settings.redacted_kafka_extra()["sasl.password"] == "***"


@pytest.mark.parametrize("raw", ["six", "0", "-3"])
def test_bad_integers_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="CONVOTRAIL_PARTITIONS"):
        Settings.from_env({"CONVOTRAIL_PARTITIONS": raw})


def test_topic_prefix_applies_to_every_topic() -> None:
    names = Settings.from_env({"CONVOTRAIL_TOPIC_PREFIX": "staging."}).topics
    assert names.conversation_state == "staging.conversation-state"
    assert names.read_receipts == "staging.read-receipts"
    assert names.delivery_notifications_dlq == "staging.delivery-notifications.dlq"


def test_the_connect_timeout_is_read_and_bad_values_are_one_line() -> None:
    assert Settings.from_env({}).connect_timeout == 15.0
    assert Settings.from_env({"CONVOTRAIL_CONNECT_TIMEOUT": "2.5"}).connect_timeout == 2.5
    for bad in ("soon", "0", "-1", "99999"):
        with pytest.raises(ConfigError, match="CONVOTRAIL_CONNECT_TIMEOUT"):
            Settings.from_env({"CONVOTRAIL_CONNECT_TIMEOUT": bad})
