"""Track <-> bytes for the message-tracks store.

Format 2 (written, processors/framing.py): ids, sent and delivered times, each
DeliveryStatus and ReadReceipt as the compiled Avro codec writes them, and each
viewer's seen event ids. Format 1 (read): the compact JSON the first versions
wrote (times as epoch ms), so their changelogs restore as they are.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from processors.framing import Reader, Writer
from processors.receipts.core import Track, Viewer
from schemas import compiled, contract
from schemas import model as m

FORMAT = 2
_RECEIPT_TIMES = ("first_viewed_at", "last_viewed_at")
_STATUS_TIMES = ("sent_at", "delivered_at", "updated_at")


@cache
def _codec(name: str) -> compiled.CompiledCodec:
    return compiled.codec_for(contract.expanded_json(name))


def encode_track(track: Track) -> bytes:
    out = Writer(FORMAT)
    out.string(track.message_id)
    out.string(track.conversation_id)
    out.string(track.account_id)
    out.optional_ms(track.sent_at)
    out.optional_ms(track.delivered_at)
    statuses = _codec(contract.DELIVERY_STATUS)
    out.varint(len(track.statuses))
    for status in track.statuses:
        out.record(statuses, status)
    receipts = _codec(contract.READ_RECEIPT)
    out.varint(len(track.viewers))
    for viewer in track.viewers:
        out.record(receipts, viewer.receipt)
        out.strings(viewer.seen)
    return out.bytes()


def decode_track(data: bytes) -> Track:
    if data[:1] == b"{":
        return _decode_json(data)
    if not data or data[0] != FORMAT:
        raise ValueError(f"unknown track format {data[:1]!r}")
    read = Reader(data)
    message_id, conversation_id, account_id = read.string(), read.string(), read.string()
    sent_at, delivered_at = read.optional_ms(), read.optional_ms()
    statuses_codec = _codec(contract.DELIVERY_STATUS)
    statuses = tuple(read.record(statuses_codec) for _ in range(read.varint()))
    receipts_codec = _codec(contract.READ_RECEIPT)
    viewers = []
    for _ in range(read.varint()):
        receipt = read.record(receipts_codec)
        viewers.append(Viewer(receipt=receipt, seen=read.strings()))
    return Track(message_id=message_id, conversation_id=conversation_id, account_id=account_id,
                 sent_at=sent_at, delivered_at=delivered_at, statuses=statuses,
                 viewers=tuple(viewers))  # fmt: skip


# -- format 1: JSON ---------------------------------------------------------------------


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _out(record: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    return {k: (_ms(v) if k in times else v) for k, v in record.items()}


def _in(record: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    return {k: (_dt(v) if k in times else v) for k, v in record.items()}


def encode_track_v1(track: Track) -> bytes:
    """Format 1, as the first versions wrote it (tests of the upgrade path)."""
    data = {
        "m": track.message_id,
        "c": track.conversation_id,
        "a": track.account_id,
        "sent": _ms(track.sent_at),
        "delivered": _ms(track.delivered_at),
        "statuses": [_out(s.to_avro(), _STATUS_TIMES) for s in track.statuses],
        "viewers": [
            {"r": _out(v.receipt.to_avro(), _RECEIPT_TIMES), "seen": list(v.seen)}
            for v in track.viewers
        ],
    }
    return json.dumps(data, separators=(",", ":")).encode()


def _decode_json(data: bytes) -> Track:
    raw: dict[str, Any] = json.loads(data)
    return Track(
        message_id=raw["m"],
        conversation_id=raw["c"],
        account_id=raw["a"],
        sent_at=_dt(raw["sent"]),
        delivered_at=_dt(raw["delivered"]),
        statuses=tuple(m.DeliveryStatus.from_avro(_in(s, _STATUS_TIMES)) for s in raw["statuses"]),
        viewers=tuple(
            Viewer(
                receipt=m.ReadReceipt.from_avro(_in(v["r"], _RECEIPT_TIMES)),
                seen=tuple(v["seen"]),
            )
            for v in raw["viewers"]
        ),
    )
