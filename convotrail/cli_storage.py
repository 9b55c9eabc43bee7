"""The `convotrail` commands over the sink's storage and the HTTP services: delivery
(ingest, serve, status), sink, the lookups (timeline, state, receipts) and the read API."""

from __future__ import annotations

import contextlib
import sys

import click

from convotrail.cli_support import (
    _DATABASE_URL,
    _LOG_FORMAT,
    _METRICS_HOST,
    _METRICS_PORT,
    _announce,
    _database_url,
    _logging,
    _one_line_errors,
    _settings,
    _stop_on_sigterm,
)
from convotrail.errors import ConfigError
from convotrail.terminal import escape, escape_json

# -- delivery --------------------------------------------------------------------


class _DeliveryGroup(click.Group):
    """`convotrail delivery MESSAGE_ID` reads a status; `delivery ingest|serve` are verbs."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "status", self.commands["status"], args
        return super().resolve_command(ctx, args)


@click.group(cls=_DeliveryGroup)
def delivery() -> None:
    """Delivery notifications in, delivery status out.

    \b
    convotrail delivery ingest --provider ses FILE   put a notification on Kafka
    convotrail delivery serve                        run the authenticated webhook intake
    convotrail delivery status MESSAGE_ID            a message's delivery status
    """


@delivery.command("ingest")
@click.option(
    "--provider",
    required=True,
    type=click.Choice(["ses", "sendgrid", "mailgun", "postmark", "dsn"]),
    help="Whose format the body is in (dsn: a raw bounce email).",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@_one_line_errors
def delivery_ingest(provider: str, paths: tuple[str, ...]) -> None:
    """Put provider notifications (FILE..., or - for stdin) on delivery-notifications.

    Each file is one request body as the provider sends it (a SendGrid batch is split
    into its events). Returns once the broker has them all.
    """
    from pathlib import Path

    from connectors.intake.records import NotificationPublisher

    total = 0
    with NotificationPublisher(_settings()) as publisher:
        for path in paths:
            try:
                body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            except OSError as exc:
                raise click.ClickException(f"{path}: {exc.strerror}") from None
            total += publisher.publish(provider, body)
    click.echo(f"{total} {provider} notification record(s) on delivery-notifications")


@delivery.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CONVOTRAIL_INTAKE_HOST")
@click.option("--port", default=8025, show_default=True, envvar="CONVOTRAIL_INTAKE_PORT")
@click.option("--verbose", is_flag=True, help="INFO logs.")
@_LOG_FORMAT
@_one_line_errors
def delivery_serve(host: str, port: int, verbose: bool, log_format: str) -> None:
    """Run the webhook intake: POST /webhooks/{ses,sendgrid,mailgun,postmark,dsn}.

    Each provider's own authentication is checked (docs/delivery.md lists the
    CONVOTRAIL_* variables); a provider without credentials is refused.
    Prometheus metrics on GET /metrics; GET /healthz (alive), GET /readyz (Kafka
    answers and delivery-notifications exists).
    """
    import asyncio
    import os

    from connectors.intake.config import IntakeConfig
    from connectors.intake.http import serve
    from connectors.intake.records import NotificationPublisher

    _logging(verbose, log_format)
    try:
        config = IntakeConfig.from_env(os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    publisher = NotificationPublisher(
        _settings(),
        delivery_timeout=config.delivery_timeout,
        max_message_bytes=config.broker_max_message_bytes,
    )
    with publisher:
        _announce(
            f"delivery intake on http://{host}:{port}/webhooks/<provider> "
            f"(bodies up to {config.max_body_bytes} bytes)"
        )
        _stop_on_sigterm()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config, publisher.deliver, host, port, ready=publisher.ready))


# Ids are unique per account only: without --account a lookup answers when the id
# exists in exactly one account, and refuses in one line naming the accounts otherwise.
_ACCOUNT = click.option(
    "--account", "account_id", default=None,
    help="The account the id belongs to (needed when several accounts use it).",
)  # fmt: skip


@delivery.command("status")
@click.argument("message_id")
@_DATABASE_URL
@_ACCOUNT
@click.option("--json", "as_json", is_flag=True, help="The DeliveryStatus records as JSON.")
@_one_line_errors
def delivery_status(
    message_id: str, database_url: str | None, account_id: str | None, as_json: bool
) -> None:
    """Print a message's delivery status per recipient from the sink database."""
    from connectors.sink.query import load_delivery, render_delivery_text, render_records_json

    settings = _settings()
    statuses = load_delivery(
        _database_url(settings, database_url), message_id, account_id=account_id
    )
    click.echo(render_records_json(statuses) if as_json else render_delivery_text(statuses))


# -- sink ----------------------------------------------------------------------


