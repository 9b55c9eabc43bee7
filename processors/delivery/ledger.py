"""The bounce processor's memory per message ref: its routes and what waits for it.

A ref is a provider's name for a message, and message ids are unique per account
only: two accounts may use one ref (platform message ids), so the ledger keeps one
route per account, and `route_for` refuses to pick between owners when the
notification does not say its account (`Ambiguous`). Globally unique refs (RFC 5322
Message-IDs, provider ids) normally have one owner.

It also remembers the idempotency keys of the last notifications about the ref
(`seen`), so a provider's retry of a notification the intake had already written is
ignored (`remember`).

Under a `recipient <address>` key (schemas/keys.py) the ledger holds the recipient
index instead of routes: the latest messages sent to that address, per account
(`recent`), which route the notifications that name no message. Its rules are in
by_recipient.py.

A notification can arrive before the event that introduces its message (the
platform publishes the message event late, or the route is still on its way
through message-routes). Rather than dead-letter it at once, the notification is
*parked* under its ref; the route's arrival releases it. A notification that waits
longer than the configured time is dead-lettered with reason `unknown-message`:
never silently dropped, never kept forever.

Pure: no I/O; `now` is passed in. The codec is here too, next to the shape it
stores.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from processors.delivery.notification import ACCOUNT_ID_ARG
from processors.framing import Reader, Writer
from schemas import compiled, contract
from schemas import model as m
from schemas.records import replace

# A ref with this many notifications waiting is a flood, not a race: further ones go
# to the DLQ at once instead of growing one table value without bound.
MAX_WAITING = 100
# Idempotency keys remembered per ref. A message has a few notifications (sent,
# delivered or bounced, opened...), and a retry follows its original within minutes to
# hours, with few others about the same message in between.
MAX_SEEN = 32


@dataclass(frozen=True, slots=True)
class Waiting:
    provider: str
    body: bytes  # the unit as it came from delivery-notifications
    received_at: datetime  # when the intake wrote it (the record's timestamp)
    parked_at: datetime  # when the processor parked it (its wait starts here)
    source: str  # "topic[partition]@offset", for the dead-letter headers


@dataclass(frozen=True, slots=True)
class Ledger:
    routes: tuple[m.MessageRoute, ...] = ()  # at most one per account, in learning order
    waiting: tuple[Waiting, ...] = ()
    seen: tuple[str, ...] = ()  # idempotency keys, oldest first, at most MAX_SEEN
    # The recipient index (a `recipient <address>` key only): routes with sent_at set,
    # oldest first, bounded per account and in all (by_recipient.py).
    recent: tuple[m.MessageRoute, ...] = ()
    # The newest sent_at of an entry dropped from `recent` for room: until it leaves
    # the window, an account-less notification cannot know every sender (ambiguous).
    evicted_until: datetime | None = None


def remember(ledger: Ledger | None, key: str) -> tuple[Ledger, bool]:
    """Note a notification's idempotency key; False if it was seen already (a retry)."""
    ledger = ledger or Ledger()
    if key in ledger.seen:
        return ledger, False
    return replace(ledger, seen=(*ledger.seen, key)[-MAX_SEEN:]), True


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several accounts own the ref and the notification names none of them."""

    accounts: tuple[str, ...]

    def message(self, ref: str) -> str:
        return (
            f"message ref {ref!r} is used by accounts {', '.join(self.accounts)} and the "
            f"notification does not say which (no {ACCOUNT_ID_ARG!r})"
        )


def route_for(ledger: Ledger | None, account_id: str | None) -> m.MessageRoute | Ambiguous | None:
    """The route a notification follows: its account's when it names one, else the only
    owner's; None when there is none yet (the notification waits)."""
    routes = ledger.routes if ledger is not None else ()
    if account_id is not None:
        return next((r for r in routes if r.account_id == account_id), None)
    if len(routes) > 1:
        return Ambiguous(tuple(r.account_id for r in routes))
    return routes[0] if routes else None


def learn(ledger: Ledger | None, route: m.MessageRoute) -> tuple[Ledger, tuple[Waiting, ...]]:
    """Record the route (replacing its account's earlier one); everything that waited is
    released, in arrival order, for the caller to route again (`route_for`) or re-park."""
    ledger = ledger or Ledger()
    kept = tuple(r for r in ledger.routes if r.account_id != route.account_id)
    return replace(ledger, routes=(*kept, route), waiting=()), ledger.waiting


def park(ledger: Ledger | None, waiting: Waiting) -> tuple[Ledger, bool]:
    """Park a notification whose message is unknown; False when the ref is full."""
    ledger = ledger or Ledger()
    if len(ledger.waiting) >= MAX_WAITING:
        return ledger, False
    return replace(ledger, waiting=(*ledger.waiting, waiting)), True


