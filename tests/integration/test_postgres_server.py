"""The PostgreSQL server the storage tests use is real and isolated per test."""

import psycopg
import pytest

from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.integration


def test_postgres_answers_and_databases_are_fresh(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn(database)) as connection:
        version = connection.execute("SHOW server_version").fetchone()
        assert version is not None and int(version[0].split(".")[0]) >= 13
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        connection.execute("CREATE TABLE probe (id int primary key)")
        connection.execute("INSERT INTO probe VALUES (1)")
        assert connection.execute("SELECT id FROM probe").fetchall() == [(1,)]


def test_the_server_can_be_paused_and_resumed_with_its_data(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn(database), autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (id int primary key)")
        connection.execute("INSERT INTO kept VALUES (7)")
    postgres_server.pause()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_server.dsn(database), connect_timeout=3)
    finally:
        postgres_server.resume()
    with psycopg.connect(postgres_server.dsn(database)) as connection:
        assert connection.execute("SELECT id FROM kept").fetchall() == [(7,)]
