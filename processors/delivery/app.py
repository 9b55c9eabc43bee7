"""What the three steps of the bounce processor share: its options, the app its
handlers get (topic names, codecs), its stores and their value codecs, its metrics,
and the dead-letter call every refusal goes through (shell.py wires them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from prometheus_client import Counter, Gauge

from convotrail.settings import TopicNames
from processors.delivery import ledger
from processors.delivery.recipients import (
    EscalationPolicy,
    Health,
    decode_health,
    encode_health,
)
from processors.runtime.metrics import labelled
from processors.runtime.task import Record, Task
from schemas import headers as h
from schemas.codecs import ModelCodec
from schemas.model import (
    BounceClass,
    ConversationEvent,
    EventType,
    MessageRoute,
    SuppressedRecipient,
)

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
FORGET = "forget"  # the recipient index's messages leaving the window


@dataclass(frozen=True)
class BounceOptions:
    app_id: str = "convotrail-bounces"
    # How long a notification waits for the event that introduces its message.
    wait: timedelta = timedelta(minutes=10)
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)
    # How far back a notification that names no message looks for the latest message
    # sent to its recipient (by_recipient.py); zero turns routing by recipient off.
    recipient_window: timedelta = timedelta(days=7)


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


def now_of(task: Task[BounceApp]) -> datetime:
    return datetime.fromtimestamp(task.now() / 1000, UTC)


def dead_letter(task: Task[BounceApp], record: Record, provider: str, reason: str,
                error: str, account: str | None = None) -> None:  # fmt: skip
    labelled(NOTIFICATIONS, provider, "dead-lettered").inc()
    task.dead_letter(record, reason, error, reason, account=account)


@cache
def type_header(kind: EventType) -> list[tuple[str, bytes | str | None]]:
    return [(h.EVENT_TYPE, kind.value.encode())]
