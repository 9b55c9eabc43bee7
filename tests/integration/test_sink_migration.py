"""Revision 0003 upgrades a sink database that holds rows, on SQLite and PostgreSQL.

A database is created at 0002 (the last release's schema) with rows in every
table, then opened by the sink's `open_store` (which upgrades to the head): every
row is still there, every primary key starts with account_id, and a second account
can now store rows under the very same ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from connectors.sink.batch import SinkBatch
from connectors.sink.errors import AmbiguousId
from connectors.sink.store import (
    alembic_config,
    create_store_engine,
    current_revision,
    head_revision,
    state_row,
    store_at,
)
from schemas import model as m
from tests.support.sink import conversation_state, timeline_entry

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TABLES = {
    "timeline_entries": ["account_id", "event_id"],
    "conversation_states": ["account_id", "conversation_id"],
    "read_receipts": ["account_id", "message_id", "viewer_kind", "viewer_id"],
    "delivery_statuses": ["account_id", "message_id", "recipient"],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sink.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def receipt(account: str) -> m.ReadReceipt:
    return m.ReadReceipt(message_id="msg-shared-1", conversation_id="cnv-1", account_id=account,
                         viewer_kind=m.ViewerKind.CUSTOMER, viewer_id="cus-1",
                         first_viewed_at=T, last_viewed_at=T, view_count=1,
                         last_event_id=f"evt-view-{account}")  # fmt: skip


def status(account: str) -> m.DeliveryStatus:
    return m.DeliveryStatus(message_id="msg-shared-1", conversation_id="cnv-1",
                            account_id=account, recipient="jo@example.com",
                            state=m.DeliveryState.DELIVERED, provider="ses", updated_at=T,
                            last_event_id=f"evt-dlv-{account}")  # fmt: skip


def create_at_0002_with_rows(url: str) -> None:
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0002")
            assert current_revision(connection) == "0002"
            base = {"conversation_id": "cnv-1", "account_id": "acc-a"}
            connection.execute(sa.text(
                "INSERT INTO timeline_entries (event_id, conversation_id, account_id, sequence, "
                "type, occurred_at, actor_kind, text, changes, message_id) VALUES "
                "('evt-1', :conversation_id, :account_id, 1, 'TAG_ADDED', :t, 'STAFF', "
                "'Dana tagged', '[]', NULL)"), {**base, "t": T})  # fmt: skip
            snapshot = conversation_state("cnv-1", 4, account_id="acc-a")
            row = state_row(snapshot, T)
            columns = ", ".join(row)
            values = ", ".join(f":{c}" for c in row)
            connection.execute(
                sa.text(f"INSERT INTO conversation_states ({columns}) VALUES ({values})"), row
            )
            connection.execute(sa.text(
                "INSERT INTO read_receipts (message_id, viewer_kind, viewer_id, conversation_id, "
                "account_id, first_viewed_at, last_viewed_at, view_count, automated_view_count, "
                "progress, last_event_id) VALUES ('msg-shared-1', 'CUSTOMER', 'cus-1', "
                ":conversation_id, :account_id, :t, :t, 1, 0, 1, 'evt-view-acc-a')"),
                {**base, "t": T})  # fmt: skip
            connection.execute(sa.text(
                "INSERT INTO delivery_statuses (message_id, recipient, conversation_id, "
                "account_id, state, state_rank, provider, updated_at, last_event_id) VALUES "
                "('msg-shared-1', 'jo@example.com', :conversation_id, :account_id, 'DELIVERED', "
                "1, 'ses', :t, 'evt-dlv-acc-a')"), {**base, "t": T})  # fmt: skip
    finally:
        engine.dispose()


def test_0003_keeps_every_row_and_scopes_every_key_by_account(database_url: str) -> None:
    create_at_0002_with_rows(database_url)
    with store_at(database_url) as store:
        with store.engine.connect() as connection:
            assert current_revision(connection) == head_revision() == "0003"
            inspector = sa.inspect(connection)
            for table, key in TABLES.items():
                assert inspector.get_pk_constraint(table)["constrained_columns"] == key, table
                assert connection.execute(
                    sa.text(f"SELECT account_id FROM {table}")
                ).scalars().all() == ["acc-a"], table
        # The migrated rows read back whole.
        (entry,) = store.timeline("cnv-1", account_id="acc-a")
        assert entry.event_id == "evt-1" and entry.text == "Dana tagged"
        assert store.state("cnv-1", account_id="acc-a") == conversation_state(
            "cnv-1", 4, account_id="acc-a"
        )
        assert store.receipts("msg-shared-1", account_id="acc-a") == [receipt("acc-a")]
        assert store.delivery("msg-shared-1", account_id="acc-a") == [status("acc-a")]
        # A second account reuses every id: its rows sit beside the first's.
        batch = SinkBatch("g")
        batch.add_timeline_entry(
            timeline_entry("cnv-1", 1, account_id="acc-b", event_id="evt-1"), "t", 0, 0
        )
        batch.add_state(conversation_state("cnv-1", 2, account_id="acc-b"), "s", 0, 0)
        batch.add_receipt(receipt("acc-b"), "r", 0, 0)
        batch.add_status(status("acc-b"), "d", 0, 0)
        store.apply(batch, now=T)
        for account in ("acc-a", "acc-b"):
            (entry,) = store.timeline("cnv-1", account_id=account)
            assert entry.account_id == account and entry.event_id == "evt-1"
            state = store.state("cnv-1", account_id=account)
            assert state is not None and state.account_id == account
            assert store.receipts("msg-shared-1", account_id=account) == [receipt(account)]
            assert store.delivery("msg-shared-1", account_id=account) == [status(account)]
        assert store.state("cnv-1", account_id="acc-a").version == 4  # type: ignore[union-attr]
        # Without an account, an id of two accounts is refused, naming both.
        with pytest.raises(AmbiguousId, match=r"acc-a, acc-b.*--account"):
            store.timeline("cnv-1")
        with pytest.raises(AmbiguousId, match="acc-a, acc-b"):
            store.receipts("msg-shared-1")
