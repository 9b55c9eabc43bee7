"""Read receipts and delivery status; the message a timeline entry is about.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Frozen like 0001: the tables are spelled out here, not imported from store.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add a column inside every ALTER form Alembic
    # uses; the batch mode works on both databases.
    with op.batch_alter_table("timeline_entries") as batch:
        batch.add_column(sa.Column("message_id", sa.String(), nullable=True))
    op.create_table(
        "read_receipts",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("viewer_kind", sa.String(), nullable=False),
        sa.Column("viewer_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("first_viewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_viewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("view_count", sa.Integer(), nullable=False),
        sa.Column("automated_view_count", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "viewer_kind", "viewer_id", name="pk_read_receipts"),
    )
    op.create_index("ix_read_receipts_conversation", "read_receipts", ["conversation_id"])
    op.create_table(
        "delivery_statuses",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("state_rank", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("bounce_class", sa.String(), nullable=True),
        sa.Column("smtp_status", sa.String(), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "recipient", name="pk_delivery_statuses"),
    )
    op.create_index("ix_delivery_statuses_conversation", "delivery_statuses", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_statuses_conversation", table_name="delivery_statuses")
    op.drop_table("delivery_statuses")
    op.drop_index("ix_read_receipts_conversation", table_name="read_receipts")
    op.drop_table("read_receipts")
    with op.batch_alter_table("timeline_entries") as batch:
        batch.drop_column("message_id")
