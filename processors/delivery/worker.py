"""The stream shell of the bounce processor: a faust-streaming app, three agents.

    conversation-events --(routes_of)--> message-routes (compacted, keyed by ref)

    message-routes + delivery-notifications (both keyed by message ref, co-partitioned)
        --(ledger: learn / park / expire; providers: parse; facts: to_fact)-->
        delivery-facts (keyed by account/recipient)
        delivery-notifications.dlq (unparseable, unknown message, unroutable)

    delivery-facts --(recipients.assess: escalation, suppression)-->
        conversation-events (the delivery events, keyed by conversation)
        suppressed-recipients (compacted; a tombstone lifts)

Each hop re-keys: a message's notifications meet its route on one partition; a
recipient's facts meet its health on one partition; the events go back to their
conversation. Tables: `delivery-ledger` (per ref) and `recipient-health` (per
account/recipient), changelog-backed.

Delivery guarantee as in the conversation worker (processors/conversation/worker.py):
per batch, outputs are sent and acknowledged, then the table values are written,
then the batch is acked. Every output is idempotent downstream: delivery events
carry deterministic ids (facts.fact_id), routes and suppressions are compacted
upserts, and `assess` applied twice changes nothing the second time.

Waiting notifications (a notification whose message is not known yet) expire
through *sweep* records: a faust table can only be written while handling a
record of its partition, so the timer that finds an overdue ref sends an empty
record with the `sweep` header to delivery-notifications on the ref's partition,
and the agent expires the ref's waiting notifications to the DLQ when it reads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import faust
from prometheus_client import Counter, Gauge

from convotrail.settings import Settings
from processors.conversation.worker import (
    BATCH_SIZE,
    BATCH_WITHIN,
    WorkerOptions,
    make_current,
    wall_clock,
)
from processors.delivery import facts, ledger
from processors.delivery.notification import Notification, NotificationError
from processors.delivery.providers import PARSERS
from processors.delivery.recipients import (
    EscalationPolicy,
    Lift,
    Suppress,
    assess,
    decode_health,
    encode_health,
)
from processors.delivery.routes import routes_of
from processors.shell import (
    bytes_table,
    header,
    install_stall_guard,
    new_app,
    note_progress,
    raw_topic,
)
from schemas import headers as h
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import ConversationEvent, EventType, MessageRoute, SuppressedRecipient
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)


NOTIFICATIONS = Counter(
    "convotrail_delivery_notifications_total",
    "Delivery notifications read, by provider and outcome",
    ["provider", "outcome"],
)
FACTS = Counter("convotrail_delivery_facts_total", "Delivery events appended", ["type"])
WAITING = Gauge(
    "convotrail_delivery_waiting", "Notifications waiting for their message (this worker)"
)
DLQ = Counter("convotrail_delivery_dlq_total", "Notifications dead-lettered", ["reason"])
SUPPRESSIONS = Counter(
    "convotrail_suppressions_total", "Changes to the suppression list", ["change"]
)

LEDGER_TABLE = "delivery-ledger"
HEALTH_TABLE = "recipient-health"
SWEEP_HEADER = "sweep"
# An overdue ref's sweep record is sent again if the agent has not handled it by then.
SWEEP_RETRY = 30.0
_ROUTE_TYPES = {EventType.MESSAGE_ADDED.value.encode(), EventType.MESSAGE_SENT.value.encode()}


@dataclass(frozen=True)
class BounceOptions:
    worker: WorkerOptions = field(
        default_factory=lambda: WorkerOptions(app_id="convotrail-bounces", timers=False)
    )
    # How long a notification waits for the event that introduces its message.
    wait: timedelta = timedelta(minutes=10)
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)
    sweep_tick: float = 1.0


def _source(event: Any) -> str:
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"


def _received_at(event: Any) -> datetime:
    stamp = event.message.timestamp
    return datetime.fromtimestamp(stamp, UTC) if stamp else wall_clock()


class SweepIndex:
    """Refs with waiting notifications, by partition, and when they fall due.

    In memory, rebuilt from the table after every assignment (like the timer index).
    """

    def __init__(self) -> None:
        self._due: dict[tuple[int, bytes], datetime] = {}
        self._sent: dict[tuple[int, bytes], float] = {}

    def set(self, partition: int, key: bytes, due: datetime | None) -> None:
        self._sent.pop((partition, key), None)
        if due is None:
            self._due.pop((partition, key), None)
        else:
            self._due[(partition, key)] = due

    def clear(self) -> None:
        self._due.clear()
        self._sent.clear()

    def overdue(self, now: datetime) -> list[tuple[int, bytes]]:
        mono = time.monotonic()
        found = []
        for slot, due in self._due.items():
            if due <= now and mono - self._sent.get(slot, -SWEEP_RETRY) >= SWEEP_RETRY:
                self._sent[slot] = mono
                found.append(slot)
        return found

    def __len__(self) -> int:
        return len(self._due)


def create_bounce_app(
    settings: Settings,
    options: BounceOptions | None = None,
    clock: Callable[[], datetime] = wall_clock,
) -> faust.App:
    options = options or BounceOptions()
    topics = settings.topics
    app = new_app(settings, options.worker, bounce_data_dir(settings))
    events_topic = raw_topic(app, topics.conversation_events)
    routes_topic = raw_topic(app, topics.message_routes)
    notifications_topic = raw_topic(app, topics.delivery_notifications)
    detect_topics = raw_topic(app, topics.message_routes, topics.delivery_notifications)
    facts_topic = raw_topic(app, topics.delivery_facts)
    suppressed_topic = raw_topic(app, topics.suppressed_recipients)
    dlq_topic = raw_topic(app, topics.delivery_notifications_dlq)
    ledgers = bytes_table(app, LEDGER_TABLE, settings)
    healths = bytes_table(app, HEALTH_TABLE, settings)
    inputs = {topics.conversation_events, topics.message_routes, topics.delivery_notifications,
              topics.delivery_facts}  # fmt: skip
    stalls = install_stall_guard(app, inputs)

    serde = AvroSerde(Registry(settings.registry_url))
    event_codec = ModelCodec(serde, topics.conversation_events, ConversationEvent)
    fact_codec = ModelCodec(serde, topics.delivery_facts, ConversationEvent)
    route_codec = ModelCodec(serde, topics.message_routes, MessageRoute)
    suppressed_codec = ModelCodec(serde, topics.suppressed_recipients, SuppressedRecipient)
    sweeps = SweepIndex()

    async def dead_letter(
        key: bytes | None,
        value: bytes,
        provider: str,
        reason: str,
        error: str,
        source: str,
        acks: list[Awaitable[Any]],
    ) -> None:
        DLQ.labels(reason).inc()
        NOTIFICATIONS.labels(provider, "dead-lettered").inc()
        log.warning(
            "dead-lettered %s notification from %s: %s: %s", provider, source, reason, error
        )
        topic, _, rest = source.partition("[")
        partition, _, offset = rest.partition("]@")
        ack = await dlq_topic.send(
            key=key,
            value=value,
            headers=[
                (h.PROVIDER, provider.encode()),
                (h.DLQ_ERROR, f"{reason}: {error}".encode()),
                (h.DLQ_ERROR_CLASS, reason.encode()),
                (h.DLQ_SOURCE_TOPIC, topic.encode()),
                (h.DLQ_SOURCE_PARTITION, partition.encode()),
                (h.DLQ_SOURCE_OFFSET, offset.encode()),
            ],
        )
        acks.append(ack)

    def parse(provider: str, body: bytes) -> list[Notification]:
        return cast(list[Notification], PARSERS[provider].parse(body))

    async def emit_facts(
        key: bytes | None,
        waiting: ledger.Waiting,
        route: MessageRoute,
        acks: list[Awaitable[Any]],
    ) -> None:
        try:
            notifications = parse(waiting.provider, waiting.body)
        except NotificationError as exc:
            await dead_letter(key, waiting.body, waiting.provider, exc.reason, str(exc),
                              waiting.source, acks)  # fmt: skip
            return
        for notification in notifications:
            try:
                fact = facts.to_fact(notification, route, waiting.body, waiting.received_at)
            except facts.Unroutable as exc:
                await dead_letter(key, waiting.body, waiting.provider, exc.reason, str(exc),
                                  waiting.source, acks)  # fmt: skip
                continue
            ack = await facts_topic.send(
                key=facts.recipient_key(fact).encode(),
                value=fact_codec.encode(fact),
                headers=[(h.EVENT_TYPE, fact.type.value.encode())],
            )
            acks.append(ack)
        NOTIFICATIONS.labels(waiting.provider, "routed").inc()

    # -- routes: conversation-events -> message-routes ------------------------------

    @app.agent(events_topic)
    async def learn_routes(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = cast("faust.Stream[bytes]", stream).take_events(BATCH_SIZE, within=BATCH_WITHIN)
        async for events in batches:
            acks: list[Awaitable[Any]] = []
            for event in events:
                kind = header(event, h.EVENT_TYPE)
                if kind is not None and kind not in _ROUTE_TYPES:
                    continue  # most events introduce no message: skip without decoding
                try:
                    decoded = event_codec.decode(event.value)
                except SerdeError:
                    continue  # the conversation worker dead-letters it; nothing to learn
                for route in routes_of(decoded):
                    ack = await routes_topic.send(
                        key=route.message_ref.encode(), value=route_codec.encode(route)
                    )
                    acks.append(ack)
            if acks:
                await asyncio.gather(*acks)
            note_progress(stalls, events)
            yield None

    # -- detect: routes + notifications -> delivery-facts ---------------------------

    async def on_route(
        event: Any, current: ledger.Ledger | None, acks: list[Awaitable[Any]]
    ) -> ledger.Ledger | None:
        try:
            route = route_codec.decode(event.value)
        except SerdeError:
            log.exception("undecodable route at %s", _source(event))
            return current
        updated, released = ledger.learn(current, route)
        for waiting in released:
            NOTIFICATIONS.labels(waiting.provider, "released").inc()
            await emit_facts(event.key, waiting, route, acks)
        return updated

    async def on_notification(
        event: Any, current: ledger.Ledger | None, acks: list[Awaitable[Any]]
    ) -> ledger.Ledger | None:
        key: bytes | None = event.key
        if header(event, SWEEP_HEADER) is not None:
            if current is None:
                return None
            updated, expired = ledger.expire(current, clock(), options.wait)
            for waiting in expired:
                await dead_letter(
                    key, waiting.body, waiting.provider, "unknown-message",
                    f"no outbound message event named {(key or b'').decode()!r} within "
                    f"{options.wait.total_seconds():.0f} s",
                    waiting.source, acks,
                )  # fmt: skip
            return updated
        provider = (header(event, h.PROVIDER) or b"").decode()
        value: bytes = event.value or b""
        if provider not in PARSERS:
            await dead_letter(key, value, provider or "none", "unknown-provider",
                              f"header {h.PROVIDER!r} is {provider!r}, not one of "
                              f"{', '.join(PARSERS)}", _source(event), acks)  # fmt: skip
            return current
        waiting = ledger.Waiting(
            provider=provider,
            body=value,
            received_at=_received_at(event),
            parked_at=clock(),
            source=_source(event),
        )
        if current is not None and current.route is not None:
            await emit_facts(key, waiting, current.route, acks)
            return current
        try:
            parse(provider, value)  # parse now: garbage goes to the DLQ, not to wait
        except NotificationError as exc:
            await dead_letter(key, value, provider, exc.reason, str(exc), waiting.source, acks)
            return current
        if key is None:
            await dead_letter(None, value, provider, "no-message-ref",
                              "the record has no key naming its message", waiting.source,
                              acks)  # fmt: skip
            return current
        updated, parked = ledger.park(current, waiting)
        if not parked:
            await dead_letter(key, value, provider, "too-many-waiting",
                              f"{ledger.MAX_WAITING} notifications already wait for this message",
                              waiting.source, acks)  # fmt: skip
            return current
        NOTIFICATIONS.labels(provider, "waiting").inc()
        return updated

    @app.agent(detect_topics)
    async def detect(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = cast("faust.Stream[bytes]", stream).take_events(BATCH_SIZE, within=BATCH_WITHIN)
        async for events in batches:
            changed: dict[bytes, tuple[ledger.Ledger | None, Any]] = {}
            acks: list[Awaitable[Any]] = []
            for event in events:
                make_current(event)
                key: bytes | None = event.key
                if key is not None and key in changed:
                    current = changed[key][0]
                else:
                    stored = ledgers.get(key) if key is not None else None
                    current = ledger.decode_ledger(stored) if stored is not None else None
                if event.message.topic == topics.message_routes:
                    updated = await on_route(event, current, acks)
                else:
                    updated = await on_notification(event, current, acks)
                if key is not None and updated is not current:
                    changed[key] = (updated, event)
            if acks:
                await asyncio.gather(*acks)
            for key, (value, last) in changed.items():
                make_current(last)
                if value is None:
                    continue
                ledgers[key] = ledger.encode_ledger(value)
                sweeps.set(last.message.partition, key, ledger.deadline(value, options.wait))
            WAITING.set(len(sweeps))
            note_progress(stalls, events)
            yield None

    @ledgers.on_recover  # type: ignore[untyped-decorator]
    async def rebuild_sweeps() -> None:
        sweeps.clear()
        for key, value in ledgers.items():
            due = ledger.deadline(ledger.decode_ledger(value), options.wait)
            if due is not None:
                partition = app.producer.key_partition(topics.delivery_notifications, key)
                sweeps.set(partition.partition, key, due)
        WAITING.set(len(sweeps))

    @app.timer(interval=options.sweep_tick)  # type: ignore[untyped-decorator]
    async def sweep() -> None:
        if app.rebalancing:
            return
        for partition, key in sweeps.overdue(clock()):
            await notifications_topic.send(
                key=key, value=b"", partition=partition, headers=[(SWEEP_HEADER, b"1")]
            )

    # -- recipients: delivery-facts -> conversation-events + suppressed-recipients ---

    @app.agent(facts_topic)
    async def recipients(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = cast("faust.Stream[bytes]", stream).take_events(BATCH_SIZE, within=BATCH_WITHIN)
        async for events in batches:
            changed: dict[bytes, tuple[Any, Any]] = {}
            acks: list[Awaitable[Any]] = []
            for event in events:
                make_current(event)
                try:
                    fact = fact_codec.decode(event.value)
                except SerdeError:
                    log.exception("undecodable delivery fact at %s", _source(event))
                    continue
                key = facts.recipient_key(fact).encode()
                if key in changed:
                    health = changed[key][0]
                else:
                    stored = healths.get(key)
                    health = decode_health(stored) if stored is not None else None
                health, out, change = assess(health, fact, options.escalation)
                changed[key] = (health, event)
                acks.append(
                    await events_topic.send(
                        key=out.conversation_id.encode(),
                        value=event_codec.encode(out),
                        headers=[(h.EVENT_TYPE, out.type.value.encode())],
                    )
                )
                FACTS.labels(out.type.value).inc()
                if isinstance(change, Suppress):
                    record = change.record
                    acks.append(
                        await suppressed_topic.send(
                            key=f"{record.account_id}/{record.recipient}".encode(),
                            value=suppressed_codec.encode(record),
                        )
                    )
                    SUPPRESSIONS.labels("suppressed").inc()
                elif isinstance(change, Lift):
                    acks.append(
                        await suppressed_topic.send(
                            key=f"{change.account_id}/{change.recipient}".encode(), value=None
                        )
                    )
                    SUPPRESSIONS.labels("lifted").inc()
            if acks:
                await asyncio.gather(*acks)
            for key, (health, last) in changed.items():
                make_current(last)
                healths[key] = encode_health(health)
            note_progress(stalls, events)
            yield None

    app.sweep_index = sweeps  # type: ignore[attr-defined]
    return app


def bounce_data_dir(settings: Settings) -> Path:
    return settings.home / "bounces"
