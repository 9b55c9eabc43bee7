"""The sink database's reads, each scoped by account (ids are unique per account only)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.sink.batch import TopicPartition
from connectors.sink.errors import AmbiguousId
from connectors.sink.rows import receipt_from_row, status_from_row, timeline_entry_from_row
from connectors.sink.snapshot import state_from_json
from connectors.sink.tables import (
    conversation_states,
    delivery_statuses,
    read_receipts,
    sink_offsets,
    timeline_entries,
)
from schemas.model import ConversationState, DeliveryStatus, ReadReceipt, TimelineEntry


class StoreReads:
    """What the CLI, the read API and the sink's own start-up read from the database."""

    engine: Engine

    def ping(self) -> None:
        """A trivial query (SELECT 1): raises when the database does not answer."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def committed_offsets(self, group: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
        """The next offset to read per (topic, partition) of `group`, as the database says."""
        wanted = sorted(set(topics))
        query = sa.select(
            sink_offsets.c.topic, sink_offsets.c.partition, sink_offsets.c.next_offset
        ).where(sink_offsets.c.consumer_group == group, sink_offsets.c.topic.in_(wanted))
        with self.engine.connect() as connection:
            return {
                (row.topic, row.partition): row.next_offset for row in connection.execute(query)
            }

    # Every lookup is scoped by account (ids are unique per account only). Without an
    # account (the CLI without --account), the id must exist in exactly one account:
    # `_account` finds it, or raises AmbiguousId naming the accounts.

    def accounts(self, table: sa.Table, column: str, value: str) -> list[str]:
        """The accounts that have a row in `table` whose `column` is `value`."""
        query = (
            sa.select(table.c.account_id)
            .where(table.c[column] == value)
            .distinct()
            .order_by(table.c.account_id)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def _account(self, account_id: str | None, table: sa.Table, column: str, value: str) -> str:
        if account_id is not None:
            return account_id
        found = self.accounts(table, column, value)
        if len(found) > 1:
            raise AmbiguousId(
                f"{column} {value!r} exists in {len(found)} accounts ({', '.join(found)}): "
                "say which with --account"
            )
        return found[0] if found else ""

    def timeline(
        self, conversation_id: str, *, account_id: str | None = None
    ) -> list[TimelineEntry]:
        """A conversation's entries by sequence (event_id breaks ties, for a stable order)."""
        table = timeline_entries
        account = self._account(account_id, table, "conversation_id", conversation_id)
        query = sa.select(table).where(
            table.c.account_id == account, table.c.conversation_id == conversation_id
        )
        query = query.order_by(table.c.sequence, table.c.event_id)
        with self.engine.connect() as connection:
            return [timeline_entry_from_row(row) for row in connection.execute(query)]

    def state(
        self, conversation_id: str, *, account_id: str | None = None
    ) -> ConversationState | None:
        table = conversation_states
        account = self._account(account_id, table, "conversation_id", conversation_id)
        query = sa.select(table.c.snapshot).where(
            table.c.account_id == account, table.c.conversation_id == conversation_id
        )
        with self.engine.connect() as connection:
            snapshot = connection.execute(query).scalar_one_or_none()
        return None if snapshot is None else state_from_json(snapshot)

    def receipts(self, message_id: str, *, account_id: str | None = None) -> list[ReadReceipt]:
        """A message's read receipts, customer first, then teammates by id."""
        table = read_receipts
        account = self._account(account_id, table, "message_id", message_id)
        query = (
            sa.select(table)
            .where(table.c.account_id == account, table.c.message_id == message_id)
            .order_by(table.c.viewer_kind, table.c.viewer_id)
        )
        with self.engine.connect() as connection:
            return [receipt_from_row(row) for row in connection.execute(query)]

    def delivery(self, message_id: str, *, account_id: str | None = None) -> list[DeliveryStatus]:
        """A message's delivery status per recipient."""
        table = delivery_statuses
        account = self._account(account_id, table, "message_id", message_id)
        query = (
            sa.select(table)
            .where(table.c.account_id == account, table.c.message_id == message_id)
            .order_by(table.c.recipient)
        )
        with self.engine.connect() as connection:
            return [status_from_row(row) for row in connection.execute(query)]

    def conversation_receipts(self, conversation_id: str, *, account_id: str) -> list[ReadReceipt]:
        table = read_receipts
        query = sa.select(table).where(
            table.c.account_id == account_id, table.c.conversation_id == conversation_id
        )
        with self.engine.connect() as connection:
            return [receipt_from_row(row) for row in connection.execute(query)]

    def conversation_deliveries(
        self, conversation_id: str, *, account_id: str
    ) -> list[DeliveryStatus]:
        table = delivery_statuses
        query = sa.select(table).where(
            table.c.account_id == account_id, table.c.conversation_id == conversation_id
        )
        with self.engine.connect() as connection:
            return [status_from_row(row) for row in connection.execute(query)]

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
