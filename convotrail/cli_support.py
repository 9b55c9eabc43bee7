"""What every `convotrail` command shares: settings, one-line errors, logging, metrics."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convotrail import logs
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConvotrailError as exc:
            if not logs.fatal(f"error: {exc}"):
                click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConvotrailError as exc:
        if not logs.fatal(f"error: {exc}"):
            click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _serve_metrics(port: int | None, host: str = "127.0.0.1", probe: Any = None) -> None:
    """/metrics, /healthz and /readyz on host:port (convotrail/health.py), for a process
    without a loop of its own to report: alive and ready while it answers, unless
    `probe` (a convotrail.health.Probe) says more."""
    if port is not None:
        from convotrail import health

        health.serve(host, port, probe or health.always_alive())


def _logging(verbose: bool, log_format: str = logs.TEXT) -> None:
    """Logs on stderr: INFO with --verbose, else WARNING; text or JSON lines (logs.py)."""
    logs.configure(verbose, log_format)


def _stop_on_sigterm() -> None:
    """SIGTERM stops the process as Ctrl-C does (KeyboardInterrupt: the server closes,
    the producer flushes). As PID 1 in a container, Python would otherwise ignore the
    SIGTERM that `docker stop` and Kubernetes send, and be killed after the grace period."""
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _announce(message: str) -> None:
    """A line the operator must see (where a server listens, a summary): stdout in text
    mode, a JSON log line in JSON mode so that the process's output stays parseable."""
    if not logs.announce(message):
        click.echo(message)


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
    help="Serve Prometheus /metrics, /healthz and /readyz on this port. "
    "Env: CONVOTRAIL_METRICS_PORT.",
)  # fmt: skip
_METRICS_HOST = click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, envvar="CONVOTRAIL_METRICS_HOST",
    help="Address the metrics port binds to (0.0.0.0 in a container). "
    "Env: CONVOTRAIL_METRICS_HOST.",
)  # fmt: skip
_LOG_FORMAT = click.option(
    "--log-format", type=click.Choice(logs.FORMATS, case_sensitive=False), default=logs.TEXT,
    show_default=True, envvar="CONVOTRAIL_LOG_FORMAT",
    help="text: one line per record for a terminal; json: one JSON object per line (ts, "
    "level, logger, message, and account, conversation, topic, partition, offset where "
    "known) for a log collector. Env: CONVOTRAIL_LOG_FORMAT.",
)  # fmt: skip
