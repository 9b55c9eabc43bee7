"""Track <-> bytes for the message-tracks table (compact JSON; times as epoch ms)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from processors.receipts.core import Track, Viewer
from schemas import model as m

_RECEIPT_TIMES = ("first_viewed_at", "last_viewed_at")
_STATUS_TIMES = ("sent_at", "delivered_at", "updated_at")


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _out(record: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    return {k: (_ms(v) if k in times else v) for k, v in record.items()}


def _in(record: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    return {k: (_dt(v) if k in times else v) for k, v in record.items()}


def encode_track(track: Track) -> bytes:
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


def decode_track(data: bytes) -> Track:
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