def expire(ledger: Ledger, now: datetime, wait: timedelta) -> tuple[Ledger, tuple[Waiting, ...]]:
    """Take out what has waited `wait` or longer."""
    expired = tuple(w for w in ledger.waiting if w.parked_at + wait <= now)
    if not expired:
        return ledger, ()
    kept = tuple(w for w in ledger.waiting if w.parked_at + wait > now)
    return replace(ledger, waiting=kept), expired


def deadline(ledger: Ledger, wait: timedelta) -> datetime | None:
    """When the first waiting notification expires; None when nothing waits."""
    if not ledger.waiting:
        return None
    return min(w.parked_at for w in ledger.waiting) + wait


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _dt(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


# 4: the recipient index (recent, evicted_until); 3: routes per account and the seen
# idempotency keys; 3, 2 (one route) and 1 (JSON) are still read.
LEDGER_FORMAT = 4


@cache
def _route_codec() -> compiled.CompiledCodec:
    return compiled.codec_for(contract.expanded_json(contract.MESSAGE_ROUTE))


@cache
def _route_codec_v3() -> compiled.CompiledCodec:
    """MessageRoute as formats 2 and 3 wrote it: before `sent_at` (a record's bytes
    are read with the schema they were written with)."""
    schema = contract.expand(contract.MESSAGE_ROUTE)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "sent_at"]
    return compiled.codec_for(json.dumps(schema, sort_keys=True))


def encode_ledger(ledger: Ledger) -> bytes:
    """Format 4 (processors/framing.py); `decode_ledger` also reads formats 3, 2 and 1."""
    out = Writer(LEDGER_FORMAT)
    out.varint(len(ledger.routes))
    for route in ledger.routes:
        out.record(_route_codec(), route)
    out.varint(len(ledger.waiting))
    for w in ledger.waiting:
        out.string(w.provider)
        out.raw(w.body)
        out.optional_ms(w.received_at)
        out.optional_ms(w.parked_at)
        out.string(w.source)
    out.strings(ledger.seen)
    out.varint(len(ledger.recent))
    for route in ledger.recent:
        out.record(_route_codec(), route)
    out.optional_ms(ledger.evicted_until)
    return out.bytes()


def decode_ledger(data: bytes) -> Ledger:
    if data[:1] == b"{":
        return _decode_ledger_json(data)
    if not data or data[0] not in (2, 3, LEDGER_FORMAT):
        raise ValueError(f"unknown ledger format {data[:1]!r}")
    read = Reader(data)
    # Format 2 wrote 0 or 1 then the route; formats 3 and 4 the count then the routes.
    codec = _route_codec() if data[0] == LEDGER_FORMAT else _route_codec_v3()
    routes = tuple(read.record(codec) for _ in range(read.varint()))
    waiting = []
    for _ in range(read.varint()):
        provider, body = read.string(), read.raw()
        received_at, parked_at = read.optional_ms(), read.optional_ms()
        assert received_at is not None and parked_at is not None
        waiting.append(Waiting(provider, body, received_at, parked_at, read.string()))
    seen = read.strings() if data[0] >= 3 else ()
    if data[0] < 4:
        return Ledger(routes=routes, waiting=tuple(waiting), seen=seen)
    recent = tuple(read.record(_route_codec()) for _ in range(read.varint()))
    return Ledger(routes=routes, waiting=tuple(waiting), seen=seen, recent=recent,
                  evicted_until=read.optional_ms())  # fmt: skip


def encode_ledger_json(ledger: Ledger) -> bytes:
    """Format 1, as the first versions wrote it (tests of the upgrade path)."""
    route = ledger.routes[0].to_avro() if ledger.routes else None
    if route is not None:
        del route["sent_at"]  # a field added since
    waiting = [
        {
            "provider": w.provider,
            "body": base64.b64encode(w.body).decode(),
            "received_at": _ms(w.received_at),
            "parked_at": _ms(w.parked_at),
            "source": w.source,
        }
        for w in ledger.waiting
    ]
    return json.dumps({"route": route, "waiting": waiting}, separators=(",", ":")).encode()


def _decode_ledger_json(data: bytes) -> Ledger:
    raw: dict[str, Any] = json.loads(data)
    route = None
    if raw["route"] is not None:
        route = m.MessageRoute.from_avro({"sent_at": None, **raw["route"]})
    waiting = tuple(
        Waiting(
            provider=w["provider"],
            body=base64.b64decode(w["body"]),
            received_at=_dt(w["received_at"]),
            parked_at=_dt(w["parked_at"]),
            source=w["source"],
        )
        for w in raw["waiting"]
    )
    return Ledger(routes=() if route is None else (route,), waiting=waiting)
