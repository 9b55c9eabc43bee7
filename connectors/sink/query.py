"""What `convotrail timeline` and `convotrail state` read from the sink database and print.

`load_timeline` / `load_state` open the database read-only in spirit: they never
create or migrate it, and refuse one that is missing or at another schema
revision. The `render_*` functions are pure: entries or a state in, text out
(times in UTC, `2026-11-25 09:30:00  Dana reassigned this conversation ...`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from connectors.sink.errors import ConversationNotFound, MessageNotFound
from connectors.sink.snapshot import to_json_value, utc
from connectors.sink.store import store_at
from schemas.model import (
    ConversationState,
    DeliveryStatus,
    ReadReceipt,
    TimelineEntry,
    ViewerKind,
)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def load_timeline(
    database_url: str, conversation_id: str, *, account_id: str | None = None
) -> list[TimelineEntry]:
    with store_at(database_url, migrate=False) as store:
        entries = store.timeline(conversation_id, account_id=account_id)
        where = store.url
    if not entries:
        scope = f" in account {account_id}" if account_id else ""
        raise ConversationNotFound(
            f"no timeline for conversation {conversation_id}{scope} in {where}"
        )
    return entries


def _in(account_id: str | None) -> str:
    return f" in account {account_id}" if account_id else ""


def load_state(
    database_url: str, conversation_id: str, *, account_id: str | None = None
) -> ConversationState:
    """Without `account_id`, the conversation must exist in exactly one account
    (else AmbiguousId, asking for --account)."""
    with store_at(database_url, migrate=False) as store:
        state = store.state(conversation_id, account_id=account_id)
        where = store.url
    if state is None:
        raise ConversationNotFound(
            f"no state for conversation {conversation_id}{_in(account_id)} in {where}"
        )
    return state


def when(moment: datetime) -> str:
    return utc(moment).strftime(TIME_FORMAT)


def render_timeline_text(entries: Iterable[TimelineEntry]) -> str:
    return "\n".join(f"{when(entry.occurred_at)}  {entry.text}" for entry in entries)


def timeline_json_value(entries: Iterable[TimelineEntry]) -> list[Any]:
    return [to_json_value(entry.to_avro()) for entry in entries]


def render_timeline_json(entries: Iterable[TimelineEntry]) -> str:
    return json.dumps(timeline_json_value(entries), indent=2, ensure_ascii=False)


def render_state_json(state: ConversationState) -> str:
    return json.dumps(to_json_value(state.to_avro()), indent=2, ensure_ascii=False)


def _flags(state: ConversationState) -> str:
    flags = [
        name
        for name, on in (
            ("archived", state.archived),
            ("spam", state.spam),
            ("chat ended", state.chat_ended),
        )
        if on
    ]
    return f" ({', '.join(flags)})" if flags else ""


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def render_state_text(state: ConversationState) -> str:
    """One `label  value` line per field a person asks about; --json has every field."""
    lines: list[tuple[str, str | None]] = [
        ("conversation", f"{state.conversation_id} (account {state.account_id})"),
        ("version", str(state.version)),
        ("status", f"{state.status.value}{_flags(state)}"),
        ("assignee", f"{state.assignee.name} ({state.assignee.id})" if state.assignee else "-"),
        ("inbox", f"{state.inbox.name} ({state.inbox.id})" if state.inbox else "-"),
        ("subject", state.subject or "-"),
        ("channel", state.channel.value if state.channel else "-"),
        ("brand", state.brand),
        ("customer", state.customer_email or state.customer_id),
        ("tags", ", ".join(state.tags) or "-"),
        ("merged into", state.merged_into),
        ("merged from", ", ".join(state.merged_from) or None),
        ("pinned notes", ", ".join(state.pinned_note_ids) or None),
        (
            "messages",
            f"{state.inbound_messages} in, {state.outbound_replies} replies, "
            f"{state.internal_notes} notes",
        ),
        ("reopened", _times(state.reopen_count) if state.reopen_count else None),
        ("created", when(state.created_at) if state.created_at else None),
        ("last event", f"{state.last_event_id} at {when(state.last_event_at)}"),
    ]
    for reminder in state.pending_reminders:
        staff = f" for {reminder.for_staff.name}" if reminder.for_staff else ""
        note = f": {reminder.note}" if reminder.note else ""
        lines.append(("reminder", f"{when(reminder.due_at)}{staff}{note}"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in lines if value is not None)


# -- read receipts and delivery status ------------------------------------------------


def load_receipts(
    database_url: str, message_id: str, *, account_id: str | None = None
) -> list[ReadReceipt]:
    with store_at(database_url, migrate=False) as store:
        receipts = store.receipts(message_id, account_id=account_id)
        where = store.url
    if not receipts:
        raise MessageNotFound(
            f"no read receipts for message {message_id}{_in(account_id)} in {where}"
        )
    return receipts


def load_delivery(
    database_url: str, message_id: str, *, account_id: str | None = None
) -> list[DeliveryStatus]:
    with store_at(database_url, migrate=False) as store:
        statuses = store.delivery(message_id, account_id=account_id)
        where = store.url
    if not statuses:
        raise MessageNotFound(
            f"no delivery status for message {message_id}{_in(account_id)} in {where}"
        )
    return statuses


def viewed_label(receipt: ReadReceipt) -> str:
    """The 'Viewed' indicator as staff see it; the exact time is what the page shows on hover."""
    if receipt.first_viewed_at is None:
        return "not viewed"
    return f"Viewed {when(receipt.first_viewed_at)}"


def render_receipts_text(receipts: Iterable[ReadReceipt]) -> str:
    lines = []
    for r in receipts:
        who = "customer" if r.viewer_kind is ViewerKind.CUSTOMER else "teammate"
        line = f"{who} {r.viewer_id}: {viewed_label(r)}"
        if r.first_viewed_at is not None and r.last_viewed_at is not None:
            line += f", last {when(r.last_viewed_at)}, {_times(r.view_count)}"
        if r.automated_view_count:
            line += f" ({r.automated_view_count} automated fetches not counted)"
        lines.append(line)
    return "\n".join(lines)


def render_delivery_text(statuses: Iterable[DeliveryStatus]) -> str:
    lines = []
    for s in statuses:
        line = f"{s.recipient}: {s.state.value} via {s.provider} at {when(s.updated_at)}"
        details = [
            part
            for part in (
                s.bounce_class.value.lower() + " bounce" if s.bounce_class else None,
                s.smtp_status,
                s.diagnostic,
            )
            if part
        ]
        if details:
            line += f" ({'; '.join(details)})"
        if s.sent_at is not None:
            line += f"; sent {when(s.sent_at)}"
        if s.delivered_at is not None:
            line += f"; delivered {when(s.delivered_at)}"
        lines.append(line)
    return "\n".join(lines)


def render_records_json(records: Iterable[ReadReceipt] | Iterable[DeliveryStatus]) -> str:
    return json.dumps([to_json_value(r.to_avro()) for r in records], indent=2, ensure_ascii=False)
