"""The processor shells on the runtime's in-process driver (no Kafka): what a record
in becomes on the output topics, in the stores and on the DLQs, commits and timers
included. The same handlers run in the stream loop; tests/integration runs them
through the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.delivery_samples import ses_via_sns
from connectors.traffic import generate
from convotrail import clients
from convotrail.settings import Settings
from processors.conversation import shell as conversation
from processors.conversation.core import Memory, evolve
from processors.conversation.memory_codec import decode_memory, encode_memory, encode_memory_v1
from processors.delivery import shell as bounces
from processors.receipts import shell as receipts
from processors.runtime.driver import TopologyDriver
from schemas import headers as h
from schemas import keys
from schemas import model as m
from tests.support.oracle import expected_outcome
from tests.unit.processors.test_conversation_core import JO, SUPPORT, T0, Script

NOW_MS = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}", "CONVOTRAIL_PARTITIONS": "3"}
    )  # fmt: skip


class Clock:
    def __init__(self, ms: int = NOW_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _conversation_driver(
    settings: Settings, tmp_path: Path, clock: Clock, partitions: int = 3, **options: object
) -> Iterator[TopologyDriver[conversation.ConversationApp]]:
    topology = conversation.topology(
        settings, conversation.ConversationOptions(**options),  # type: ignore[arg-type]
        clients.registry(settings),
    )  # fmt: skip
    driver = TopologyDriver(topology, tmp_path, partitions=partitions, clock=clock)
    yield driver
    driver.close()


@pytest.fixture
def driver(
    settings: Settings, tmp_path: Path, clock: Clock
) -> Iterator[TopologyDriver[conversation.ConversationApp]]:
    yield from _conversation_driver(settings, tmp_path, clock, timers=False)


Driver = TopologyDriver[conversation.ConversationApp]


def events_out(driver: Driver) -> list[m.ConversationEvent]:
    app = driver.topology.app
    return [app.events.decode(r.value) for r in driver.outputs(app.topics.conversation_events)]


def publish(driver: Driver, event: m.ConversationEvent) -> None:
    app = driver.topology.app
    driver.pipe(app.topics.conversation_events, app.events.encode(event), keys.of_event(event),
                [(h.EVENT_TYPE, event.type.value.encode())])  # fmt: skip


def test_a_generated_history_comes_out_as_the_core_computes_it(
    driver: TopologyDriver[conversation.ConversationApp],
) -> None:
    history = generate(5, 40, datetime(2026, 11, 1, tzinfo=UTC))
    expected = expected_outcome(history)
    for number, event in enumerate(history):
        publish(driver, event)
        if number % 97 == 0:
            driver.commit()
    # Derived events for other conversations come back through the log.
    app = driver.topology.app
    for record in list(driver.outputs(app.topics.conversation_events)):
        driver.pipe(record.topic, record.value, record.key)
    driver.commit()
    records = driver.outputs(app.topics.conversation_timeline)
    timeline = [app.timeline.decode(r.value) for r in records]
    assert {e.event_id: e for e in timeline} == expected.timeline
    assert len(timeline) == len(expected.timeline)  # each entry once
    states = {}
    for record in driver.outputs(app.topics.conversation_state):
        state = app.states.decode(record.value)
        assert record.key == keys.conversation(state.account_id, state.conversation_id)
        states[state.conversation_id] = state
    assert states == expected.states
    # The changelog holds each conversation's last memory; the store reads it back.
    memory = driver.store(conversation.MEMORY, 0)
    for state in expected.states.values():
        key = keys.conversation(state.account_id, state.conversation_id)
        partition = keys.partition_of(key, 3)
        assert driver.store(conversation.MEMORY, partition).get(key).state == state
    assert memory is not None


def test_one_snapshot_per_conversation_per_commit(
    driver: TopologyDriver[conversation.ConversationApp],
) -> None:
    s = Script()
    for event in [s.created(), s(m.TagAdded(tag="vip")), s(m.TagAdded(tag="billing"))]:
        publish(driver, event)
    app = driver.topology.app
    assert driver.outputs(app.topics.conversation_state) == []
    driver.commit()
    (snapshot,) = driver.outputs(app.topics.conversation_state)
    assert app.states.decode(snapshot.value).tags == ("billing", "vip")
    assert len(driver.outputs(app.topics.conversation_timeline)) == 3


def test_bad_records_and_rejected_events_go_to_the_dlq_with_their_reason(
    driver: TopologyDriver[conversation.ConversationApp],
) -> None:
    app = driver.topology.app
    s = Script()
    driver.pipe(app.topics.conversation_events, b"not avro", b"cnv-1")
    driver.pipe(app.topics.conversation_events, None, b"cnv-1")
    publish(driver, s(m.TagAdded(tag="vip")))  # never created
    dead = driver.outputs(app.topics.conversation_events_dlq)
    reasons = [str(r.header(h.DLQ_ERROR_CLASS), "utf-8") for r in dead]  # type: ignore[arg-type]
    assert reasons == ["BadMagicByte", "TruncatedRecord", "Rejection"]
    assert dead[0].value == b"not avro" and dead[0].key == b"cnv-1"
    assert dead[2].header(h.DLQ_ERROR).startswith(b"not-created: ")  # type: ignore[union-attr]
    assert dead[0].header(h.DLQ_SOURCE_TOPIC) == app.topics.conversation_events.encode()


def test_a_due_reminder_fires_once_even_when_asked_twice_before_the_commit(
    settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    for driver in _conversation_driver(settings, tmp_path, clock, timers=True):
        s = Script()
        due = T0 + timedelta(hours=1)
        for event in [s.created(), s(m.ReminderAdded(reminder_id="r1", due_at=due, note="Call"))]:
            publish(driver, event)
        driver.commit()

        def fired(driver: Driver = driver) -> list[m.ConversationEvent]:
            triggered = m.EventType.REMINDER_TRIGGERED
            return [e for e in events_out(driver) if e.type is triggered]

        clock.ms = int(due.timestamp() * 1000) - 1
        driver.fire_due()
        assert fired() == []
        clock.ms += 1
        driver.fire_due()
        driver.fire_due()  # a second tick before the commit
        driver.commit()
        driver.fire_due()  # and after it
        (event,) = fired()
        assert event.causation_id == "cnv-1-e2" and event.occurred_at == due
        publish(driver, event)  # back through the log: applied, the mark goes
        driver.commit()
        key = keys.conversation(event.account_id, "cnv-1")
        memory = driver.store(conversation.MEMORY, keys.partition_of(key, 3)).get(key)
        assert memory.fired == () and memory.state.pending_reminders == ()


def test_replay_mode_clocks_each_partition_by_its_event_time(
    settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    drivers = _conversation_driver(settings, tmp_path, clock, 1, timers=True, replay=True)
    for driver in drivers:
        s = Script()
        chat = [s.created(m.Channel.CHAT), s(m.MessageAdded(
            message_id="msg-1", direction=m.MessageDirection.INBOUND,
            visibility=m.MessageVisibility.REPLY, channel=m.Channel.CHAT), JO)]  # fmt: skip
        for event in chat:
            publish(driver, event)
        driver.commit()
        driver.fire_due()  # the wall clock is days later: replay ignores it
        app = driver.topology.app
        assert len(driver.outputs(app.topics.conversation_events)) == 0
        other = Script("cnv-2")
        other.number = 40  # another conversation 40 minutes later moves the clock
        publish(driver, other.created())
        driver.fire_due()
        assert [e.type for e in events_out(driver)] == [m.EventType.AUTO_RESOLVED]


def test_receipts_fold_views_and_skip_other_events_by_header(
    settings: Settings, tmp_path: Path
) -> None:
    topology = receipts.topology(settings, registry=clients.registry(settings))
    driver = TopologyDriver(topology, tmp_path, partitions=3)
    app = topology.app
    s = Script()
    viewed = [s(m.MessageViewed(message_id="msg-1", viewer_kind=m.ViewerKind.CUSTOMER,
                                viewer_id="cus-jo", source=m.ViewSource.APP), JO)
              for _ in range(3)]  # fmt: skip
    for event in [s.created(), *viewed]:
        driver.pipe(app.topics.conversation_events, app.events.encode(event), keys.of_event(event),
                    [(h.EVENT_TYPE, event.type.value.encode())])  # fmt: skip
    partition = keys.partition_of(keys.conversation(viewed[0].account_id, "cnv-1"), 3)
    assert driver.store(receipts.TRACKS, partition).changed
    driver.commit()
    (record,) = driver.outputs(app.topics.read_receipts)
    receipt = app.receipts.decode(record.value)
    assert receipt.view_count == 3 and record.key == keys.read_receipt(receipt)
    driver.close()


def test_bounces_wait_for_their_route_then_escalate_and_expire_when_it_never_comes(
    settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    options = bounces.BounceOptions(wait=timedelta(minutes=10))
    topology = bounces.topology(settings, options, clients.registry(settings))
    driver = TopologyDriver(topology, tmp_path, partitions=3, clock=clock)
    app = topology.app
    names = app.topics
    at = datetime.fromtimestamp(NOW_MS / 1000, UTC)

    def notify(email_id: str, notification_id: str) -> None:
        body = ses_via_sns(
            "Bounce",
            email_message_id=email_id,
            ses_message_id=f"ses-{email_id}",
            recipient="jo@example.com",
            at=at,
            notification_id=notification_id,
        )
        driver.pipe(names.delivery_notifications, body, keys.message_ref(email_id),
                    [(h.PROVIDER, b"ses")], timestamp=NOW_MS)  # fmt: skip

    def flow() -> None:
        # What the loop does with the internal topics: they come back as inputs.
        for topic in (names.message_routes, names.delivery_facts):
            for record in driver.outputs(topic):
                driver.pipe(topic, record.value, record.key)
            driver.produced = [r for r in driver.produced if r.topic != topic]

    notify("m1@acme.example", "n1")  # before its message is known: it waits
    notify("m2@acme.example", "n2")  # a message never announced
    driver.commit()
    assert driver.outputs(names.delivery_facts) == []
    s = Script()
    sent = s(
        m.MessageAdded(
            message_id="msg-1",
            direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY,
            channel=m.Channel.EMAIL,
            recipients=("jo@example.com",),
            email_message_id="<m1@acme.example>",
        )
    )
    driver.pipe(names.conversation_events, app.events.encode(sent), keys.of_event(sent),
                [(h.EVENT_TYPE, sent.type.value.encode())])  # fmt: skip
    flow()
    flow()
    driver.commit()
    events = [app.events.decode(r.value) for r in driver.outputs(names.conversation_events)]
    assert [(e.type, e.conversation_id) for e in events] == [(m.EventType.BOUNCE_DETECTED, "cnv-1")]
    (suppressed,) = driver.outputs(names.suppressed_recipients)
    assert suppressed.key == keys.recipient("acct-1", "jo@example.com")
    # Ten minutes later the other one expires to the DLQ, with the original record.
    clock.ms += 10 * 60 * 1000
    driver.fire_due()
    driver.commit()
    (dead,) = driver.outputs(names.delivery_notifications_dlq)
    assert dead.key == b"m2@acme.example" and dead.header(h.PROVIDER) == b"ses"
    assert dead.header(h.DLQ_ERROR_CLASS) == b"unknown-message"
    assert dead.header(h.DLQ_SOURCE_TOPIC) == names.delivery_notifications.encode()
    driver.fire_due()
    assert len(driver.outputs(names.delivery_notifications_dlq)) == 1  # once
    driver.close()


def test_a_handler_bug_is_the_runtimes_problem_not_the_shells(
    driver: TopologyDriver[conversation.ConversationApp],
) -> None:
    # The shell does not swallow unexpected errors: the loop aborts, rewinds and
    # dead-letters the record when it comes again (tests/integration covers that).
    app = driver.topology.app
    s = Script()
    event = s.created()
    original = app.events.decode
    object.__setattr__(app.events, "decode", lambda data: 1 / 0)
    try:
        with pytest.raises(ZeroDivisionError):
            driver.pipe(app.topics.conversation_events, app.events.encode(event), b"cnv-1")
    finally:
        object.__setattr__(app.events, "decode", original)
    assert JO and SUPPORT


@given(
    st.lists(st.text(max_size=8), max_size=6).map(tuple),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
def test_the_memory_format_keeps_any_ids(seen: tuple[str, ...], fired: tuple[str, ...]) -> None:
    s = Script()
    state, _ = apply_all([s.created()])
    for memory in (Memory(state.state, seen, fired), Memory(None, seen, fired)):
        assert decode_memory(encode_memory(memory)) == memory


def test_faust_changelog_values_are_still_read() -> None:
    s = Script()
    state, _ = apply_all([s.created(), s(m.TagAdded(tag="vip"))])
    assert decode_memory(encode_memory_v1(state)) == state


def apply_all(events: list[m.ConversationEvent]) -> tuple[Memory, None]:
    memory = Memory()
    for event in events:
        memory, _ = evolve(memory, event, T0)
    return memory, None
