"""What an operator sees of `convotrail sink` on its metrics port and in its logs.

The sink runs as a process, as a user runs it (SQLite, `--metrics-port`,
`--log-format json`): alive but not ready while its database is locked at start-up,
ready once it has the database and its partitions; its own consumer lag per
partition, each stored row's latency from the record's timestamp, and the one DLQ
counter (convotrail_dlq_records_total, app = the sink's group) after a record it
cannot decode; every log line JSON, the dead letter's naming its record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from connectors.sink.store import store_at, timeline_entries
from convotrail.settings import Settings
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.model import TimelineEntry
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.metrics import probe, ready, scrape
from tests.support.sink import timeline_entry
from tests.support.sink_process import Sink, locked
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ENTRIES = 40


def _publish(settings: Settings) -> int:
    """ENTRIES timeline entries and one record that is not Avro, keyed account first."""
    topic = settings.topics.conversation_timeline
    codec = ModelCodec(AvroSerde(Registry(settings.registry_url)), topic, TimelineEntry)
    producer = Producer(settings.kafka_config({"enable.idempotence": True}))
    for n in range(ENTRIES):
        entry = timeline_entry(f"cnv-{n % 7}", n, account_id="acct-obs")
        producer.produce(topic, key=keys.conversation(entry.account_id, entry.conversation_id),
                         value=codec.encode(entry))  # fmt: skip
    producer.produce(topic, key=b"acct-bad|cnv-bad", value=b"not avro")
    assert producer.flush(30) == 0
    return ENTRIES


def _stored(url: str) -> int:
    with store_at(url, migrate=False) as store:
        return store.count(timeline_entries)


def test_the_sink_reports_health_lag_row_latency_and_dead_letters(
    topics: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "sink.db"
    url = f"sqlite:///{path}?timeout=0.5"
    sink = Sink(topics, url, tmp_path, log_format="json")
    app = sink.group_id
    try:
        with locked(path):  # another writer holds the database: the sink cannot migrate it
            sink.start()
            wait_until(lambda: probe(sink.port, "/healthz") == 200, timeout=60, what="/healthz")
            wait_until(lambda: "database unavailable" in sink.log.read_text(), timeout=30,
                       what="the sink waiting for the locked database")  # fmt: skip
            assert probe(sink.port, "/readyz") == 503
            assert sink.metric("convotrail_sink_database_up") == 0.0
        wait_until(lambda: ready(sink.port), timeout=60, what="/readyz once the lock is gone")
        sent = _publish(topics)
        wait_until(lambda: _stored(url) >= sent, timeout=60, what="every entry stored")
        timeline = topics.topics.conversation_timeline
        lag_of = f'convotrail_consumer_lag{{app="{app}",partition="'

        def caught_up() -> dict[str, float] | None:
            found = scrape(sink.port)
            lags = {name: value for name, value in found.items() if name.startswith(lag_of)}
            # One series per assigned partition of each of the four topics, all at 0.
            done = len(lags) == 4 * topics.partitions and not any(lags.values())
            return found if done else None

        metrics = wait_until(caught_up, timeout=30, what="the lag of every partition at 0")
        dlq = f'{{app="{app}",reason="bad-magic-byte",topic="{timeline}"}}'
        assert metrics["convotrail_dlq_records_total" + dlq] == 1
        latency = 'convotrail_sink_row_latency_seconds_{}{{kind="timeline"}}'
        assert metrics[latency.format("count")] == sent
        # From the record's Kafka timestamp to the commit: positive, and well under the
        # test's own duration.
        assert 0 < metrics[latency.format("sum")] / sent < 60
        assert metrics[latency.format("bucket")[:-1] + ',le="+Inf"}'] == sent
        assert any(name.startswith("convotrail_build_info{") for name in metrics)
        assert not any(name.startswith("convotrail_sink_dlq_total") for name in metrics)
        assert sink.stop() == 0
    finally:
        if sink.alive():
            sink.kill()
    lines = [json.loads(line) for line in sink.log.read_text().splitlines()]
    letter = next(line for line in lines if "bad-magic-byte" in line["message"])
    assert letter["topic"] == timeline and letter["account"] == "acct-bad", letter
    assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
    assert "records in" in lines[-1]["message"]  # the summary, as a JSON line too
