"""The sink's SQL storage: tables, migrations on open, one-transaction batch writes, reads.

SQLAlchemy Core only, one code path for SQLite (embedded default, WAL) and
PostgreSQL (psycopg 3). `Store.apply` writes a `SinkBatch` in ONE transaction:
timeline rows (an event_id already stored is ignored), state rows (only when the
incoming version is newer), and the next offset per topic-partition of the
consumer group in `sink_offsets`, the tracking table. Because the positions
commit or vanish together with the rows, the database alone says where to
resume, and a crash at any instant neither loses nor doubles a record. When the
database refuses a batch, `Store.refusals` finds the records it refuses (each
alone under a savepoint, rolled back) so that the caller can dead-letter them and
apply the rest.

This module must never talk to Kafka or commit a batch in more than one
transaction. The clock is read only for `updated_at`, and only when the caller
passes no `now`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from connectors.sink.batch import (
    STATE_RANK,
    SinkBatch,
    StateWrite,
    TopicPartition,
    receipt_progress,
)
from connectors.sink.errors import (
    AmbiguousId,
    DatabaseMisconfigured,
    DatabaseUnavailable,
    SchemaOutOfDate,
    SinkError,
    UnsupportedDatabase,
)
from connectors.sink.failures import Failure, classify, reason
from connectors.sink.snapshot import (
    changes_from_json,
    changes_to_json,
    state_from_json,
    state_to_json,
    utc,
)
from convotrail.settings import Settings
from schemas.model import (
    Actor,
    ActorKind,
    BounceClass,
    ConversationState,
    DeliveryState,
    DeliveryStatus,
    EventType,
    ReadReceipt,
    TimelineEntry,
    ViewerKind,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Its own version table, so the sink can share a database with other
# Alembic-managed applications without their revisions colliding.
VERSION_TABLE = "sink_schema_version"
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
# SQLite's busy timeout: how long a write waits for another writer's lock before
# the sink counts the database as unavailable and backs off. `?timeout=S` in the
# URL overrides it.
SQLITE_BUSY_TIMEOUT = 30.0
S = TypeVar("S")


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


def default_database_url(settings: Settings) -> str:
    """The embedded default: one SQLite file in the convotrail home directory."""
    return f"sqlite:///{settings.home / 'convotrail.db'}"


def timeline_row(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "event_id": entry.event_id,
        "conversation_id": entry.conversation_id,
        "account_id": entry.account_id,
        "sequence": entry.sequence,
        "type": entry.type.value,
        "occurred_at": entry.occurred_at,
        "actor_kind": entry.actor.kind.value,
        "actor_id": entry.actor.id,
        "actor_name": entry.actor.name,
        "actor_on_behalf_of": entry.actor.on_behalf_of,
        "actor_rule_id": entry.actor.rule_id,
        "text": entry.text,
        "changes": changes_to_json(entry.changes),
        "correlation_id": entry.correlation_id,
        "causation_id": entry.causation_id,
        "message_id": entry.message_id,
    }


def timeline_entry_from_row(row: sa.Row[Any]) -> TimelineEntry:
    return TimelineEntry(
        event_id=row.event_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        sequence=row.sequence,
        type=EventType(row.type),
        occurred_at=row.occurred_at,
        actor=Actor(
            kind=ActorKind(row.actor_kind),
            id=row.actor_id,
            name=row.actor_name,
            on_behalf_of=row.actor_on_behalf_of,
            rule_id=row.actor_rule_id,
        ),
        text=row.text,
        changes=changes_from_json(row.changes),
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        message_id=row.message_id,
    )


def state_row(state: ConversationState, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": state.conversation_id,
        "account_id": state.account_id,
        "version": state.version,
        "status": state.status.value,
        "archived": state.archived,
        "spam": state.spam,
        "assignee_id": state.assignee.id if state.assignee else None,
        "assignee_name": state.assignee.name if state.assignee else None,
        "inbox_id": state.inbox.id if state.inbox else None,
        "inbox_name": state.inbox.name if state.inbox else None,
        "subject": state.subject,
        "channel": state.channel.value if state.channel else None,
        "brand": state.brand,
        "customer_id": state.customer_id,
        "customer_email": state.customer_email,
        "tags": json.dumps(list(state.tags)),
        "merged_into": state.merged_into,
        "created_at": state.created_at,
        "last_event_id": state.last_event_id,
        "last_event_at": state.last_event_at,
        "updated_at": now,
        "snapshot": state_to_json(state),
    }


def receipt_row(receipt: ReadReceipt) -> dict[str, Any]:
    return {
        "message_id": receipt.message_id,
        "viewer_kind": receipt.viewer_kind.value,
        "viewer_id": receipt.viewer_id,
        "conversation_id": receipt.conversation_id,
        "account_id": receipt.account_id,
        "first_viewed_at": receipt.first_viewed_at,
        "last_viewed_at": receipt.last_viewed_at,
        "view_count": receipt.view_count,
        "automated_view_count": receipt.automated_view_count,
        "progress": receipt_progress(receipt),
        "last_event_id": receipt.last_event_id,
    }


def receipt_from_row(row: sa.Row[Any]) -> ReadReceipt:
    return ReadReceipt(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        viewer_kind=ViewerKind(row.viewer_kind),
        viewer_id=row.viewer_id,
        first_viewed_at=row.first_viewed_at,
        last_viewed_at=row.last_viewed_at,
        view_count=row.view_count,
        automated_view_count=row.automated_view_count,
        last_event_id=row.last_event_id,
    )


def status_row(status: DeliveryStatus) -> dict[str, Any]:
    return {
        "message_id": status.message_id,
        "recipient": status.recipient,
        "conversation_id": status.conversation_id,
        "account_id": status.account_id,
        "state": status.state.value,
        "state_rank": STATE_RANK[status.state],
        "provider": status.provider,
        "bounce_class": status.bounce_class.value if status.bounce_class else None,
        "smtp_status": status.smtp_status,
        "diagnostic": status.diagnostic,
        "sent_at": status.sent_at,
        "delivered_at": status.delivered_at,
        "updated_at": status.updated_at,
        "last_event_id": status.last_event_id,
    }


def status_from_row(row: sa.Row[Any]) -> DeliveryStatus:
    return DeliveryStatus(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        account_id=row.account_id,
        recipient=row.recipient,
        state=DeliveryState(row.state),
        provider=row.provider,
        bounce_class=BounceClass(row.bounce_class) if row.bounce_class else None,
        smtp_status=row.smtp_status,
        diagnostic=row.diagnostic,
        sent_at=row.sent_at,
        delivered_at=row.delivered_at,
        updated_at=row.updated_at,
        last_event_id=row.last_event_id,
    )


@dataclass(frozen=True)
class AppliedBatch:
    """What one `Store.apply` wrote, counted from the batch (not from rowcounts)."""

    timeline_entries: int
    state_writes: int
    deletions: int
    positions: int
    receipts: int = 0
    statuses: int = 0


class Store:
    """The sink database. Build it with `open_store`; close it (or use `with`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # SQLite: take the write lock when the transaction starts, so two writers
        # queue on busy_timeout instead of failing on a stale read snapshot.
        self._writer = engine.execution_options(convotrail_begin="IMMEDIATE")

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- writing ------------------------------------------------------------------

    def apply(self, batch: SinkBatch, *, now: datetime | None = None) -> AppliedBatch:
        """Write the batch's rows and positions in one transaction (all or nothing)."""
        written_at = now or datetime.now(UTC)
        positions = batch.next_offsets
        with self._writer.begin() as connection:
            deletions = self._write_rows(connection, batch, written_at)
            self._write_positions(connection, batch.group, positions)
        return AppliedBatch(
            len(batch.timeline_entries), len(batch.state_writes), deletions, len(positions),
            len(batch.receipts), len(batch.statuses),
        )  # fmt: skip

    def refusals(
        self, parts: Sequence[tuple[S, SinkBatch]], *, now: datetime | None = None
    ) -> list[tuple[S, BaseException]]:
        """Which of `parts` (single records, from `SinkBatch.singles`) the database refuses.

        Each part is written under its own savepoint in one transaction that is
        then rolled back: nothing is stored here, the caller dead-letters the
        refused records and applies the batch without them. Raises the first
        error that is not the record's fault (the database went away meanwhile).
        """
        written_at = now or datetime.now(UTC)
        refused: list[tuple[S, BaseException]] = []
        with self._writer.connect() as connection, connection.begin() as transaction:
            for source, part in parts:
                try:
                    with connection.begin_nested():
                        self._write_rows(connection, part, written_at)
                except Exception as error:  # classified right here
                    if classify(error) is not Failure.REFUSED:
                        raise
                    refused.append((source, error))
            transaction.rollback()
        return refused

    def _write_rows(self, connection: Connection, batch: SinkBatch, written_at: datetime) -> int:
        """Every row of the batch (not its positions); returns the number of deletions."""
        entries = batch.timeline_entries
        writes = batch.state_writes
        if entries:
            connection.execute(
                self._insert(timeline_entries).on_conflict_do_nothing(
                    index_elements=["account_id", "event_id"]
                ),
                [timeline_row(entry) for entry in entries],
            )
        deletions = [write for write in writes if write.delete_first]
        for write in deletions:
            table = conversation_states
            delete = sa.delete(table).where(table.c.conversation_id == write.conversation_id)
            if write.account_id is not None:  # None: a tombstone keyed the old way
                delete = delete.where(table.c.account_id == write.account_id)
            connection.execute(delete)
        self._upsert_states(connection, writes, written_at)
        self._upsert_receipts(connection, batch.receipts)
        self._upsert_statuses(connection, batch.statuses)
        return len(deletions)

    def _upsert_receipts(self, connection: Connection, receipts: list[ReadReceipt]) -> None:
        if not receipts:
            return
        table = read_receipts
        statement = self._insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[
                table.c.account_id,
                table.c.message_id,
                table.c.viewer_kind,
                table.c.viewer_id,
            ],
            set_={c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key},
            # A receipt replayed after a newer one never takes its place.
            where=statement.excluded.progress >= table.c.progress,
        )
        connection.execute(statement, [receipt_row(r) for r in receipts])

    def _upsert_statuses(self, connection: Connection, statuses: list[DeliveryStatus]) -> None:
        if not statuses:
            return
        table = delivery_statuses
        statement = self._insert(table)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.message_id, table.c.recipient],
            set_={c.name: excluded[c.name] for c in table.columns if not c.primary_key},
            where=sa.or_(
                excluded.state_rank > table.c.state_rank,
                sa.and_(
                    excluded.state_rank == table.c.state_rank,
                    excluded.updated_at >= table.c.updated_at,
                ),
            ),
        )
        connection.execute(statement, [status_row(s) for s in statuses])

    def _upsert_states(
        self, connection: Connection, writes: list[StateWrite], now: datetime
    ) -> None:
        rows = [state_row(write.state, now) for write in writes if write.state is not None]
        if not rows:
            return
        statement = self._insert(conversation_states)
        table = conversation_states
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.conversation_id],
            set_={
                column.name: statement.excluded[column.name]
                for column in table.columns
                if not column.primary_key
            },
            # Snapshots arrive out of order after a processor replay; an older or
            # equal version never overwrites the stored one.
            where=statement.excluded.version > table.c.version,
        )
        connection.execute(statement, rows)

    def _write_positions(
        self, connection: Connection, group: str, positions: dict[TopicPartition, int]
    ) -> None:
        if not positions:
            return
        statement = self._insert(sink_offsets)
        statement = statement.on_conflict_do_update(
            index_elements=[sink_offsets.c.consumer_group, sink_offsets.c.topic,
                            sink_offsets.c.partition],
            set_={"next_offset": statement.excluded.next_offset},
        )  # fmt: skip
        connection.execute(
            statement,
            [
                {"consumer_group": group, "topic": topic, "partition": partition,
                 "next_offset": next_offset}
                for (topic, partition), next_offset in sorted(positions.items())
            ],
        )  # fmt: skip

    # -- reading ------------------------------------------------------------------

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


