"""The contract's rules on conversation-events, as every processor reading them applies them.

The topic is not trusted: a raw producer skips the publisher's validation. The
conversation processor dead-letters an event that breaks the rules
(`invalid-event`); the receipts and bounce processors, which read the same topic,
skip it (counted in convotrail_skipped_records_total), so that no processor acts on
an event the contract refuses and each bad record has exactly one dead letter.

The rules' clock is the record's own Kafka timestamp (the event's time when it has
none), never the wall clock, so a replay decides the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from processors.runtime.partitioning import SKIPPED
from processors.runtime.task import Record, Task
from schemas.model import ConversationEvent
from schemas.revalidation import check_decoded
from schemas.validation import InvalidEvent

INVALID_EVENT = "invalid-event"
_RECORD_TIME = "record-time"


def record_time(task: Task[Any], record: Record, event: ConversationEvent) -> datetime:
    """The record's Kafka timestamp (its event time when it has none), as a datetime
    converted once per millisecond."""
    kind, ms = record.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or ms <= 0:  # 0: a test driver, or no time at all
        return event.occurred_at
    last = task.scratch.get(_RECORD_TIME)
    if last is not None and last[0] == ms:
        moment: datetime = last[1]
        return moment
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    task.scratch[_RECORD_TIME] = (ms, moment)
    return moment


def refusal(task: Task[Any], record: Record, event: ConversationEvent) -> InvalidEvent | None:
    """Why the event breaks the contract, or None."""
    try:
        check_decoded(event, record_time(task, record, event))
    except InvalidEvent as exc:
        return exc
    return None


def skip_if_refused(task: Task[Any], record: Record, event: ConversationEvent) -> bool:
    """For the processors that only observe conversation-events: True (and counted) when
    the conversation processor dead-letters this event."""
    if refusal(task, record, event) is None:
        return False
    SKIPPED.labels(task.app_id, record.topic() or "", INVALID_EVENT).inc()
    return True
