"""Alembic environment of the sink database: runs on the connection `open_store` hands it.

Migrations only run programmatically (`open_store` opens the transaction, passes
its connection in `config.attributes["connection"]`, and commits), so the whole
upgrade is one transaction on SQLite and PostgreSQL alike. There is no offline
(SQL script) mode and no URL in a config file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from connectors.sink.errors import SinkError
from connectors.sink.store import VERSION_TABLE, metadata

# Any constant will do; it only has to be the same for every sink process.
_MIGRATION_LOCK = 0x636F6E766F  # "convo"


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Two sinks starting at once would both try to create the tables; the
        # second waits here and then finds the head revision already applied.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: later revisions use batch operations.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SinkError("the sink's migrations run online only, through open_store()")
_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise SinkError("the sink's migrations run through open_store(), which passes a connection")
run_migrations(_connection)