@click.command()
@_DATABASE_URL
@click.option("--group", default="convotrail-sink", show_default=True, help="Consumer group id.")
@click.option("--batch-size", default=500, show_default=True, help="Records per transaction.")
@click.option(
    "--batch-timeout", default=0.1, show_default=True,
    help="Seconds before a partial batch is committed.",
)  # fmt: skip
@click.option(
    "--max-idle-seconds", type=float, default=None,
    help="Exit after this long without a record (default: run until stopped).",
)  # fmt: skip
@click.option("--verbose", is_flag=True, help="INFO logs (assignments, migrations, DLQ).")
@_METRICS_PORT
@_METRICS_HOST
@_LOG_FORMAT
@_one_line_errors
def sink(
    database_url: str | None,
    group: str,
    batch_size: int,
    batch_timeout: float,
    max_idle_seconds: float | None,
    verbose: bool,
    metrics_port: int | None,
    metrics_host: str,
    log_format: str,
) -> None:
    """Write timeline, state, read receipts and delivery status to SQL, exactly once.

    Positions are kept in the database with the rows, so a crash neither loses
    nor doubles anything. Creates or upgrades the schema; Ctrl-C stops cleanly.
    With --metrics-port: /metrics, /healthz (alive) and /readyz (database reachable
    and partitions assigned).
    """
    from connectors.sink.runner import run_until_signalled

    _logging(verbose, log_format)
    settings = _settings()
    stats = run_until_signalled(
        settings,
        _database_url(settings, database_url),
        group_id=group,
        batch_size=batch_size,
        batch_timeout=batch_timeout,
        max_idle_seconds=max_idle_seconds,
        http=(metrics_host, metrics_port) if metrics_port is not None else None,
    )
    _announce(stats.describe())


@click.command()
@click.argument("conversation_id")
@_DATABASE_URL
@_ACCOUNT
@click.option("--json", "as_json", is_flag=True, help="The entries as a JSON array.")
@_one_line_errors
def timeline(
    conversation_id: str, database_url: str | None, account_id: str | None, as_json: bool
) -> None:
    """Print a conversation's audit trail (times in UTC) from the sink database."""
    from connectors.sink.query import load_timeline, render_timeline_json, render_timeline_text

    settings = _settings()
    entries = load_timeline(
        _database_url(settings, database_url), conversation_id, account_id=account_id
    )
    # Event text is untrusted: control characters reach the terminal escaped.
    if as_json:
        click.echo(escape_json(render_timeline_json(entries)))
    else:
        click.echo("\n".join(escape(line) for line in (render_timeline_text([e]) for e in entries)))


@click.command()
@click.argument("conversation_id")
@_DATABASE_URL
@_ACCOUNT
@click.option("--json", "as_json", is_flag=True, help="The whole ConversationState as JSON.")
@_one_line_errors
def state(
    conversation_id: str, database_url: str | None, account_id: str | None, as_json: bool
) -> None:
    """Print a conversation's latest state from the sink database."""
    from connectors.sink.query import load_state, render_state_json, render_state_text

    settings = _settings()
    found = load_state(
        _database_url(settings, database_url), conversation_id, account_id=account_id
    )
    text = render_state_json(found) if as_json else render_state_text(found)
    click.echo(escape_json(text) if as_json else escape(text, keep="\n"))


@click.command()
@click.argument("message_id")
@_DATABASE_URL
@_ACCOUNT
@click.option("--json", "as_json", is_flag=True, help="The ReadReceipt records as JSON.")
@_one_line_errors
def receipts(
    message_id: str, database_url: str | None, account_id: str | None, as_json: bool
) -> None:
    """Print who viewed a message and when (the 'Viewed' indicator) from the sink database."""
    from connectors.sink.query import load_receipts, render_receipts_text, render_records_json

    settings = _settings()
    found = load_receipts(_database_url(settings, database_url), message_id, account_id=account_id)
    click.echo(render_records_json(found) if as_json else render_receipts_text(found))


@click.command()
@_DATABASE_URL
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CONVOTRAIL_API_HOST")
@click.option("--port", default=8080, show_default=True, envvar="CONVOTRAIL_API_PORT")
@click.option("--verbose", is_flag=True, help="INFO logs.")
@_LOG_FORMAT
@_one_line_errors
def serve(database_url: str | None, host: str, port: int, verbose: bool, log_format: str) -> None:
    """Run the read API and the conversation page over the sink database.

    Page: http://HOST:PORT/accounts/ACCOUNT/conversations/CONVERSATION (timeline,
    delivery status, "Viewed" with the exact time on hover); JSON under /api/v1.
    CONVOTRAIL_API_TOKENS=account=token,... requires a bearer token per account.
    CONVOTRAIL_API_ALLOWED_HOSTS=name,... the Host names served (default: the
    loopback names when bound to loopback; `*` for any). GET /metrics, /healthz
    (alive) and /readyz (the database answers).
    """
    import asyncio
    import os

    from connectors.api.guard import default_allowed_hosts
    from connectors.api.http import parse_tokens, serve_api
    from connectors.sink.store import store_at

    _logging(verbose, log_format)
    try:
        tokens = parse_tokens(os.environ.get("CONVOTRAIL_API_TOKENS"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not tokens and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"refusing to serve every account's data on {host} without CONVOTRAIL_API_TOKENS"
        )
    allowed = default_allowed_hosts(host, os.environ.get("CONVOTRAIL_API_ALLOWED_HOSTS"))
    settings = _settings()
    with store_at(_database_url(settings, database_url), migrate=False) as store:
        access = "per-account tokens" if tokens else "open, local only"
        hosts = ", ".join(sorted(allowed)) if allowed else "any"
        _announce(f"read API on http://{host}:{port}/api/v1 ({access}; Host: {hosts})")
        _stop_on_sigterm()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_api(store, tokens, host, port, allowed))


# -- demo ----------------------------------------------------------------------


# Added to `convotrail` by cli.py.
COMMANDS: list[click.Command] = [delivery, sink, timeline, state, receipts, serve]
