"""The bounce processor's memory per message ref: its route and what waits for it.

A notification can arrive before the event that introduces its message (the
platform publishes the message event late, or the route is still on its way
through message-routes). Rather than dead-letter it at once, the notification is
*parked* under its ref; the route's arrival releases it. A notification that waits
longer than the configured time is dead-lettered with reason `unknown-message`:
never silently dropped, never kept forever.

It also remembers the idempotency keys of the last notifications about the ref
(`seen`), so a provider's retry of a notification the intake had already written is
ignored (`remember`).

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
    route: m.MessageRoute | None = None
    waiting: tuple[Waiting, ...] = ()
    seen: tuple[str, ...] = ()  # idempotency keys, oldest first, at most MAX_SEEN


def remember(ledger: Ledger | None, key: str) -> tuple[Ledger, bool]:
    """Note a notification's idempotency key; False if it was seen already (a retry)."""
    ledger = ledger or Ledger()
    if key in ledger.seen:
        return ledger, False
    return replace(ledger, seen=(*ledger.seen, key)[-MAX_SEEN:]), True


def learn(ledger: Ledger | None, route: m.MessageRoute) -> tuple[Ledger, tuple[Waiting, ...]]:
    """Record the route; everything that waited for it is released, in arrival order."""
    released = ledger.waiting if ledger is not None else ()
    seen = ledger.seen if ledger is not None else ()
    return Ledger(route=route, waiting=(), seen=seen), released


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


LEDGER_FORMAT = 3  # 2 plus the seen keys; format 2 is still read


@cache
def _route_codec() -> compiled.CompiledCodec:
    return compiled.codec_for(contract.expanded_json(contract.MESSAGE_ROUTE))


def encode_ledger(ledger: Ledger) -> bytes:
    """Format 3 (processors/framing.py); `decode_ledger` also reads format 2 and
    format 1, JSON."""
    out = Writer(LEDGER_FORMAT)
    if ledger.route is None:
        out.varint(0)
    else:
        out.varint(1)
        out.record(_route_codec(), ledger.route)
    out.varint(len(ledger.waiting))
    for w in ledger.waiting:
        out.string(w.provider)
        out.raw(w.body)
        out.optional_ms(w.received_at)
        out.optional_ms(w.parked_at)
        out.string(w.source)
    out.strings(ledger.seen)
    return out.bytes()


def decode_ledger(data: bytes) -> Ledger:
    if data[:1] == b"{":
        return _decode_ledger_json(data)
    if not data or data[0] not in (2, LEDGER_FORMAT):
        raise ValueError(f"unknown ledger format {data[:1]!r}")
    read = Reader(data)
    route = read.record(_route_codec()) if read.varint() else None
    waiting = []
    for _ in range(read.varint()):
        provider, body = read.string(), read.raw()
        received_at, parked_at = read.optional_ms(), read.optional_ms()
        assert received_at is not None and parked_at is not None
        waiting.append(Waiting(provider, body, received_at, parked_at, read.string()))
    seen = read.strings() if data[0] == LEDGER_FORMAT else ()
    return Ledger(route=route, waiting=tuple(waiting), seen=seen)


def encode_ledger_json(ledger: Ledger) -> bytes:
    """Format 1, as the first versions wrote it (tests of the upgrade path)."""
    route = ledger.route.to_avro() if ledger.route is not None else None
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
    route = m.MessageRoute.from_avro(raw["route"]) if raw["route"] is not None else None
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
    return Ledger(route=route, waiting=waiting)
