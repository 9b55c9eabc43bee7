"""Initial sink schema: timeline entries, conversation states, consumer positions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Frozen: it spells the tables out instead of importing the live metadata, so
later changes to store.py need a new revision (a test compares the two).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "timeline_entries",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(), nullable=False),
        sa.Column("actor_id", sa.String(), nullable=True),
        sa.Column("actor_name", sa.String(), nullable=True),
        sa.Column("actor_on_behalf_of", sa.String(), nullable=True),
        sa.Column("actor_rule_id", sa.String(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(), nullable=True),
        sa.Column("causation_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_timeline_entries"),
    )
    op.create_index(
        "ix_timeline_entries_account_conversation",
        "timeline_entries",
        ["account_id", "conversation_id", "sequence"],
    )
    op.create_index(
        "ix_timeline_entries_conversation", "timeline_entries", ["conversation_id", "sequence"]
    )
    op.create_table(
        "conversation_states",
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("spam", sa.Boolean(), nullable=False),
        sa.Column("assignee_id", sa.String(), nullable=True),
        sa.Column("assignee_name", sa.String(), nullable=True),
        sa.Column("inbox_id", sa.String(), nullable=True),
        sa.Column("inbox_name", sa.String(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("brand", sa.String(), nullable=True),
        sa.Column("customer_id", sa.String(), nullable=True),
        sa.Column("customer_email", sa.String(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_id", sa.String(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversation_states"),
    )
    op.create_index(
        "ix_conversation_states_account_status", "conversation_states", ["account_id", "status"]
    )
    op.create_table(
        "sink_offsets",
        sa.Column("consumer_group", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition", name="pk_sink_offsets"),
    )


def downgrade() -> None:
    op.drop_table("sink_offsets")
    op.drop_index("ix_conversation_states_account_status", table_name="conversation_states")
    op.drop_table("conversation_states")
    op.drop_index("ix_timeline_entries_conversation", table_name="timeline_entries")
    op.drop_index("ix_timeline_entries_account_conversation", table_name="timeline_entries")
    op.drop_table("timeline_entries")
