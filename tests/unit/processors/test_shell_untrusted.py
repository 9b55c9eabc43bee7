"""The conversation shell never trusts the topic (issue 12), on the in-process driver:
any event a raw producer can encode is either processed or dead-lettered as
`invalid-event` naming the field, the rules' clock being the record's own time; the
handler never raises and later good events are applied. tests/integration/
test_untrusted_records.py does the same through the real broker."""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convotrail import clients
from convotrail.settings import Settings
from processors.conversation import shell as conversation
from processors.runtime.driver import TopologyDriver
from schemas import headers as h
from schemas import keys
from schemas.examples import EXAMPLES
from schemas.model import ConversationEvent
from schemas.validation import InvalidEvent, check_event, event_from_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _driver(tmp: Path) -> TopologyDriver[conversation.ConversationApp]:
    config = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "3"}
    )  # fmt: skip
    topology = conversation.topology(
        config, conversation.ConversationOptions(timers=False), clients.registry(config)
    )
    return TopologyDriver(topology, tmp, partitions=3, clock=lambda: NOW_MS)


def _pipe(driver: TopologyDriver[conversation.ConversationApp], event: ConversationEvent,
          timestamp: int = NOW_MS) -> None:  # fmt: skip
    app = driver.topology.app
    driver.pipe(app.topics.conversation_events, app.events.encode(event), keys.of_event(event),
                [(h.EVENT_TYPE, event.type.value.encode())], timestamp=timestamp)  # fmt: skip


def _dead(driver: TopologyDriver[conversation.ConversationApp]) -> list[str]:
    topic = driver.topology.app.topics.conversation_events_dlq
    return [
        dict(record.headers)[h.DLQ_ERROR].decode()  # type: ignore[union-attr]
        for record in driver.outputs(topic)
    ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_any_encodable_event_is_processed_or_dead_lettered_with_its_field(
    name: str, data: Any
) -> None:
    event = event_from_json(dict(EXAMPLES[name], conversation_id="cnv-h"), NOW)
    raw = event.to_avro()
    fields = [k for k, v in raw.items() if isinstance(v, str | datetime) and k != "type"]
    field = data.draw(st.sampled_from(fields))
    if isinstance(raw[field], datetime):
        new: Any = data.draw(st.datetimes(min_value=datetime(1971, 1, 1), timezones=st.just(UTC)))
    else:
        new = data.draw(st.text(max_size=30) | st.sampled_from(["", "<script>", "a" * 2001]))
    broken = dataclasses.replace(event, **{field: new})
    try:
        check_event(broken, NOW)
        refusal = None
    except InvalidEvent as refused:
        refusal = refused
    with tempfile.TemporaryDirectory() as tmp:
        driver = _driver(Path(tmp))
        try:
            _pipe(driver, broken)
            dead = _dead(driver)
            if refusal is None:
                assert not [d for d in dead if d.startswith("invalid-event")], dead
            else:
                assert len(dead) == 1 and dead[0].startswith("invalid-event: "), dead
                assert f": {refusal.field}: " in dead[0], (dead, str(refusal))
            # Later good input is processed.
            created = event_from_json(dict(EXAMPLES["CONVERSATION_CREATED"],
                                           event_id="evt-later", conversation_id="cnv-later"),
                                      NOW)  # fmt: skip
            _pipe(driver, created)
            timeline = driver.outputs(driver.topology.app.topics.conversation_timeline)
            assert any(r.key == keys.of_event(created) for r in timeline)
        finally:
            driver.close()


def test_the_rules_clock_is_the_records_time_not_the_wall_clock(tmp_path: Path) -> None:
    # An event 2 days ahead of its record's timestamp is refused, even though the
    # worker's own clock (a replay, much later) would let it pass; the same event with a
    # record timestamp close to it is accepted.
    event = event_from_json(EXAMPLES["CONVERSATION_CREATED"], NOW)
    ahead = dataclasses.replace(event, occurred_at=NOW + timedelta(days=2))
    driver = _driver(tmp_path)
    try:
        _pipe(driver, ahead, timestamp=NOW_MS)
        assert [d.split(": ")[0:3] for d in _dead(driver)] == [
            ["invalid-event", "event evt-0001", "occurred_at"]
        ]
        _pipe(driver, ahead, timestamp=NOW_MS + 2 * 86_400_000)
        assert len(_dead(driver)) == 1
    finally:
        driver.close()


def _settings() -> Settings:
    return Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "3"}
    )  # fmt: skip


def _skipped(app_id: str, topic: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "convotrail_skipped_records_total",
        {"app": app_id, "topic": topic, "reason": "invalid-event"},
    )
    return value or 0.0


def test_the_observing_processors_skip_what_the_conversation_processor_refuses(
    tmp_path: Path,
) -> None:
    """The receipts and bounce processors read conversation-events too: an event the
    contract refuses (one dead letter, from the conversation processor) must not become
    a read receipt, a delivery status or a route; the same event made valid does."""
    from processors.delivery import shell as bounces
    from processors.receipts import shell as receipts

    config = _settings()
    good = event_from_json(dict(EXAMPLES["MESSAGE_ADDED"], conversation_id="cnv-ok"), NOW)
    bad = dataclasses.replace(good, event_id="<script>alert(1)</script>")
    observers = [
        (receipts.topology(config, registry=clients.registry(config)), "read_receipts"),
        (bounces.topology(config, bounces.BounceOptions(), clients.registry(config)),
         "message_routes"),
    ]  # fmt: skip
    for number, (topology, output) in enumerate(observers):
        driver = TopologyDriver(topology, tmp_path / str(number), partitions=3,
                                clock=lambda: NOW_MS)  # fmt: skip
        app = topology.app
        topic = app.topics.conversation_events
        before = _skipped(topology.app_id, topic)
        for event in (bad, good):
            driver.pipe(topic, app.events.encode(event), keys.of_event(event),
                        [(h.EVENT_TYPE, event.type.value.encode())], timestamp=NOW_MS)  # fmt: skip
            driver.commit()
            if event is bad:
                assert driver.produced == [], topology.app_id
                assert _skipped(topology.app_id, topic) == before + 1
        assert _skipped(topology.app_id, topic) == before + 1
        if output == "message_routes":  # an outbound reply teaches its routes
            assert driver.outputs(app.topics.message_routes)
        else:  # the receipts store now tracks the message
            partition = keys.partition_of(keys.of_event(good), 3)
            assert (
                driver.store(receipts.TRACKS, partition).get(
                    keys.message_track(good.account_id, "msg-2")
                )
                is not None
            )
        # Nothing was dead-lettered here: the conversation processor does that once.
        assert driver.outputs(app.topics.conversation_events_dlq) == []
        driver.close()