# -- opening and migrating -----------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        # env.py runs the migrations on this connection, inside its transaction.
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _sqlite_path(url: sa.URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_store_engine(database_url: str) -> Engine:
    """An Engine for the sink's database, with the per-dialect settings it relies on."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise UnsupportedDatabase(f"database URL {database_url!r} is not a URL: {exc}") from exc
    dialect = url.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise UnsupportedDatabase(
            f"database URL {url.render_as_string(hide_password=True)}: dialect {dialect!r} "
            "is not supported; use sqlite:///PATH or postgresql+psycopg://..."
        )
    if dialect == "postgresql":
        try:
            # pool_pre_ping: a sink runs for weeks; a server restart must not
            # turn into one failed batch per pooled connection.
            return sa.create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError as exc:
            raise UnsupportedDatabase(f"no driver for {url.drivername}: {exc}") from exc
    path = _sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseMisconfigured(
                f"sink database {path}: cannot create its directory ({exc.strerror}): "
                "fix --database-url (CONVOTRAIL_DATABASE_URL) or CONVOTRAIL_HOME"
            ) from exc
        if path.is_dir():
            raise DatabaseMisconfigured(
                f"sink database {path} is a directory: fix --database-url "
                "(CONVOTRAIL_DATABASE_URL), it names the SQLite file"
            )
    # A `timeout` in the URL's query (sqlite:///x.db?timeout=2) is pysqlite's own
    # parameter and wins; otherwise the default busy timeout.
    connect_args = {} if "timeout" in url.query else {"timeout": SQLITE_BUSY_TIMEOUT}
    engine = sa.create_engine(url, connect_args=connect_args)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin: pysqlite
        # would otherwise run DDL outside them, and a migration could half-apply.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: CLI readers never block the sink and the sink never blocks them.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL may lose the last commits on power loss, never on a process
        # crash; positions live in the same transactions, so a lost commit is
        # simply read again from Kafka.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("convotrail_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def open_store(database_url: str, *, migrate: bool = True) -> Store:
    """Open the sink database; by default create or upgrade its schema to the head revision.

    With `migrate=False` (readers such as the CLI) nothing is changed, and a
    database that is missing or not at the head revision is refused.
    """
    engine = create_store_engine(database_url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if migrate:
            with engine.execution_options(convotrail_begin="IMMEDIATE").begin() as connection:
                before = current_revision(connection)
                command.upgrade(alembic_config(connection), "head")
                after = current_revision(connection)
            if before != after:
                log.info("sink database %s migrated from %s to %s", shown, before, after)
        else:
            if engine.dialect.name == "sqlite":
                path = _sqlite_path(engine.url)
                if path is not None and not path.exists():
                    raise SchemaOutOfDate(
                        f"no sink database at {path}: run the sink first (it creates it)"
                    )
            with engine.connect() as connection:
                found = current_revision(connection)
            expected = head_revision()
            if found != expected:
                raise SchemaOutOfDate(
                    f"sink database {shown} is at schema revision {found or 'none'}, this "
                    f"code reads revision {expected}: run the sink once to migrate it"
                )
    except SQLAlchemyError as exc:
        engine.dispose()
        failure = classify(exc)
        if failure is Failure.UNAVAILABLE and migrate:
            # The sink waits for it (runner.py); a reader has nobody to wait for it.
            raise DatabaseUnavailable(f"sink database {shown}: {reason(exc)}") from exc
        if failure is Failure.MISCONFIGURED or not migrate:
            raise DatabaseMisconfigured(
                f"sink database {shown} cannot be opened: {reason(exc)}: fix --database-url "
                "(CONVOTRAIL_DATABASE_URL)"
            ) from exc
        raise SinkError(f"sink database {shown}: {exc.__class__.__name__}: {reason(exc)}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


@contextmanager
def store_at(database_url: str, *, migrate: bool = True) -> Iterator[Store]:
    store = open_store(database_url, migrate=migrate)
    try:
        yield store
    finally:
        store.close()
