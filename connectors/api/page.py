"""The conversation page: its timeline, each message's delivery status and the
"Viewed" indicator with the exact time on hover. Pure: records in, HTML out.

Every value from the database is escaped: timeline text quotes customers and
subjects, which are not ours to trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from schemas.model import (
    ConversationState,
    DeliveryState,
    DeliveryStatus,
    ReadReceipt,
    TimelineEntry,
    ViewerKind,
)

# The page's only style; its hash is the one style the Content-Security-Policy allows.
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.3rem; } .meta { color: #666; margin-bottom: 1.5rem; }
ol { list-style: none; padding: 0; } li { padding: .45rem 0; border-bottom: 1px solid #eee; }
time { color: #777; font-variant-numeric: tabular-nums; margin-right: .8rem; }
.badge { display: inline-block; font-size: .78rem; padding: 0 .45rem; border-radius: .6rem;
         margin-left: .4rem; background: #eef; color: #335; cursor: default; }
.viewed { background: #e3f6e8; color: #1d6b34; } .bounced, .failed, .complained
{ background: #fde8e8; color: #9b1c1c; } .delivered { background: #eef6ff; color: #1d4f91; }
"""


def exact(moment: datetime) -> str:
    """The hover text: to the millisecond, in UTC."""
    at = moment.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d} UTC"


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def viewed_badges(receipts: Iterable[ReadReceipt]) -> list[str]:
    """'Viewed' for the customer's first human view; 'Seen by' for teammates. Views a
    mail scanner made never show (their first_viewed_at is not set)."""
    badges = []
    for receipt in sorted(receipts, key=lambda r: (r.viewer_kind.value, r.viewer_id)):
        if receipt.first_viewed_at is None:
            continue
        hover = f"First viewed {exact(receipt.first_viewed_at)}"
        if receipt.last_viewed_at and receipt.last_viewed_at != receipt.first_viewed_at:
            hover += f", last {exact(receipt.last_viewed_at)}, {receipt.view_count} views"
        label = (
            "Viewed"
            if receipt.viewer_kind is ViewerKind.CUSTOMER
            else f"Seen by {receipt.viewer_id}"
        )
        badges.append(f'<span class="badge viewed" title="{escape(hover)}">{escape(label)}</span>')
    return badges


def delivery_badges(statuses: Iterable[DeliveryStatus]) -> list[str]:
    badges = []
    for status in sorted(statuses, key=lambda s: s.recipient):
        state = status.state
        if state is DeliveryState.SENT:
            continue  # "sent" is the default expectation; only news is shown
        detail = [f"{state.value.lower()} {exact(status.updated_at)} via {status.provider}"]
        if status.bounce_class is not None:
            detail.append(f"{status.bounce_class.value.lower()} bounce")
        detail += [part for part in (status.smtp_status, status.diagnostic) if part]
        label = f"{state.value.capitalize()}: {status.recipient}"
        badges.append(
            f'<span class="badge {state.value.lower()}" title="{escape("; ".join(detail))}">'
            f"{escape(label)}</span>"
        )
    return badges


def render_conversation(
    state: ConversationState | None,
    entries: list[TimelineEntry],
    receipts: Iterable[ReadReceipt],
    statuses: Iterable[DeliveryStatus],
) -> str:
    by_message_receipts: dict[str, list[ReadReceipt]] = {}
    for receipt in receipts:
        by_message_receipts.setdefault(receipt.message_id, []).append(receipt)
    by_message_status: dict[str, list[DeliveryStatus]] = {}
    for status in statuses:
        by_message_status.setdefault(status.message_id, []).append(status)
    conversation = entries[0].conversation_id if entries else (state and state.conversation_id)
    title = (state.subject if state and state.subject else None) or f"Conversation {conversation}"
    meta = ""
    if state is not None:
        assignee = state.assignee.name if state.assignee else "unassigned"
        meta = (
            f"{state.status.value.replace('_', ' ').lower()} · {assignee} · {len(entries)} events"
        )
    shown: set[str] = set()
    rows = []
    for entry in entries:
        badges: list[str] = []
        # The badges go on the message's first entry (the message itself), once.
        if entry.message_id and entry.message_id not in shown:
            shown.add(entry.message_id)
            badges = delivery_badges(by_message_status.get(entry.message_id, ()))
            badges += viewed_badges(by_message_receipts.get(entry.message_id, ()))
        rows.append(
            f'<li id="{escape(entry.event_id)}"><time datetime="'
            f'{escape(entry.occurred_at.astimezone(UTC).isoformat())}" '
            f'title="{escape(exact(entry.occurred_at))}">{escape(_short(entry.occurred_at))}'
            f"</time>{escape(entry.text)}{''.join(badges)}</li>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="meta">{escape(meta)}</div>'
        f"<ol>{''.join(rows)}</ol></body></html>\n"
    )
