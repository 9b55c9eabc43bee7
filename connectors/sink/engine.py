"""The sink database's engine: which databases, their per-dialect settings, Alembic."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from connectors.sink.errors import DatabaseMisconfigured, UnsupportedDatabase
from convotrail.settings import Settings

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


def default_database_url(settings: Settings) -> str:
    """The embedded default: one SQLite file in the convotrail home directory."""
    return f"sqlite:///{settings.home / 'convotrail.db'}"


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


def sqlite_path(url: sa.URL) -> Path | None:
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
    path = sqlite_path(url)
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
