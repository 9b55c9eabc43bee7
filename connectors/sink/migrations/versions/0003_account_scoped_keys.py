"""Every primary key starts with account_id: ids are unique per account only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Before this revision the same event_id, conversation_id or message_id in two
accounts shared one row (the second account's write replaced or was dropped in
favour of the first's). The rows already stored each carry their account_id, so
the upgrade only widens the keys; no row changes. Every existing row stays
(a key that was unique stays unique with a column added in front). Downgrading
refuses when two accounts already share an id, since the old keys cannot hold both.
Also adds an index on the bare id for lookups without an account (the CLI).

Frozen like 0001: the keys are spelled out here, not imported from store.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

NEW_KEYS = {
    "timeline_entries": ["account_id", "event_id"],
    "conversation_states": ["account_id", "conversation_id"],
    "read_receipts": ["account_id", "message_id", "viewer_kind", "viewer_id"],
    "delivery_statuses": ["account_id", "message_id", "recipient"],
}
OLD_KEYS = {
    "timeline_entries": ["event_id"],
    "conversation_states": ["conversation_id"],
    "read_receipts": ["message_id", "viewer_kind", "viewer_id"],
    "delivery_statuses": ["message_id", "recipient"],
}
INDEXES = {
    "ix_conversation_states_conversation": ("conversation_states", ["conversation_id"]),
    "ix_read_receipts_message": ("read_receipts", ["message_id"]),
    "ix_delivery_statuses_message": ("delivery_statuses", ["message_id"]),
}


def _rekey(keys: dict[str, list[str]]) -> None:
    for table, columns in keys.items():
        # batch mode: PostgreSQL alters the constraint in place; SQLite, which cannot
        # alter a primary key, gets the table rebuilt with its rows copied.
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", columns)


def upgrade() -> None:
    _rekey(NEW_KEYS)
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    connection = op.get_bind()
    for table, columns in OLD_KEYS.items():
        shared = connection.execute(
            sa.text(
                f"SELECT {', '.join(columns)} FROM {table} GROUP BY {', '.join(columns)} "
                "HAVING COUNT(*) > 1 LIMIT 1"
            )
        ).first()
        if shared is not None:
            raise RuntimeError(
                f"cannot downgrade {table}: accounts share the id {tuple(shared)}, "
                "which the keys of revision 0002 cannot hold"
            )
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
    _rekey(OLD_KEYS)
