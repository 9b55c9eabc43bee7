"""Whose fault a database error is: the row's (DLQ), the database's absence (wait), or
the configuration's (one line, exit); and the backoff the sink waits with."""

from __future__ import annotations

import random
import sqlite3

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors as pg

from connectors.sink.backoff import Backoff
from connectors.sink.failures import REASON_LIMIT, Failure, classify, error_class, reason


def wrapped(error: Exception) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("INSERT ...", {}, error)


def sqlite_error(kind: type[sqlite3.Error], name: str) -> sqlite3.Error:
    error = kind("message")
    error.sqlite_errorname = name
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
         Failure.REFUSED),
        (pg.NumericValueOutOfRange("integer out of range"), Failure.REFUSED),
        (pg.ProgramLimitExceeded("index row size 5144 exceeds btree maximum"), Failure.REFUSED),
        (pg.UniqueViolation("duplicate key"), Failure.REFUSED),
        (psycopg.OperationalError("connection refused"), Failure.UNAVAILABLE),
        (pg.AdminShutdown("terminating connection"), Failure.UNAVAILABLE),
        (pg.TooManyConnections("too many clients"), Failure.UNAVAILABLE),
        (pg.InvalidPassword("password authentication failed"), Failure.MISCONFIGURED),
        (pg.InvalidCatalogName('database "x" does not exist'), Failure.MISCONFIGURED),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_BUSY"), Failure.UNAVAILABLE),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_BUSY_SNAPSHOT"), Failure.UNAVAILABLE),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_FULL"), Failure.UNAVAILABLE),
        (sqlite_error(sqlite3.OperationalError, "SQLITE_CANTOPEN"), Failure.MISCONFIGURED),
        (sqlite_error(sqlite3.DatabaseError, "SQLITE_NOTADB"), Failure.MISCONFIGURED),
        (sqlite_error(sqlite3.DataError, "SQLITE_TOOBIG"), Failure.REFUSED),
        (sqlite_error(sqlite3.IntegrityError, "SQLITE_CONSTRAINT_NOTNULL"), Failure.REFUSED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.value,
)  # fmt: skip
def test_driver_errors_are_classified_by_sqlstate_or_result_code(
    error: Exception, expected: Failure
) -> None:
    assert classify(wrapped(error)) is expected


def test_python_conversion_errors_are_the_rows_and_pool_errors_the_databases() -> None:
    assert classify(OverflowError("Python int too large to convert to SQLite INTEGER")) is (
        Failure.REFUSED
    )
    assert classify(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")) is (
        Failure.REFUSED
    )
    assert classify(sa.exc.TimeoutError("QueuePool limit reached")) is Failure.UNAVAILABLE
    invalidated = wrapped(psycopg.DataError("x"))
    invalidated.connection_invalidated = True
    assert classify(invalidated) is Failure.UNAVAILABLE


def test_the_reason_is_the_databases_message_on_one_line_and_bounded() -> None:
    error = wrapped(pg.NumericValueOutOfRange("integer out of range\nDETAIL: column progress"))
    assert reason(error) == "integer out of range DETAIL: column progress"
    assert error_class(error) == "psycopg.errors.NumericValueOutOfRange"
    huge = reason(wrapped(psycopg.DataError("é" * 5000)))
    assert len(huge.encode()) <= REASON_LIMIT and huge.endswith("...")


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.25, cap=5.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(12)]
    ceilings = [min(5.0, 0.25 * 2**n) for n in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 5.0 and delays[-1] >= 2.5
    backoff.reset()
    assert backoff.next() <= 0.25
