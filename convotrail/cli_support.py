"""What every `convotrail` command shares: settings, one-line errors, logging, metrics."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convotrail.errors import ConvotrailError
from convotrail.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConvotrailError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConvotrailError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    if port is not None:
        from prometheus_client import start_http_server

        from convotrail.errors import metrics_port_error

        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise metrics_port_error(host, port, exc) from exc


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The registry client logs every HTTP request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)


_DATABASE_URL = click.option(
    "--database-url", envvar="CONVOTRAIL_DATABASE_URL", default=None,
    help="Sink database URL (default: sqlite:///$CONVOTRAIL_HOME/convotrail.db; "
         "PostgreSQL: postgresql+psycopg://user@host/db). Env: CONVOTRAIL_DATABASE_URL.",
)  # fmt: skip


def _database_url(settings: Settings, database_url: str | None) -> str:
    from connectors.sink.store import default_database_url

    return database_url or default_database_url(settings)


_METRICS_PORT = click.option(
    "--metrics-port", type=int, default=None, envvar="CONVOTRAIL_METRICS_PORT",
    help="Serve Prometheus metrics (and, for workers, /healthz and /readyz) on this port. "
    "Env: CONVOTRAIL_METRICS_PORT.",
)  # fmt: skip
_METRICS_HOST = click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, envvar="CONVOTRAIL_METRICS_HOST",
    help="Address the metrics port binds to (0.0.0.0 in a container). "
    "Env: CONVOTRAIL_METRICS_HOST.",
)  # fmt: skip
