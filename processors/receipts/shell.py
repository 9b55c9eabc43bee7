"""The receipts processor on the stream runtime.

    conversation-events --(core.track)--> read-receipts (compacted, one per message and viewer)
                                     \\-> delivery-status (compacted, one per message and recipient)

Store `message-tracks`: each message's Track, keyed by account and message_id
(keys.message_track; message ids are unique per account only). Its keys are not the
topic's (account and conversation_id), but every event of a message belongs to one
conversation, so they all arrive on one partition, the task's.

Only the message event types are decoded (the `event_type` header tells them
apart); everything else is skipped at the cost of reading a header. Outputs are
compacted upserts: the newest receipt or status per key per commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import Counter

from convotrail import clients
from convotrail.settings import Settings, TopicNames
from processors import contract_check
from processors.receipts.codec import decode_track, encode_track
from processors.receipts.core import TRACKED, Track, message_id_of, track
from processors.receipts.scanner import ScannerRule
from processors.runtime.metrics import labelled
from processors.runtime.store import StoreSpec
from processors.runtime.task import Record, Task, header
from processors.runtime.topology import Topology
from schemas import headers as h
from schemas import keys
from schemas.codecs import ModelCodec
from schemas.errors import SerdeError
from schemas.model import ConversationEvent, DeliveryStatus, ReadReceipt
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

EVENTS_IN = Counter(
    "convotrail_receipts_events_total", "Message events read by outcome", ["outcome"]
)
AUTOMATED = Counter(
    "convotrail_receipts_automated_views_total", "Customer views judged automated (scanners)"
)

TRACKS = "message-tracks"
RECEIPTS, STATUSES = "receipts", "statuses"
_TRACKED_HEADERS = {t.value.encode() for t in TRACKED}


@dataclass(frozen=True)
class ReceiptsOptions:
    app_id: str = "convotrail-receipts"
    rule: ScannerRule = field(default_factory=ScannerRule)


@dataclass(frozen=True)
class ReceiptsApp:
    topics: TopicNames
    options: ReceiptsOptions
    events: ModelCodec[ConversationEvent]
    receipts: ModelCodec[ReadReceipt]
    statuses: ModelCodec[DeliveryStatus]


class TrackCodec:
    def encode(self, value: Track) -> bytes:
        return encode_track(value)

    def decode(self, data: bytes) -> Track:
        return decode_track(data)


def _automated_before(previous: Track | None, receipt: ReadReceipt) -> int:
    for viewer in previous.viewers if previous is not None else ():
        if (viewer.receipt.viewer_kind, viewer.receipt.viewer_id) == (
            receipt.viewer_kind,
            receipt.viewer_id,
        ):
            return viewer.receipt.automated_view_count
    return 0


def on_event(task: Task[ReceiptsApp], record: Record) -> None:
    kind = header(record, h.EVENT_TYPE)
    if kind is not None and kind not in _TRACKED_HEADERS:
        labelled(EVENTS_IN, "skipped").inc()
        return
    app = task.app
    try:
        event = app.events.decode(record.value())
    except SerdeError:
        labelled(EVENTS_IN, "undecodable").inc()  # the conversation processor dead-letters it
        return
    if contract_check.skip_if_refused(task, record, event):
        return
    message_id = message_id_of(event)
    if message_id is None:
        labelled(EVENTS_IN, "skipped").inc()
        return
    store = task.store(TRACKS)
    key = keys.message_track(event.account_id, message_id)
    previous = store.get(key)
    current, changes = track(previous, event, app.options.rule)
    labelled(EVENTS_IN, "applied").inc()
    store.put(key, current)
    receipts = task.pending.setdefault(RECEIPTS, {})
    for receipt in changes.receipts:
        receipts[keys.read_receipt(receipt)] = receipt
        AUTOMATED.inc(receipt.automated_view_count - _automated_before(previous, receipt))
    statuses = task.pending.setdefault(STATUSES, {})
    for status in changes.statuses:
        statuses[keys.delivery_status(status)] = status


def before_commit(task: Task[ReceiptsApp]) -> None:
    """The newest receipt and status per key, once per commit."""
    app = task.app
    for key, receipt in task.pending.pop(RECEIPTS, {}).items():
        task.send(app.topics.read_receipts, key, app.receipts.encode(receipt))
    for key, status in task.pending.pop(STATUSES, {}).items():
        task.send(app.topics.delivery_status, key, app.statuses.encode(status))


def topology(
    settings: Settings, options: ReceiptsOptions | None = None, registry: Registry | None = None
) -> Topology[ReceiptsApp]:
    options = options or ReceiptsOptions()
    names = settings.topics
    serde = AvroSerde(registry or clients.registry(settings))
    app = ReceiptsApp(
        topics=names,
        options=options,
        events=ModelCodec(serde, names.conversation_events, ConversationEvent),
        receipts=ModelCodec(serde, names.read_receipts, ReadReceipt),
        statuses=ModelCodec(serde, names.delivery_status, DeliveryStatus),
    )
    return Topology(
        app_id=f"{names.prefix}{options.app_id}",
        app=app,
        handlers={names.conversation_events: on_event},
        dead_letters={names.conversation_events: names.conversation_events_dlq},
        stores=(StoreSpec(TRACKS, TrackCodec()),),
        before_commit=before_commit,
        outputs=(names.read_receipts, names.delivery_status),
        observed=frozenset({names.conversation_events}),  # dead-lettered by conversations
    )
