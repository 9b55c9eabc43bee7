"""The bounce processor on the stream runtime: three steps, one loop, one transaction.

    conversation-events --(routes_of)--> message-routes (compacted, keyed by message ref)

    message-routes + delivery-notifications (both keyed by ref, co-partitioned)
        --(ledger: learn / park / expire, one route per account; providers: parse;
           facts: to_fact)-->
        delivery-facts (keyed by account|recipient)
        delivery-notifications.dlq (unparseable, unknown message, unroutable,
                                    ambiguous-route: a ref of several accounts and
                                    a notification that names none)

    delivery-facts --(recipients.assess: escalation, suppression)-->
        conversation-events (the delivery events, on their conversation)
        suppressed-recipients (compacted; a tombstone lifts)

Why still two internal topics: a notification is keyed by the message ref it
names, its route is learned from events keyed by conversation, and escalation
needs every fact about one recipient together, so records change key twice and a
change of key is a change of partition. What the runtime changes: one process
reads the four inputs with one consumer and commits everything a batch caused
(routes, facts, events, suppressions, both stores, the positions) in one
transaction, so no step can run twice or be lost between hops, and the faust
version's three agents, acks between hops and *sweep* records are gone: waiting
notifications expire from the ledger store's schedule (`on_due`).

The inputs meet by partition (a ref's notifications and its route; a recipient's
facts and its health), so the group uses the range assignor (Topology.co_partitioned).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, partial

from prometheus_client import Counter, Gauge

from convotrail import clients
from convotrail.settings import Settings, TopicNames
from processors import contract_check
from processors.delivery import facts, ledger
from processors.delivery.notification import (
    Notification,
    NotificationError,
    NotificationIgnored,
)
from processors.delivery.providers import PARSERS
from processors.delivery.recipients import (
    EscalationPolicy,
    Health,
    Lift,
    Suppress,
    assess,
    decode_health,
    encode_health,
)
from processors.delivery.routes import routes_of
from processors.runtime.metrics import labelled
from processors.runtime.store import Due, StoreSpec
from processors.runtime.task import Record, Task, header
from processors.runtime.topology import Topology
from schemas import headers as h
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import (
    BounceClass,
    BounceDetected,
    ConversationEvent,
    EventType,
    MessageRoute,
    SuppressedRecipient,
)
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
    "convotrail_delivery_waiting", "Message refs with notifications waiting (this worker)"
)
SUPPRESSIONS = Counter(
    "convotrail_suppressions_total", "Changes to the suppression list", ["change"]
)
BOUNCES = Counter(
    "convotrail_delivery_bounces_total", "Bounces detected, by class", ["bounce_class"]
)
for _class in BounceClass:  # every class visible (at 0) from the start, for rate()
    BOUNCES.labels(_class.value)

LEDGER = "delivery-ledger"
HEALTH = "recipient-health"
EXPIRE = "expire"
_ROUTE_TYPES = {EventType.MESSAGE_ADDED.value.encode(), EventType.MESSAGE_SENT.value.encode()}


@dataclass(frozen=True)
class BounceOptions:
    app_id: str = "convotrail-bounces"
    # How long a notification waits for the event that introduces its message.
    wait: timedelta = timedelta(minutes=10)
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)


@dataclass(frozen=True)
class BounceApp:
    topics: TopicNames
    options: BounceOptions
    events: ModelCodec[ConversationEvent]
    facts: ModelCodec[ConversationEvent]
    routes: ModelCodec[MessageRoute]
    suppressions: ModelCodec[SuppressedRecipient]


class LedgerCodec:
    def encode(self, value: ledger.Ledger) -> bytes:
        return ledger.encode_ledger(value)

    def decode(self, data: bytes) -> ledger.Ledger:
        return ledger.decode_ledger(data)


class HealthCodec:
    def encode(self, value: Health) -> bytes:
        return encode_health(value)

    def decode(self, data: bytes) -> Health:
        return decode_health(data)


@dataclass(frozen=True)
class Parked:
    """A waiting notification as the record it came as, for its dead letter."""

    waiting: ledger.Waiting
    ref: bytes | None

    def topic(self) -> str:
        return self.waiting.source.partition("[")[0]

    def partition(self) -> int:
        return int(self.waiting.source.partition("[")[2].partition("]")[0] or -1)

    def offset(self) -> int:
        return int(self.waiting.source.rpartition("@")[2] or -1)

    def key(self) -> bytes | None:
        return self.ref

    def value(self) -> bytes:
        return self.waiting.body

    def headers(self) -> list[tuple[str, bytes]]:
        return [(h.PROVIDER, self.waiting.provider.encode())]

    def timestamp(self) -> tuple[int, int]:
        return (1, int(self.waiting.received_at.timestamp() * 1000))


def _now(task: Task[BounceApp]) -> datetime:
    return datetime.fromtimestamp(task.now() / 1000, UTC)


def _source(record: Record) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"


def _dead_letter(task: Task[BounceApp], record: Record, provider: str, reason: str,
                 error: str, account: str | None = None) -> None:  # fmt: skip
    labelled(NOTIFICATIONS, provider, "dead-lettered").inc()
    task.dead_letter(record, reason, error, reason, account=account)


def _parse(task: Task[BounceApp], record: Record, provider: str,
           body: bytes) -> list[Notification] | None:  # fmt: skip
    try:
        parsed: list[Notification] = PARSERS[provider].parse(body)
    except NotificationIgnored as exc:
        # Understood and about nothing that was delivered (an auto-reply): counted,
        # not dead-lettered, so the DLQ holds only what someone must look at.
        labelled(NOTIFICATIONS, provider, "ignored").inc()
        log.debug("ignored a %s notification: %s", provider, exc)
        return None
    except NotificationError as exc:
        _dead_letter(task, record, provider, exc.reason, str(exc))
        return None
    return parsed


def _account_hint(notifications: list[Notification]) -> str | None:
    return next((n.account_id for n in notifications if n.account_id), None)


def _dispatch(task: Task[BounceApp], record: Record, provider: str,
              notifications: list[Notification], body: bytes, received_at: datetime,
              current: ledger.Ledger | None, ref: bytes | None) -> bool:  # fmt: skip
    """Route one notification unit: facts, or `ambiguous-route` to the DLQ when several
    accounts own the ref and it names none. False when it has no route yet (it waits)."""
    found = ledger.route_for(current, _account_hint(notifications))
    if isinstance(found, ledger.Ambiguous):
        name = (ref or b"").decode(errors="replace")
        _dead_letter(task, record, provider, "ambiguous-route", found.message(name))
        return True
    if found is None:
        return False
    _emit_facts(task, record, provider, notifications, body, received_at, found)
    return True


def _emit_facts(task: Task[BounceApp], record: Record, provider: str,
                notifications: list[Notification], body: bytes, received_at: datetime,
                route: MessageRoute) -> None:  # fmt: skip
    """The delivery facts of one notification about a routed message."""
    app = task.app
    for notification in notifications:
        try:
            fact = facts.to_fact(notification, route, body, received_at)
        except facts.Unroutable as exc:
            _dead_letter(task, record, provider, exc.reason, str(exc), route.account_id)
            continue
        task.send(app.topics.delivery_facts, facts.recipient_key(fact),
                  app.facts.encode(fact), _type_header(fact.type))  # fmt: skip
    labelled(NOTIFICATIONS, provider, "routed").inc()


@cache
def _type_header(kind: EventType) -> list[tuple[str, bytes | str | None]]:
    return [(h.EVENT_TYPE, kind.value.encode())]


# -- step 1: conversation-events -> message-routes ------------------------------------------


def on_conversation_event(task: Task[BounceApp], record: Record) -> None:
    kind = header(record, h.EVENT_TYPE)
    if kind is not None and kind not in _ROUTE_TYPES:
        return  # most events introduce no message: skipped without decoding
    app = task.app
    try:
        event = app.events.decode(record.value())
    except SerdeError:
        return  # the conversation processor dead-letters it; nothing to learn
    if contract_check.skip_if_refused(task, record, event):
        return
    for route in routes_of(event):
        task.send(app.topics.message_routes, keys.message_ref(route.message_ref),
                  app.routes.encode(route))  # fmt: skip


# -- step 2: routes + notifications -> delivery-facts ---------------------------------------


def on_route(task: Task[BounceApp], record: Record) -> None:
    app = task.app
    try:
        route = app.routes.decode(record.value())
    except SerdeError as exc:
        task.dead_letter(record, exc.reason, str(exc), type(exc).__name__)
        return
    store = task.store(LEDGER)
    key = keys.message_ref(route.message_ref)
    updated, released = ledger.learn(store.get(key), route)
    for waiting in released:
        parked = Parked(waiting, key)
        notifications = _parse(task, parked, waiting.provider, waiting.body)
        if notifications is None:
            continue
        if _dispatch(task, parked, waiting.provider, notifications, waiting.body,
                     waiting.received_at, updated, key):  # fmt: skip
            labelled(NOTIFICATIONS, waiting.provider, "released").inc()
        else:
            # It names another account than those known so far: it keeps waiting.
            updated, _ = ledger.park(updated, waiting)
    store.put(key, updated)


def on_notification(task: Task[BounceApp], record: Record) -> None:
    provider = (header(record, h.PROVIDER) or b"").decode(errors="replace")
    if provider not in PARSERS:
        _dead_letter(
            task,
            record,
            "other",  # a label: never the header's own (unbounded) value
            "unknown-provider",
            f"header {h.PROVIDER!r} is {provider!r}, not one of {', '.join(PARSERS)}",
        )
        return  # fmt: skip
    key = record.key()
    store = task.store(LEDGER)
    current = store.get(key) if key is not None else None
    idempotency_key = header(record, h.IDEMPOTENCY_KEY)
    if key is not None and idempotency_key:
        # A provider's retry of a notification the intake had already written (its
        # reply was lost): the facts it yields were emitted or are waiting already.
        current, first = ledger.remember(current, idempotency_key.decode(errors="replace"))
        if not first:
            labelled(NOTIFICATIONS, provider, "duplicate").inc()
            return
        store.put(key, current)
    _kind, stamp = record.timestamp()
    now = _now(task)
    received_at = datetime.fromtimestamp(stamp / 1000, UTC) if stamp > 0 else now
    body = record.value() or b""
    # Parsed now: garbage goes to the DLQ, not to wait.
    notifications = _parse(task, record, provider, body)
    if notifications is None:
        return
    if _dispatch(task, record, provider, notifications, body, received_at, current, key):
        return
    waiting = ledger.Waiting(provider=provider, body=body, received_at=received_at,
                             parked_at=now, source=_source(record))  # fmt: skip
    if key is None:
        _dead_letter(task, record, provider, "no-message-ref",
                     "the record has no key naming its message")  # fmt: skip
        return
    updated, parked = ledger.park(current, waiting)
    if not parked:
        _dead_letter(
            task,
            record,
            provider,
            "too-many-waiting",
            f"{ledger.MAX_WAITING} notifications already wait for this message",
        )
        return  # fmt: skip
    store.put(key, updated)
    labelled(NOTIFICATIONS, provider, "waiting").inc()


def on_due(task: Task[BounceApp], store_name: str, due: Due) -> None:
    """Notifications that waited too long for their message go to the DLQ."""
    app = task.app
    store = task.store(LEDGER)
    current = store.get(due.key)
    if current is None:
        return
    updated, expired = ledger.expire(current, _now(task), app.options.wait)
    store.put(due.key, updated)
    for waiting in expired:
        _dead_letter(task, Parked(waiting, due.key), waiting.provider, "unknown-message",
                     f"no outbound message event named {due.key.decode(errors='replace')!r} "
                     f"within {app.options.wait.total_seconds():.0f} s")  # fmt: skip


def expiry(value: ledger.Ledger, wait: timedelta) -> list[tuple[int, str]]:
    deadline = ledger.deadline(value, wait)
    return [] if deadline is None else [(int(deadline.timestamp() * 1000), EXPIRE)]


# -- step 3: delivery-facts -> conversation-events + suppressed-recipients --------------------


def on_fact(task: Task[BounceApp], record: Record) -> None:
    app = task.app
    try:
        fact = app.facts.decode(record.value())
    except SerdeError as exc:
        task.dead_letter(record, exc.reason, str(exc), type(exc).__name__)
        return
    store = task.store(HEALTH)
    key = facts.recipient_key(fact)
    health, event, change = assess(store.get(key), fact, app.options.escalation)
    store.put(key, health)
    raw = record.value() or b""
    if event is fact and raw[:5] == app.facts.header:
        # Unchanged and written with the current schema: the same body, re-framed
        # for conversation-events (one encode less per notification).
        value = app.events.header + raw[5:]
    else:
        value = app.events.encode(event)
    task.send(app.topics.conversation_events, keys.of_event(event), value,
              _type_header(event.type))  # fmt: skip
    labelled(FACTS, event.type.value).inc()
    if isinstance(event.payload, BounceDetected):
        labelled(BOUNCES, event.payload.bounce_class.value).inc()
    if isinstance(change, Suppress):
        suppressed = change.record
        task.send(app.topics.suppressed_recipients,
                  keys.recipient(suppressed.account_id, suppressed.recipient),
                  app.suppressions.encode(suppressed))  # fmt: skip
        labelled(SUPPRESSIONS, "suppressed").inc()
    elif isinstance(change, Lift):
        task.send(app.topics.suppressed_recipients,
                  keys.recipient(change.account_id, change.recipient), None)  # fmt: skip
        labelled(SUPPRESSIONS, "lifted").inc()


def topology(
    settings: Settings, options: BounceOptions | None = None, registry: Registry | None = None
) -> Topology[BounceApp]:
    options = options or BounceOptions()
    names = settings.topics
    serde = AvroSerde(registry or clients.registry(settings))
    app = BounceApp(
        topics=names,
        options=options,
        events=ModelCodec(serde, names.conversation_events, ConversationEvent),
        facts=ModelCodec(serde, names.delivery_facts, ConversationEvent),
        routes=ModelCodec(serde, names.message_routes, MessageRoute),
        suppressions=ModelCodec(serde, names.suppressed_recipients, SuppressedRecipient),
    )
    dlq = names.delivery_notifications_dlq
    return Topology(
        app_id=f"{names.prefix}{options.app_id}",
        app=app,
        handlers={
            names.conversation_events: on_conversation_event,
            names.message_routes: on_route,
            names.delivery_notifications: on_notification,
            names.delivery_facts: on_fact,
        },
        dead_letters={
            names.conversation_events: names.conversation_events_dlq,
            names.message_routes: dlq,
            names.delivery_notifications: dlq,
            names.delivery_facts: dlq,
        },
        stores=(
            StoreSpec(
                LEDGER,
                LedgerCodec(),
                schedule=partial(expiry, wait=options.wait),
                schedule_version=str(options.wait.total_seconds()),
                scheduled_gauge=WAITING,
            ),
            StoreSpec(HEALTH, HealthCodec()),
        ),
        on_due=on_due,
        co_partitioned=True,
        outputs=(names.suppressed_recipients,),
        observed=frozenset({names.conversation_events}),  # dead-lettered by conversations
    )
