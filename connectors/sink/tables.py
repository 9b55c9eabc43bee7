"""The sink's tables, as SQLAlchemy Core sees them (the migrations create them).

Every primary key starts with account_id: ids are unique per account only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from connectors.sink.snapshot import utc


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware instant, stored and returned in UTC on every database.

    PostgreSQL has timestamptz; SQLite has no time zones, and SQLAlchemy would
    drop the offset silently, so values are converted to UTC before they are
    written and get their UTC zone back when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named primary keys: the same name on every database, as the migrations spell it.
metadata = sa.MetaData(naming_convention={"pk": "pk_%(table_name)s"})

timeline_entries = sa.Table(
    "timeline_entries",
    metadata,
    # Ids are unique per account only (docs/events.md): every key starts with it
    # (revision 0003).
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("actor_kind", sa.String, nullable=False),
    sa.Column("actor_id", sa.String),
    sa.Column("actor_name", sa.String),
    # The two remaining Actor fields, so a stored row rebuilds the whole entry.
    sa.Column("actor_on_behalf_of", sa.String),
    sa.Column("actor_rule_id", sa.String),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("changes", sa.Text, nullable=False),  # JSON list of FieldChange
    sa.Column("correlation_id", sa.String),
    sa.Column("causation_id", sa.String),
    sa.Column("message_id", sa.String),  # added in revision 0002
    # A tenant-scoped read API lists an account's conversation in order.
    sa.Index("ix_timeline_entries_account_conversation", "account_id", "conversation_id",
             "sequence"),
    # `convotrail timeline CONVERSATION_ID` knows no account: without this index
    # it would scan the table.
    sa.Index("ix_timeline_entries_conversation", "conversation_id", "sequence"),
)  # fmt: skip

conversation_states = sa.Table(
    "conversation_states",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False),
    sa.Column("spam", sa.Boolean, nullable=False),
    sa.Column("assignee_id", sa.String),
    sa.Column("assignee_name", sa.String),
    sa.Column("inbox_id", sa.String),
    sa.Column("inbox_name", sa.String),
    sa.Column("subject", sa.Text),
    sa.Column("channel", sa.String),
    sa.Column("brand", sa.String),
    sa.Column("customer_id", sa.String),
    sa.Column("customer_email", sa.String),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list, sorted like the record
    sa.Column("merged_into", sa.String),
    sa.Column("created_at", UtcDateTime),
    sa.Column("last_event_id", sa.String, nullable=False),
    sa.Column("last_event_at", UtcDateTime, nullable=False),
    # When the sink wrote the row (its own clock), not event time: last_event_at is.
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # The whole ConversationState as JSON: the columns above are for queries,
    # this is what `Store.state` rebuilds the record from, so nothing is lost.
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Index("ix_conversation_states_account_status", "account_id", "status"),
    # Lookups that know no account (the CLI without --account) find its accounts.
    sa.Index("ix_conversation_states_conversation", "conversation_id"),
)

read_receipts = sa.Table(
    "read_receipts",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("message_id", sa.String, primary_key=True),
    sa.Column("viewer_kind", sa.String, primary_key=True),
    sa.Column("viewer_id", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, nullable=False),
    sa.Column("first_viewed_at", UtcDateTime),
    sa.Column("last_viewed_at", UtcDateTime),
    sa.Column("view_count", sa.Integer, nullable=False),
    sa.Column("automated_view_count", sa.Integer, nullable=False),
    # view_count + automated_view_count: views only add up, so a larger total is
    # newer; the upsert's guard compares it.
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("last_event_id", sa.String, nullable=False),
    # The conversation page shows every message's receipts at once.
    sa.Index("ix_read_receipts_conversation", "conversation_id"),
    sa.Index("ix_read_receipts_message", "message_id"),
)

delivery_statuses = sa.Table(
    "delivery_statuses",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("message_id", sa.String, primary_key=True),
    sa.Column("recipient", sa.String, primary_key=True),
    sa.Column("conversation_id", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    # SENT 0 < DELIVERED = FAILED = BOUNCED 1 < COMPLAINED 2 (connectors/sink/batch.py).
    sa.Column("state_rank", sa.Integer, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("bounce_class", sa.String),
    sa.Column("smtp_status", sa.String),
    sa.Column("diagnostic", sa.Text),
    sa.Column("sent_at", UtcDateTime),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_event_id", sa.String, nullable=False),
    sa.Index("ix_delivery_statuses_conversation", "conversation_id"),
    sa.Index("ix_delivery_statuses_message", "message_id"),
)

sink_offsets = sa.Table(
    "sink_offsets",
    metadata,
    sa.Column("consumer_group", sa.String, primary_key=True),
    sa.Column("topic", sa.String, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)
