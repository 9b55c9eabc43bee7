"""Row contents a database may refuse or mangle, one record each, for the sink's bad-input suite.

Every case is a record the wire format allows (Avro strings, longs, timestamps)
on one of the sink's four topics. `must_store`: every database must keep it
exactly (plain Unicode a careless layer would mangle); `refused_by`: the
databases that must refuse it (a NUL in a PostgreSQL text column, a key longer
than a btree index entry, an int32 overflow); every other case may go either
way, but then exactly: stored and read back equal, or dead-lettered with the
database's reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.model import (
    Actor,
    ActorKind,
    ConversationState,
    DeliveryState,
    DeliveryStatus,
    FieldChange,
    InboxRef,
    PendingReminder,
    ReadReceipt,
    StaffRef,
    TimelineEntry,
    ViewerKind,
)
from tests.support.sink import T0, conversation_state, timeline_entry

NUL = "\x00"
# Beyond PostgreSQL's btree entry limit (2704 bytes) even after its compression:
# hex digests do not repeat, so pglz cannot shrink them under it.
HUGE_KEY = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(80))
HUGE_TEXT = "x" * 400_000  # well under Kafka's 1 MB record limit
SNOWMAN = "\u2603"  # 3 bytes in UTF-8: the wire bytes are swapped for a lone surrogate
LONE_SURROGATE_UTF8 = b"\xed\xa0\x80"  # U+D800 as CESU-8: not valid UTF-8

Record = TimelineEntry | ConversationState | ReadReceipt | DeliveryStatus


@dataclass(frozen=True)
class Case:
    name: str
    record: Record | None  # None: a tombstone keyed `key`
    key: str = ""
    must_store: bool = False
    refused_by: tuple[str, ...] = ()
    # The record's Avro bytes have SNOWMAN replaced by an encoded lone surrogate.
    lone_surrogate: bool = False

    @property
    def topic_kind(self) -> str:
        if self.record is None or isinstance(self.record, ConversationState):
            return "state"
        if isinstance(self.record, TimelineEntry):
            return "timeline"
        return "receipt" if isinstance(self.record, ReadReceipt) else "status"


def receipt(n: int, **changes: Any) -> ReadReceipt:
    base = ReadReceipt(
        message_id=f"msg-bad-{n}",
        conversation_id=f"cnv-bad-{n}",
        account_id="acc-1",
        viewer_kind=ViewerKind.CUSTOMER,
        viewer_id=f"cus-{n}",
        first_viewed_at=T0,
        last_viewed_at=T0,
        view_count=1,
        automated_view_count=0,
        last_event_id=f"evt-view-{n}",
    )
    return dataclasses.replace(base, **changes)


def status(n: int, **changes: Any) -> DeliveryStatus:
    base = DeliveryStatus(
        message_id=f"msg-bad-{n}",
        conversation_id=f"cnv-bad-{n}",
        account_id="acc-1",
        recipient=f"r{n}@example.com",
        state=DeliveryState.BOUNCED,
        provider="ses",
        smtp_status="5.1.1",
        diagnostic="smtp; 550 5.1.1 user unknown",
        sent_at=T0,
        delivered_at=None,
        updated_at=T0,
        last_event_id=f"evt-bounce-{n}",
    )
    return dataclasses.replace(base, **changes)


def entry(n: int, **changes: Any) -> TimelineEntry:
    return dataclasses.replace(timeline_entry(f"cnv-bad-{n}", 1), **changes)


def state(n: int, **changes: Any) -> ConversationState:
    return dataclasses.replace(conversation_state(f"cnv-bad-{n}", 2), **changes)


def _actor(**changes: Any) -> Actor:
    return dataclasses.replace(Actor(kind=ActorKind.STAFF, id="stf-dana", name="Dana"), **changes)


PG = ("postgresql",)


def _with_text(text: str) -> Callable[[int], TimelineEntry]:
    return lambda n: entry(n, text=text)


def cases() -> list[Case]:
    built: list[Case] = []

    def add(name: str, make: Callable[[int], Record], **options: Any) -> None:
        built.append(Case(name, make(len(built)), **options))

    # A NUL in every text column: PostgreSQL refuses it in text; SQLite keeps it.
    nul_timeline: dict[str, Callable[[int], TimelineEntry]] = {
        "event_id": lambda n: entry(n, event_id=f"evt-{n}{NUL}"),
        "conversation_id": lambda n: entry(n, conversation_id=f"cnv-bad-{n}{NUL}"),
        "account_id": lambda n: entry(n, account_id=f"acc{NUL}1"),
        "actor.id": lambda n: entry(n, actor=_actor(id=f"stf{NUL}")),
        "actor.name": lambda n: entry(n, actor=_actor(name=f"Da{NUL}na")),
        "actor.on_behalf_of": lambda n: entry(n, actor=_actor(on_behalf_of=f"x{NUL}")),
        "actor.rule_id": lambda n: entry(n, actor=_actor(rule_id=f"rule{NUL}")),
        "text": lambda n: entry(n, text=f"Dana{NUL} reassigned"),
        "correlation_id": lambda n: entry(n, correlation_id=f"cor{NUL}"),
        "causation_id": lambda n: entry(n, causation_id=f"evt{NUL}"),
        "message_id": lambda n: entry(n, message_id=f"msg{NUL}"),
    }
    for column, make_entry in nul_timeline.items():
        add(f"timeline {column} with NUL", make_entry, refused_by=PG)
    # Inside the JSON of `changes`: escaped as \u0000, so every database keeps it.
    add(
        "timeline changes.field with NUL",
        lambda n: entry(n, changes=(FieldChange(field=f"f{NUL}", before=None, after="a"),)),
    )
    add(
        "timeline changes.after with NUL",
        lambda n: entry(n, changes=(FieldChange(field="tag", before=None, after=f"a{NUL}"),)),
    )

    nul_state: dict[str, Callable[[int], ConversationState]] = {
        "conversation_id": lambda n: state(n, conversation_id=f"cnv-bad-{n}{NUL}"),
        "account_id": lambda n: state(n, account_id=f"acc{NUL}"),
        "assignee.name": lambda n: state(n, assignee=StaffRef(id="stf-sam", name=f"S{NUL}am")),
        "assignee.id": lambda n: state(n, assignee=StaffRef(id=f"stf{NUL}", name="Sam")),
        "inbox.id": lambda n: state(n, inbox=InboxRef(id=f"inb{NUL}", name="Billing")),
        "inbox.name": lambda n: state(n, inbox=InboxRef(id="inb-1", name=f"Bill{NUL}")),
        "subject": lambda n: state(n, subject=f"Invoice{NUL}"),
        "brand": lambda n: state(n, brand=f"Ac{NUL}me"),
        "customer_id": lambda n: state(n, customer_id=f"cus{NUL}"),
        "customer_email": lambda n: state(n, customer_email=f"a{NUL}@example.com"),
        "merged_into": lambda n: state(n, merged_into=f"cnv{NUL}"),
        "last_event_id": lambda n: state(n, last_event_id=f"evt{NUL}"),
    }
    for column, make_state in nul_state.items():
        add(f"state {column} with NUL", make_state, refused_by=PG)
    add("state tag with NUL (JSON column)", lambda n: state(n, tags=(f"v{NUL}ip",)))
    add(
        "state pinned note with NUL (snapshot only)",
        lambda n: state(n, pinned_note_ids=(f"note{NUL}",)),
    )
    add("state reminder note with NUL (snapshot only)", lambda n: state(n, pending_reminders=(
        PendingReminder(reminder_id="rem-1", due_at=T0, for_staff=StaffRef(id="stf-sam", name="S"),
                        note=f"call{NUL}back", added_event_id="evt-1"),)))  # fmt: skip

    nul_receipt: dict[str, Callable[[int], ReadReceipt]] = {
        "message_id": lambda n: receipt(n, message_id=f"msg-bad-{n}{NUL}"),
        "conversation_id": lambda n: receipt(n, conversation_id=f"cnv{NUL}"),
        "account_id": lambda n: receipt(n, account_id=f"acc{NUL}"),
        "viewer_id": lambda n: receipt(n, viewer_id=f"cus{NUL}"),
        "last_event_id": lambda n: receipt(n, last_event_id=f"evt{NUL}"),
    }
    for column, make_receipt in nul_receipt.items():
        add(f"receipt {column} with NUL", make_receipt, refused_by=PG)

    nul_status: dict[str, Callable[[int], DeliveryStatus]] = {
        "message_id": lambda n: status(n, message_id=f"msg-bad-{n}{NUL}"),
        "conversation_id": lambda n: status(n, conversation_id=f"cnv{NUL}"),
        "account_id": lambda n: status(n, account_id=f"acc{NUL}"),
        "recipient": lambda n: status(n, recipient=f"r{NUL}@example.com"),
        "provider": lambda n: status(n, provider=f"s{NUL}es"),
        "smtp_status": lambda n: status(n, smtp_status=f"5.1{NUL}"),
        "diagnostic": lambda n: status(n, diagnostic=f"550{NUL}"),
        "last_event_id": lambda n: status(n, last_event_id=f"evt{NUL}"),
    }
    for column, make_status in nul_status.items():
        add(f"status {column} with NUL", make_status, refused_by=PG)

    # Keys longer than an index entry may be: PostgreSQL refuses (54000), SQLite keeps.
    add("timeline huge event_id", lambda n: entry(n, event_id=f"evt-{n}-{HUGE_KEY}"), refused_by=PG)
    add(
        "timeline huge conversation_id (indexed)",
        lambda n: entry(n, conversation_id=f"cnv-bad-{n}-{HUGE_KEY}"),
        refused_by=PG,
    )
    add(
        "state huge conversation_id",
        lambda n: state(n, conversation_id=f"cnv-{n}-{HUGE_KEY}"),
        refused_by=PG,
    )
    add("receipt huge viewer_id", lambda n: receipt(n, viewer_id=f"cus-{HUGE_KEY}"), refused_by=PG)
    add(
        "status huge recipient",
        lambda n: status(n, recipient=f"{HUGE_KEY}@example.com"),
        refused_by=PG,
    )
    # Huge texts in unindexed columns: both keep them whole.
    add("timeline 400 KB text", lambda n: entry(n, text=HUGE_TEXT), must_store=True)
    add("state 400 KB subject", lambda n: state(n, subject=HUGE_TEXT), must_store=True)
    add("status 400 KB diagnostic", lambda n: status(n, diagnostic=HUGE_TEXT), must_store=True)

    # Extreme instants and numbers.
    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    add("timeline occurred_at year 1", lambda n: entry(n, occurred_at=first))
    add("timeline occurred_at 9999-12-31", lambda n: entry(n, occurred_at=last))
    add("state last_event_at year 1", lambda n: state(n, last_event_at=first, created_at=first))
    add("receipt first_viewed_at 9999", lambda n: receipt(n, first_viewed_at=last,
                                                          last_viewed_at=last))  # fmt: skip
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    add("status updated_at epoch 0", lambda n: status(n, updated_at=epoch))
    add("status sent_at year 1", lambda n: status(n, sent_at=first))
    add("timeline sequence -2^63", lambda n: entry(n, sequence=-(2**63)), must_store=True)
    add("state version 2^63-1", lambda n: state(n, version=2**63 - 1), must_store=True)
    add(
        "receipt view counts overflowing int32 in sum",
        lambda n: receipt(n, view_count=2**31 - 1, automated_view_count=2**31 - 1),
        refused_by=PG,
    )

    # Text a careless layer mangles; every database must keep it exactly.
    mangles = {
        "emoji (4-byte UTF-8)": "Dana \U0001f600 replied \U0010fffd",
        "right-to-left and combining marks": "\u05d3\u05e0\u05d4 e\u0301 \u202eabc",
        "SQL quote injection": "'; DROP TABLE timeline_entries; --",
        "backslashes and percent signs": "C:\\path\\%s %(x)s %% \\x00",
        "CR LF and tabs": "line1\r\nline2\tend\n",
        "byte order mark and noncharacters": "\ufeffstart \uffff \ufffe end",
        "C0 control characters": "".join(chr(c) for c in range(1, 32)),
        "DEL and C1 controls": "\x7f\x80\x9f",
        "only whitespace": "   \u00a0\u2003",
        "empty text": "",
    }
    for label, text in mangles.items():
        add(f"timeline text: {label}", _with_text(text), must_store=True)
    add("state subject: emoji", lambda n: state(n, subject="Refund \U0001f4b8"), must_store=True)
    add(
        "actor name: quotes",
        lambda n: entry(n, actor=_actor(name='O\'Brien "Bob"')),
        must_store=True,
    )

    # Invalid UTF-8 on the wire (a lone surrogate): no database may see it mangled.
    add(
        "timeline text with a lone surrogate",
        lambda n: entry(n, text=f"bad {SNOWMAN} text"),
        lone_surrogate=True,
    )
    add(
        "state subject with a lone surrogate",
        lambda n: state(n, subject=f"bad {SNOWMAN} subject"),
        lone_surrogate=True,
    )
    # A tombstone whose key holds a NUL: the delete itself is refused by PostgreSQL.
    built.append(Case("state tombstone keyed with NUL", None, key=f"cnv-gone{NUL}",
                      refused_by=PG))  # fmt: skip
    return built
