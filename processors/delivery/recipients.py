"""Recipient health: soft-bounce escalation and the suppression list, per account.

Keyed by '<account_id>|<recipient>' (schemas/keys.py; delivery-facts is partitioned so), one
`Health` per address holds what the rules below need. `assess` is a function of
(health, fact, policy): no I/O, no clock.

Rules (docs/delivery.md, "Escalation and suppression"):

- a HARD bounce suppresses the recipient (reason HARD_BOUNCE);
- a delay (`delayed`: the server still retries) neither suppresses nor counts;
- SOFT bounces are counted per distinct message (a provider retrying one message
  reports it again and again; that is one bounce, not several); when `limit` soft
  bounces on distinct messages fall inside `window` (measured back from the newest
  one) the bounce that reaches the limit is escalated: its class becomes HARD,
  `escalated` is set, and the recipient is suppressed (REPEATED_SOFT_BOUNCES);
- POLICY and UNKNOWN bounces suppress nothing: a policy refusal is about the sender
  or the content, not about the address;
- a complaint suppresses the recipient (COMPLAINT), and a delivery does not lift it:
  the customer asked not to be mailed;
- a delivery later (in event time) than a bounce clears it: soft bounces before it
  stop counting, and a bounce suppression older than it is lifted (a tombstone on
  suppressed-recipients). A bounce older than the latest delivery is reported but
  suppresses nothing, so the outcome does not depend on arrival order.

Idempotent: applying the same fact twice changes nothing the second time (soft
bounces are kept by message, suppression keeps its first cause), which is what
at-least-once reprocessing needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from processors.framing import Reader, Writer
from schemas import compiled, contract
from schemas import model as m
from schemas.records import replace

SOFT_BOUNCE_CAP = 50  # more than any sane limit; keeps one value bounded


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    limit: int = 3
    window: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Health:
    # Distinct messages that soft-bounced, with the bounce's event time.
    soft_bounces: tuple[tuple[str, datetime], ...] = ()
    suppression: m.SuppressedRecipient | None = None
    last_delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Suppress:
    record: m.SuppressedRecipient


@dataclass(frozen=True, slots=True)
class Lift:
    account_id: str
    recipient: str


Change = Suppress | Lift | None


def _after_delivery(health: Health, at: datetime) -> bool:
    return health.last_delivered_at is None or at > health.last_delivered_at


def _suppression(
    event: m.ConversationEvent, reason: m.SuppressionReason, bounce: m.BounceDetected | None
) -> m.SuppressedRecipient:
    payload = event.payload
    recipient: str = getattr(payload, "recipient", "")
    message_id: str = getattr(payload, "message_id", "")
    return m.SuppressedRecipient(
        account_id=event.account_id,
        recipient=recipient,
        reason=reason,
        bounce_class=bounce.bounce_class if bounce is not None else None,
        smtp_status=bounce.smtp_status if bounce is not None else None,
        diagnostic=bounce.diagnostic if bounce is not None else None,
        message_id=message_id,
        conversation_id=event.conversation_id,
        suppressed_at=event.occurred_at,
        last_event_id=event.event_id,
    )


def _suppress(health: Health, record: m.SuppressedRecipient) -> tuple[Health, Change]:
    if health.suppression is not None:
        return health, None  # already suppressed: the first cause stands
    return replace(health, suppression=record), Suppress(record)


def _bounce(
    health: Health, event: m.ConversationEvent, bounce: m.BounceDetected, policy: EscalationPolicy
) -> tuple[Health, m.ConversationEvent, Change]:
    at = event.occurred_at
    if not _after_delivery(health, at):
        return health, event, None  # stale: the address took mail after this bounce
    if bounce.delayed:
        # A delay warning: the server is still trying, the address was never shown
        # bad. Whatever its class, it neither suppresses nor counts as a soft bounce.
        return health, event, None
    if bounce.bounce_class is m.BounceClass.HARD:
        record = _suppression(event, m.SuppressionReason.HARD_BOUNCE, bounce)
        health, change = _suppress(health, record)
        return health, event, change
    if bounce.bounce_class is not m.BounceClass.SOFT:
        return health, event, None
    counted = dict(health.soft_bounces)
    counted.setdefault(bounce.message_id, at)
    ordered = sorted(counted.items(), key=lambda item: item[1])[-SOFT_BOUNCE_CAP:]
    health = replace(health, soft_bounces=tuple(ordered))
    in_window = [t for _, t in ordered if at - policy.window < t <= at]
    if len(in_window) < policy.limit:
        return health, event, None
    escalated = replace(bounce, bounce_class=m.BounceClass.HARD, escalated=True)
    event = replace(event, payload=escalated)
    record = _suppression(event, m.SuppressionReason.REPEATED_SOFT_BOUNCES, escalated)
    health, change = _suppress(health, record)
    return health, event, change


def _delivered(health: Health, event: m.ConversationEvent) -> tuple[Health, Change]:
    at = event.occurred_at
    if not _after_delivery(health, at):
        return health, None
    soft = tuple((mid, t) for mid, t in health.soft_bounces if t > at)
    health = replace(health, last_delivered_at=at, soft_bounces=soft)
    current = health.suppression
    if (
        current is not None
        and current.reason is not m.SuppressionReason.COMPLAINT
        and current.suppressed_at < at
    ):
        return replace(health, suppression=None), Lift(current.account_id, current.recipient)
    return health, None


def assess(
    health: Health | None, event: m.ConversationEvent, policy: EscalationPolicy
) -> tuple[Health, m.ConversationEvent, Change]:
    """Apply one delivery fact: the new health, the event to append (escalated when
    the rules say so) and the change to the suppression list, if any."""
    health = health or Health()
    payload = event.payload
    if isinstance(payload, m.BounceDetected):
        return _bounce(health, event, payload, policy)
    if isinstance(payload, m.MessageDelivered):
        health, change = _delivered(health, event)
        return health, event, change
    if isinstance(payload, m.CustomerMarkedSpam):
        record = _suppression(event, m.SuppressionReason.COMPLAINT, None)
        if health.suppression is not None and health.suppression.reason is not (
            m.SuppressionReason.COMPLAINT
        ):
            # A complaint outranks a bounce: it is not lifted by a delivery.
            return replace(health, suppression=record), event, Suppress(record)
        health, change = _suppress(health, record)
        return health, event, change
    return health, event, None


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _dt(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


HEALTH_FORMAT = 2


@cache
def _suppression_codec() -> compiled.CompiledCodec:
    return compiled.codec_for(contract.expanded_json(contract.SUPPRESSED_RECIPIENT))


def encode_health(health: Health) -> bytes:
    """Format 2 (processors/framing.py); `decode_health` also reads format 1, JSON."""
    out = Writer(HEALTH_FORMAT)
    out.varint(len(health.soft_bounces))
    for message_id, at in health.soft_bounces:
        out.string(message_id)
        out.optional_ms(at)
    out.optional_ms(health.last_delivered_at)
    if health.suppression is None:
        out.varint(0)
    else:
        out.varint(1)
        out.record(_suppression_codec(), health.suppression)
    return out.bytes()


def decode_health(data: bytes) -> Health:
    if data[:1] == b"{":
        return _decode_health_json(data)
    if not data or data[0] != HEALTH_FORMAT:
        raise ValueError(f"unknown health format {data[:1]!r}")
    read = Reader(data)
    soft = []
    for _ in range(read.varint()):
        message_id = read.string()
        at = read.optional_ms()
        assert at is not None
        soft.append((message_id, at))
    delivered = read.optional_ms()
    suppression = read.record(_suppression_codec()) if read.varint() else None
    return Health(soft_bounces=tuple(soft), suppression=suppression, last_delivered_at=delivered)


def encode_health_json(health: Health) -> bytes:
    """Format 1, as the first versions wrote it (tests of the upgrade path)."""
    data: dict[str, Any] = {
        "soft": [[mid, _ms(t)] for mid, t in health.soft_bounces],
        "delivered": _ms(health.last_delivered_at) if health.last_delivered_at else None,
        "suppression": None,
    }
    if health.suppression is not None:
        record = health.suppression.to_avro()
        record["suppressed_at"] = _ms(health.suppression.suppressed_at)
        data["suppression"] = record
    return json.dumps(data, separators=(",", ":")).encode()


def _decode_health_json(data: bytes) -> Health:
    raw: dict[str, Any] = json.loads(data)
    suppression = None
    if raw["suppression"] is not None:
        record = dict(raw["suppression"])
        record["suppressed_at"] = _dt(record["suppressed_at"])
        suppression = m.SuppressedRecipient.from_avro(record)
    return Health(
        soft_bounces=tuple((mid, _dt(t)) for mid, t in raw["soft"]),
        suppression=suppression,
        last_delivered_at=_dt(raw["delivered"]) if raw["delivered"] is not None else None,
    )
