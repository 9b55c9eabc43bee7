"""The sink's SQL storage: opening (migrating) the database and one-transaction batch
writes. The tables are in tables.py, row mapping in rows.py, the engine and Alembic in
engine.py, the reads in reads.py.

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

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TypeVar

import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors.sink.batch import SinkBatch, StateWrite, TopicPartition
from connectors.sink.engine import (
    SQLITE_BUSY_TIMEOUT,
    SUPPORTED_DIALECTS,
    VERSION_TABLE,
    alembic_config,
    create_store_engine,
    current_revision,
    default_database_url,
    head_revision,
    sqlite_path,
)
from connectors.sink.errors import (
    DatabaseMisconfigured,
    DatabaseUnavailable,
    SchemaOutOfDate,
    SinkError,
)
from connectors.sink.failures import Failure, classify, reason
from connectors.sink.reads import StoreReads
from connectors.sink.rows import receipt_row, state_row, status_row, timeline_row
from connectors.sink.tables import (
    conversation_states,
    delivery_statuses,
    metadata,
    read_receipts,
    sink_offsets,
    timeline_entries,
)
from schemas.model import DeliveryStatus, ReadReceipt

# Re-exported: callers and tests know these by the store's name.
__all__ = [
    "SQLITE_BUSY_TIMEOUT", "SUPPORTED_DIALECTS", "VERSION_TABLE", "AppliedBatch", "Store",
    "alembic_config", "conversation_states", "create_store_engine", "current_revision",
    "default_database_url", "delivery_statuses", "head_revision", "metadata", "open_store",
    "read_receipts", "receipt_row", "sink_offsets", "state_row", "status_row", "store_at",
    "timeline_entries", "timeline_row",
]  # fmt: skip

log = logging.getLogger(__name__)
S = TypeVar("S")


@dataclass(frozen=True)
class AppliedBatch:
    """What one `Store.apply` wrote, counted from the batch (not from rowcounts)."""

    timeline_entries: int
    state_writes: int
    deletions: int
    positions: int
    receipts: int = 0
    statuses: int = 0


class Store(StoreReads):
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
                path = sqlite_path(engine.url)
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
