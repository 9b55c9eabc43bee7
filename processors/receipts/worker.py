"""The stream shell of the receipts processor: a faust-streaming app, one agent.

    conversation-events --(core.track)--> read-receipts (compacted, one per message and viewer)
                                     \\-> delivery-status (compacted, one per message and recipient)

The table `message-tracks` is keyed by message_id. Its keys are not the topic's
(conversation_id) but every event of a message belongs to one conversation, so
they all arrive on one partition, and the table writes go to that partition's
changelog (the current event's; see make_current).

Only the seven message event types are decoded (the `event_type` header tells
them apart); everything else is skipped at the cost of reading a header.

Delivery guarantee as in the conversation worker: outputs sent and acknowledged,
then the table written, then the batch acked. Outputs are compacted upserts of the
latest receipt or status (the newest per key per batch), so a reprocessed batch
rewrites the same values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from prometheus_client import Counter

from convotrail.settings import Settings
from processors.conversation.worker import (
    BATCH_SIZE,
    BATCH_WITHIN,
    WorkerOptions,
    make_current,
)
from processors.receipts.codec import decode_track, encode_track
from processors.receipts.core import TRACKED, Track, message_id_of, track
from processors.receipts.scanner import ScannerRule
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
from schemas.model import ConversationEvent, DeliveryStatus, ReadReceipt
from schemas.registry import Registry
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

EVENTS_IN = Counter(
    "convotrail_receipts_events_total", "Message events read by outcome", ["outcome"]
)
OUTPUTS = Counter("convotrail_receipts_outputs_total", "Records produced", ["topic"])
AUTOMATED = Counter(
    "convotrail_receipts_automated_views_total", "Customer views judged automated (scanners)"
)

TABLE_NAME = "message-tracks"
_TRACKED_HEADERS = {t.value.encode() for t in TRACKED}


@dataclass(frozen=True)
class ReceiptsOptions:
    worker: WorkerOptions = field(
        default_factory=lambda: WorkerOptions(app_id="convotrail-receipts", timers=False)
    )
    rule: ScannerRule = field(default_factory=ScannerRule)


def receipt_key(receipt: ReadReceipt) -> bytes:
    """read-receipts key: one record per message *and viewer* survives compaction."""
    return f"{receipt.message_id}/{receipt.viewer_kind.value}/{receipt.viewer_id}".encode()


def status_key(status: DeliveryStatus) -> bytes:
    return f"{status.message_id}/{status.recipient}".encode()


def receipts_data_dir(settings: Settings) -> Path:
    return settings.home / "receipts"


def _automated_before(previous: Track | None, receipt: ReadReceipt) -> int:
    for viewer in previous.viewers if previous is not None else ():
        if (viewer.receipt.viewer_kind, viewer.receipt.viewer_id) == (
            receipt.viewer_kind,
            receipt.viewer_id,
        ):
            return viewer.receipt.automated_view_count
    return 0


def create_receipts_app(settings: Settings, options: ReceiptsOptions | None = None) -> faust.App:
    options = options or ReceiptsOptions()
    topics = settings.topics
    app = new_app(settings, options.worker, receipts_data_dir(settings))
    events_topic = raw_topic(app, topics.conversation_events)
    receipts_topic = raw_topic(app, topics.read_receipts)
    status_topic = raw_topic(app, topics.delivery_status)
    tracks = bytes_table(app, TABLE_NAME, settings)
    stalls = install_stall_guard(app, {topics.conversation_events})
    serde = AvroSerde(Registry(settings.registry_url))
    event_codec = ModelCodec(serde, topics.conversation_events, ConversationEvent)
    receipt_codec = ModelCodec(serde, topics.read_receipts, ReadReceipt)
    status_codec = ModelCodec(serde, topics.delivery_status, DeliveryStatus)

    @app.agent(events_topic)
    async def receipts(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        batches = cast("faust.Stream[bytes]", stream).take_events(BATCH_SIZE, within=BATCH_WITHIN)
        async for events in batches:
            changed: dict[bytes, tuple[Track, Any]] = {}
            latest_receipts: dict[bytes, tuple[ReadReceipt, Any]] = {}
            latest_statuses: dict[bytes, tuple[DeliveryStatus, Any]] = {}
            for event in events:
                kind = header(event, h.EVENT_TYPE)
                if kind is not None and kind not in _TRACKED_HEADERS:
                    EVENTS_IN.labels("skipped").inc()
                    continue
                make_current(event)
                try:
                    decoded = event_codec.decode(event.value)
                except SerdeError:
                    EVENTS_IN.labels("undecodable").inc()  # the conversation worker DLQs it
                    continue
                message_id = message_id_of(decoded)
                if message_id is None:
                    EVENTS_IN.labels("skipped").inc()
                    continue
                key = message_id.encode()
                if key in changed:
                    previous: Track | None = changed[key][0]
                else:
                    stored = tracks.get(key)
                    previous = decode_track(stored) if stored is not None else None
                try:
                    current, changes = track(previous, decoded, options.rule)
                except Exception:  # a bug must not stop the stream
                    log.exception("tracking %s failed", decoded.event_id)
                    EVENTS_IN.labels("failed").inc()
                    continue
                EVENTS_IN.labels("applied").inc()
                changed[key] = (current, event)
                for receipt in changes.receipts:
                    latest_receipts[receipt_key(receipt)] = (receipt, event)
                    AUTOMATED.inc(
                        receipt.automated_view_count - _automated_before(previous, receipt)
                    )
                for status in changes.statuses:
                    latest_statuses[status_key(status)] = (status, event)
            acks: list[Awaitable[Any]] = []
            for rkey, (receipt, source) in latest_receipts.items():
                make_current(source)
                acks.append(
                    await receipts_topic.send(key=rkey, value=receipt_codec.encode(receipt))
                )
                OUTPUTS.labels("read-receipts").inc()
            for skey, (status, source) in latest_statuses.items():
                make_current(source)
                acks.append(await status_topic.send(key=skey, value=status_codec.encode(status)))
                OUTPUTS.labels("delivery-status").inc()
            if acks:
                await asyncio.gather(*acks)
            for key, (value, last) in changed.items():
                make_current(last)
                tracks[key] = encode_track(value)
            note_progress(stalls, events)
            yield None

    return app
