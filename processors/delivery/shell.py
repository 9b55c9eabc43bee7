"""The bounce processor on the stream runtime: three steps, one loop, one transaction.

    conversation-events --(routes_of)--> message-routes (compacted, keyed by message ref)

    message-routes + delivery-notifications (both keyed by ref, co-partitioned)
        --(ledger: learn / park / expire, one route per account; providers: parse;
           by_recipient: a notification naming no message, keyed `recipient <addr>`;
           facts: to_fact)-->
        delivery-facts (keyed by account|recipient)
        delivery-notifications.dlq (unparseable, unknown message, unroutable,
                                    ambiguous-route: a ref of several accounts, or a
                                    recipient several accounts mailed, and a
                                    notification that names none)

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

Steps 1 and 3 and the wiring are here; step 2 is detect.py; what they share (options,
stores, metrics) is app.py.
"""

from __future__ import annotations

import logging
from functools import partial

from convotrail import clients
from convotrail.settings import Settings
from processors import contract_check
from processors.delivery import facts

# The step-2 handlers and what the steps share: importable from here, the processor's
# entry point (catalog.py, the tests, rekey).
from processors.delivery.app import (
    BOUNCES,
    EXPIRE,
    FACTS,
    FORGET,
    HEALTH,
    LEDGER,
    NOTIFICATIONS,
    SUPPRESSIONS,
    WAITING,
    BounceApp,
    BounceOptions,
    HealthCodec,
    LedgerCodec,
    type_header,
)
from processors.delivery.detect import Parked, expiry, on_due, on_notification, on_route
from processors.delivery.recipients import Lift, Suppress, assess
from processors.delivery.routes import routes_of
from processors.runtime.metrics import labelled
from processors.runtime.store import StoreSpec
from processors.runtime.task import Record, Task, header
from processors.runtime.topology import Topology
from schemas import headers as h
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import (
    BounceDetected,
    ConversationEvent,
    EventType,
    MessageRoute,
    SuppressedRecipient,
)
from schemas.registry import Registry
from schemas.serde import AvroSerde

__all__ = [
    "BOUNCES", "EXPIRE", "FACTS", "FORGET", "HEALTH", "LEDGER", "NOTIFICATIONS",
    "SUPPRESSIONS", "WAITING", "BounceApp", "BounceOptions", "Parked", "expiry",
    "on_conversation_event", "on_due", "on_fact", "on_notification", "on_route", "topology",
]  # fmt: skip

log = logging.getLogger(__name__)

_ROUTE_TYPES = {EventType.MESSAGE_ADDED.value.encode(), EventType.MESSAGE_SENT.value.encode()}


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
    indexed = bool(app.options.recipient_window)
    for route in routes_of(event):
        if not indexed and keys.recipient_of_route(route.message_ref) is not None:
            continue  # routing by recipient is off: no index to feed
        task.send(app.topics.message_routes, keys.message_ref(route.message_ref),
                  app.routes.encode(route))  # fmt: skip


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
              type_header(event.type))  # fmt: skip
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
                schedule=partial(expiry, wait=options.wait, window=options.recipient_window),
                schedule_version=(
                    f"{options.wait.total_seconds()}:{options.recipient_window.total_seconds()}"
                ),
                scheduled_gauge=WAITING,
                gauge_tag=EXPIRE,  # waiting notifications, not the index's housekeeping
            ),
            StoreSpec(HEALTH, HealthCodec()),
        ),
        on_due=on_due,
        co_partitioned=True,
        outputs=(names.suppressed_recipients,),
        observed=frozenset({names.conversation_events}),  # dead-lettered by conversations
    )
