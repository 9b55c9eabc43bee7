"""Step 2 of the bounce processor: message-routes + delivery-notifications -> facts.

Both inputs are keyed by message ref (co-partitioned), so a notification meets the
ledger entry of the ref it names: its routes (one per account), the notifications
waiting for them, the idempotency keys seen. A notification that names no message
is keyed `recipient <address>` instead and meets that address's recipient index
(by_recipient.py). Parsed at once (garbage goes to the DLQ, not to wait); routed to
facts, or parked until its route comes, or dead-lettered when the ledger store's
schedule says it waited long enough (`on_due`, which also lets the recipient index
forget what left its window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from processors.delivery import by_recipient, facts, ledger
from processors.delivery.app import (
    EXPIRE,
    FORGET,
    LEDGER,
    NOTIFICATIONS,
    BounceApp,
    BounceOptions,
    dead_letter,
    now_of,
    type_header,
)
from processors.delivery.notification import (
    Notification,
    NotificationError,
    NotificationIgnored,
)
from processors.delivery.providers import PARSERS
from processors.runtime.metrics import labelled
from processors.runtime.store import Due
from processors.runtime.task import Record, Task, header
from schemas import headers as h
from schemas import keys
from schemas.errors import SerdeError
from schemas.model import MatchedBy, MessageRoute

log = logging.getLogger(__name__)


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


def _source(record: Record) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"


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
        dead_letter(task, record, provider, exc.reason, str(exc))
        return None
    return parsed


def _account_hint(notifications: list[Notification]) -> str | None:
    return next((n.account_id for n in notifications if n.account_id), None)


def _dispatch(task: Task[BounceApp], record: Record, provider: str,
              notifications: list[Notification], body: bytes, received_at: datetime,
              current: ledger.Ledger | None, ref: bytes | None) -> bool:  # fmt: skip
    """Route one notification unit: facts, or `ambiguous-route` to the DLQ when several
    accounts own the ref (or mailed the recipient) and it names none. False when it
    has no route yet (it waits)."""
    if not any(n.message_refs for n in notifications):
        return _dispatch_by_recipient(task, record, provider, notifications, body,
                                      received_at, current, ref)  # fmt: skip
    found = ledger.route_for(current, _account_hint(notifications))
    if isinstance(found, ledger.Ambiguous):
        name = (ref or b"").decode(errors="replace")
        dead_letter(task, record, provider, "ambiguous-route", found.message(name))
        return True
    if found is None:
        return False
    _emit_facts(task, record, provider, notifications, body, received_at, found,
                MatchedBy.MESSAGE_REF)  # fmt: skip
    return True


def _dispatch_by_recipient(task: Task[BounceApp], record: Record, provider: str,
                           notifications: list[Notification], body: bytes,
                           received_at: datetime, current: ledger.Ledger | None,
                           ref: bytes | None) -> bool:  # fmt: skip
    """A unit that names no message (a bounce email without the original's
    Message-ID): the latest message sent to its recipient (by_recipient.py). The
    intake keys it by its first recipient; the facts of its other recipients follow
    the same message, as one bounce email returns one message."""
    window = task.app.options.recipient_window
    if not window:
        dead_letter(task, record, provider, "unknown-message",
                    "the notification names no message, and routing by recipient is off "
                    "(CONVOTRAIL_RECIPIENT_WINDOW_DAYS=0)")  # fmt: skip
        return True
    by_key = {keys.recipient_route(n.recipient): n.recipient for n in notifications
              if n.recipient}  # fmt: skip
    if ref not in by_key:
        # Not filed where its recipient's index is: it can never be routed.
        if by_key:
            why = f"its record is not keyed {next(iter(by_key)).decode()!r}"
        else:
            why = "no recipient either"
        dead_letter(task, record, provider, "no-message-ref",
                    f"the notification names no message and {why}")  # fmt: skip
        return True
    first = notifications[0]
    at = by_recipient.bounce_time(first.occurred_at, received_at)
    found = by_recipient.route_for(current, _account_hint(notifications), at, window)
    if isinstance(found, by_recipient.Ambiguous):
        dead_letter(task, record, provider, "ambiguous-route",
                    found.message(by_key[ref], window))  # fmt: skip
        return True
    if found is None:
        return False
    _emit_facts(task, record, provider, notifications, body, received_at, found,
                MatchedBy.RECIPIENT)  # fmt: skip
    return True


def _emit_facts(task: Task[BounceApp], record: Record, provider: str,
                notifications: list[Notification], body: bytes, received_at: datetime,
                route: MessageRoute, matched_by: MatchedBy) -> None:  # fmt: skip
    """The delivery facts of one notification about a routed message."""
    app = task.app
    for notification in notifications:
        try:
            fact = facts.to_fact(notification, route, body, received_at, matched_by)
        except facts.Unroutable as exc:
            dead_letter(task, record, provider, exc.reason, str(exc), route.account_id)
            continue
        task.send(app.topics.delivery_facts, facts.recipient_key(fact),
                  app.facts.encode(fact), type_header(fact.type))  # fmt: skip
    labelled(NOTIFICATIONS, provider, "routed").inc()


def on_route(task: Task[BounceApp], record: Record) -> None:
    app = task.app
    try:
        route = app.routes.decode(record.value())
    except SerdeError as exc:
        task.dead_letter(record, exc.reason, str(exc), type(exc).__name__)
        return
    store = task.store(LEDGER)
    key = keys.message_ref(route.message_ref)
    current = store.get(key)
    if keys.recipient_of_route(route.message_ref) is None:
        updated, released = ledger.learn(current, route)
    else:
        window = app.options.recipient_window
        if not window:
            return  # routing by recipient is off: no index to keep
        updated, released = by_recipient.learn(current, route, window)
        if updated is current or by_recipient.is_empty(updated):
            return  # nothing new: a message the index knew, or one without a time
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
        dead_letter(
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
    now = now_of(task)
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
        dead_letter(task, record, provider, "no-message-ref",
                    "the record has no key naming its message")  # fmt: skip
        return
    updated, parked = ledger.park(current, waiting)
    if not parked:
        dead_letter(
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
    """Notifications that waited too long for their message go to the DLQ; the
    recipient index forgets what left its window (either tag: both are done)."""
    app = task.app
    store = task.store(LEDGER)
    current = store.get(due.key)
    if current is None:
        return
    now = now_of(task)
    updated, expired = ledger.expire(current, now, app.options.wait)
    updated = by_recipient.forget(updated, now, app.options.recipient_window)
    indexed = keys.recipient_of_route(due.key.decode(errors="replace")) is not None
    if indexed and by_recipient.is_empty(updated):
        store.delete(due.key)  # an address nobody mailed within the window: no state left
    else:
        store.put(due.key, updated)
    for waiting in expired:
        dead_letter(task, Parked(waiting, due.key), waiting.provider, "unknown-message",
                    _unknown(due.key, app.options))  # fmt: skip


def _unknown(key: bytes, options: BounceOptions) -> str:
    text = key.decode(errors="replace")
    wait = f"{options.wait.total_seconds():.0f} s"
    address = keys.recipient_of_route(text)
    if address is None:
        return f"no outbound message event named {text!r} within {wait}"
    return (
        f"the notification names no message, and no outbound message to {address!r} "
        f"sent within {by_recipient.describe_window(options.recipient_window)} before it came "
        f"within {wait}"
    )


def expiry(value: ledger.Ledger, wait: timedelta, window: timedelta) -> list[tuple[int, str]]:
    entries = []
    deadline = ledger.deadline(value, wait)
    if deadline is not None:
        entries.append((int(deadline.timestamp() * 1000), EXPIRE))
    forget_at = by_recipient.forget_at(value, window)
    if forget_at is not None:
        entries.append((int(forget_at.timestamp() * 1000), FORGET))
    return entries
