"""What a database error means for the sink: the row's fault, or the database's absence.

    classify(exc)  -> REFUSED | UNAVAILABLE | MISCONFIGURED
    reason(exc)    -> the database's own message, one line, at most 1 KB

REFUSED: this record's content is what the database refused (a NUL in a text
column, a value out of range, a key too long for an index, text the driver
cannot encode): the record goes to the DLQ with `reason`, the rest is stored.
UNAVAILABLE: the database is not there right now (connection refused or lost,
file locked past the busy timeout, too many connections, disk full): retry the
same batch with backoff, never dead-letter, never exit. MISCONFIGURED: no retry
will help (wrong password, no such database, a SQLite path that cannot be
opened): one line naming the setting, exit. Only `open_store` treats an error as
misconfigured; once the sink has written, the same error counts as unavailable
(a file removed or a role dropped under a running sink is an outage to report
and wait out, not a reason to lose the stream).

The classification goes by SQLSTATE (PostgreSQL) or SQLite's result code, not by
the DBAPI class alone: psycopg reports "index row size exceeds maximum" (54000)
as an OperationalError, which is the row's fault, and sqlite3 reports "database
is locked" as an OperationalError too, which is not.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

import psycopg
from sqlalchemy import exc as sa_exc


class Failure(Enum):
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    MISCONFIGURED = "misconfigured"


REASON_LIMIT = 1024  # bytes of the database's message kept in a DLQ header

# SQLSTATE classes that are the data's fault: 22 data exception (out of range, bad
# encoding, NUL in text), 23 integrity constraint violation, 54 program limit
# exceeded (index row too large, too many columns, string too long).
_REFUSED_CLASSES = frozenset({"22", "23", "54"})
# 28 invalid authorization, 3D invalid catalog name (no such database).
_MISCONFIGURED_STATES = frozenset({"28000", "28P01", "3D000"})

_SQLITE_REFUSED = frozenset(
    {"SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE", "SQLITE_CONSTRAINT"}
)
_SQLITE_MISCONFIGURED = frozenset({"SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_PERM"})


def classify(error: BaseException) -> Failure:
    """Whose fault `error`, raised while writing or opening, is (see the module doc)."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or error.orig is None:
            return Failure.UNAVAILABLE
        return _classify_driver(error.orig)
    if isinstance(error, sa_exc.StatementError) and error.orig is not None:
        # A bind parameter SQLAlchemy or the driver could not even convert.
        return _classify_driver(error.orig)
    if isinstance(error, sa_exc.SQLAlchemyError):
        # Pool timeouts, disconnections, a closed connection: the database's side.
        return Failure.UNAVAILABLE
    if isinstance(error, (ValueError, OverflowError, UnicodeError, TypeError)):
        # Raised while a value of this record was converted for the driver.
        return Failure.REFUSED
    return Failure.UNAVAILABLE


def _classify_driver(error: BaseException) -> Failure:
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state is None:
            # Raised by psycopg itself before the server saw anything: a value it
            # cannot send (NUL in text) is the row's; a broken connection is not.
            if isinstance(error, (psycopg.DataError, psycopg.IntegrityError)):
                return Failure.REFUSED
            if isinstance(error, psycopg.ProgrammingError):
                return Failure.REFUSED
            return Failure.UNAVAILABLE
        if state in _MISCONFIGURED_STATES:
            return Failure.MISCONFIGURED
        return Failure.REFUSED if state[:2] in _REFUSED_CLASSES else Failure.UNAVAILABLE
    if isinstance(error, sqlite3.Error):
        name = getattr(error, "sqlite_errorname", "") or ""
        base = "_".join(name.split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        if base in _SQLITE_REFUSED or isinstance(
            error, (sqlite3.DataError, sqlite3.IntegrityError)
        ):
            return Failure.REFUSED
        if base in _SQLITE_MISCONFIGURED:
            return Failure.MISCONFIGURED
        if not name and isinstance(error, sqlite3.ProgrammingError):
            # Raised by the sqlite3 module before SQLite saw the value (a str
            # with a lone surrogate cannot be encoded to UTF-8).
            return Failure.REFUSED
        return Failure.UNAVAILABLE
    if isinstance(error, (ValueError, OverflowError, UnicodeError, TypeError)):
        return Failure.REFUSED
    return Failure.UNAVAILABLE


def reason(error: BaseException) -> str:
    """The database's (or driver's) own message on one line, at most REASON_LIMIT bytes.

    SQLAlchemy appends the statement and its parameters; they are left out: the
    record itself travels with the dead letter, and parameters can be megabytes.
    """
    cause = error
    if isinstance(error, sa_exc.StatementError) and error.orig is not None:
        cause = error.orig
    text = " ".join(str(cause).split()) or type(cause).__name__
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) > REASON_LIMIT:
        text = encoded[: REASON_LIMIT - 3].decode("utf-8", "ignore") + "..."
    else:
        text = encoded.decode("utf-8")
    return text


def error_class(error: BaseException) -> str:
    """The driver's exception class (psycopg.errors.NumericValueOutOfRange, ...)."""
    cause = error.orig if isinstance(error, sa_exc.StatementError) and error.orig else error
    kind = type(cause)
    module = kind.__module__
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__qualname__}"
