"""The `convotrail` command line: one verb per thing a user does.

Each command builds `Settings` from the environment, calls into the package that
does the work, and turns `ConvotrailError` into one line on stderr and exit 1.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convotrail import __version__
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings
from convotrail.terminal import escape, escape_json

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convotrail")
def main() -> None:
    """convotrail: Kafka event backbone for customer-support conversations.

    Local defaults: a Kafka broker and a schema registry started by `convotrail
    stack start`. Set KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL to use
    an existing cluster instead (KAFKA_<SETTING> variables pass librdkafka
    settings such as KAFKA_SECURITY_PROTOCOL through).
    """


# -- stack ---------------------------------------------------------------------


@main.group()
def stack() -> None:
    """Run the local Kafka broker and schema registry."""


def _local_stack_or_exit(settings: Settings) -> Any:
    from convotrail.stack import LocalStack

    if not settings.uses_local_stack:
        click.echo(
            "KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL are set: using "
            f"{settings.bootstrap_servers} and {settings.registry_url}; nothing local to manage."
        )
        sys.exit(0)
    return LocalStack(settings)


@stack.command("fetch")
@_one_line_errors
def stack_fetch() -> None:
    """Fetch the Kafka and registry artifacts from Maven Central into the cache."""
    from convotrail.stack import artifacts

    settings = _settings()
    found = artifacts.ensure_all(settings.cache_dir)
    click.echo(f"kafka libs:    {found.kafka_libs}")
    click.echo(f"registry jar:  {found.registry_jar}")
    click.echo(f"java:          {found.java}")


@stack.command("start")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for both.")
@_one_line_errors
def stack_start(timeout: float) -> None:
    """Start the broker and registry (idempotent) and wait until both answer."""
    local = _local_stack_or_exit(_settings())
    endpoints = local.start(timeout=timeout, progress=lambda line: click.echo(f"  {line}"))
    click.echo(f"KAFKA_BOOTSTRAP_SERVERS={endpoints.bootstrap_servers}")
    click.echo(f"SCHEMA_REGISTRY_URL={endpoints.registry_url}")
    click.echo(f"logs and data: {local.state_dir}")


@stack.command("stop")
@_one_line_errors
def stack_stop() -> None:
    """Stop the registry and the broker started from this state directory."""
    local = _local_stack_or_exit(_settings())
    for line in local.stop():
        click.echo(line)


@stack.command("status")
@_one_line_errors
def stack_status() -> None:
    """Show whether the broker and registry are running (exit 3 when not)."""
    local = _local_stack_or_exit(_settings())
    statuses = local.status()
    for status in statuses:
        click.echo(status.describe())
    if not all(status.state == "running" for status in statuses):
        sys.exit(3)


# -- topics --------------------------------------------------------------------


@main.group()
def topics() -> None:
    """Create and list the project's topics."""


@topics.command("create")
@click.option("--partitions", type=int, default=None, help="Overrides CONVOTRAIL_PARTITIONS.")
@_one_line_errors
def topics_create(partitions: int | None) -> None:
    """Create every topic (idempotent), one partition count for all."""
    import dataclasses

    from convotrail.topics import connect, ensure_topics, topic_specs

    settings = _settings()
    if partitions is not None:
        settings = dataclasses.replace(settings, partitions=partitions)
    admin, _ = connect(settings)
    outcomes = ensure_topics(admin, topic_specs(settings))
    for outcome in outcomes:
        verb = "created" if outcome.created else "exists "
        click.echo(f"{verb}  {outcome.name}  ({outcome.partitions} partitions)")


@topics.command("list")
@_one_line_errors
def topics_list() -> None:
    """List the project's topics with their purpose."""
    from convotrail.topics import connect, topic_specs

    settings = _settings()
    existing = connect(settings)[1].topics
    for spec in topic_specs(settings):
        found = existing.get(spec.name)
        where = f"{len(found.partitions)} partitions" if found else "missing"
        click.echo(f"{spec.name:<32} {where:<14} {spec.purpose}")


# -- schemas -------------------------------------------------------------------


@main.group()
def schemas() -> None:
    """Register and check the Avro contract."""


@schemas.command("register")
@_one_line_errors
def schemas_register() -> None:
    """Register every topic's value schema and set its compatibility level."""
    from schemas.registration import register_contract
    from schemas.registry import Registry

    settings = _settings()
    for done in register_contract(Registry(settings.registry_url), settings.topics):
        click.echo(f"{done.subject:<40} id {done.schema_id:<6} {done.compatibility}")


@schemas.command("check")
@_one_line_errors
def schemas_check() -> None:
    """Check the schemas against every released version and the registry (exit 1 if broken)."""
    from schemas import contract, evolution
    from schemas.registration import check_against_registry
    from schemas.registry import Registry

    results = evolution.gate(evolution.current_schemas(), contract.released_versions())
    for result in results:
        click.echo(("ok     " if result.passed else "BROKEN ") + result.describe())
    settings = _settings()
    problems = check_against_registry(Registry(settings.registry_url), settings.topics)
    for problem in problems:
        click.echo(f"BROKEN registry: {problem}")
    if not problems:
        click.echo(f"ok     registry at {settings.registry_url} would accept every schema")
    if problems or not all(result.passed for result in results):
        sys.exit(1)


# -- produce -------------------------------------------------------------------


@main.command(
    epilog="Exit status: 0 every event acknowledged by the broker; 1 a failure (Kafka or "
    "the schema registry unreachable, events not acknowledged within --timeout, the file "
    "unreadable); 2 a usage error; 3 some lines refused (every valid line acknowledged)."
)
@click.option(
    "--file", "-f", "path", required=True, type=click.Path(allow_dash=True, dir_okay=False),
    help="JSON-lines file of events, or - for standard input.",
)  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--timeout", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
    help="Seconds an event may wait for the broker's acknowledgement.",
)  # fmt: skip
@_one_line_errors
def produce(path: str, quiet: bool, timeout: float) -> None:
    """Validate and publish events, one JSON object per line.

    Each refused line is reported with its number and reason (control characters
    escaped) and the lines after it are still published.
    """
    from connectors.produce_run import open_input, publish_file

    with open_input(path) as stream:
        summary = publish_file(_settings(), stream, path, quiet, timeout)
    for failure in summary.failed[:20]:
        click.echo(f"failed {escape(failure)}", err=True)
    if len(summary.failed) > 20:
        click.echo(f"failed ... and {len(summary.failed) - 20} more", err=True)
    if summary.unacknowledged:
        click.echo(
            f"error: {summary.unacknowledged} event(s) not acknowledged by Kafka at "
            f"{_settings().bootstrap_servers} within {timeout:.0f} s: is the broker "
            "reachable? (`convotrail stack status`); nothing after them is known to be "
            "published",
            err=True,
        )
    click.echo(summary.describe())
    sys.exit(summary.exit_status)


@main.command("demo-events")
@click.option("--seed", default=7, show_default=True, help="Same seed, same events.")
@click.option("--conversations", default=100, show_default=True, help="How many conversations.")
@click.option(
    "--start", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]), default=None,
    help="First conversation's time (default: placed so the last event is now).",
)  # fmt: skip
@click.option(
    "--output", "-o", default="-", type=click.Path(allow_dash=True, dir_okay=False),
    help="JSON-lines file to write, or - for standard output.",
)  # fmt: skip
def demo_events(seed: int, conversations: int, start: Any, output: str) -> None:
    """Generate realistic events as JSON lines (pipe into `convotrail produce -f -`)."""
    import json
    from datetime import UTC, datetime

    from connectors.demo_feed import recent_history
    from connectors.traffic import to_json

    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    events = recent_history(seed, conversations, datetime.now(UTC), start)
    with click.open_file(output, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(to_json(event), separators=(",", ":")) + "\n")
    click.echo(f"{len(events)} events of {conversations} conversations", err=True)


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


@main.command()
@click.option("--verbose", is_flag=True, help="INFO logs (assignments, restores, commits).")
@click.option(
    "--processor",
    type=click.Choice(["conversation", "bounces", "receipts"]),
    default="conversation",
    show_default=True,
    envvar="CONVOTRAIL_PROCESSOR",
    help="conversation: state, timeline, timers; bounces: delivery notifications to "
    "delivery events and the suppression list; receipts: read receipts and delivery "
    "status per message. Env: CONVOTRAIL_PROCESSOR.",
)
@click.option(
    "--instance-id",
    envvar="CONVOTRAIL_INSTANCE_ID",
    help="This worker's stable identity (its transactional.id and state directory); "
    "a restarted worker with the same id fences its predecessor. Default: the host "
    "name and a digest of CONVOTRAIL_HOME. Env: CONVOTRAIL_INSTANCE_ID.",
)
@click.option(
    "--timers/--no-timers",
    default=True,
    envvar="CONVOTRAIL_TIMERS",
    help="conversation: fire reminders and auto-resolve stale chats (default on). "
    "Env: CONVOTRAIL_TIMERS.",
)
@click.option(
    "--timer-policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False),
    envvar="CONVOTRAIL_TIMER_POLICY",
    help="conversation: JSON file of inactivity timeouts per channel and account and "
    "reminder rules (docs/state-machine.md). Env: CONVOTRAIL_TIMER_POLICY.",
)
@click.option(
    "--replay",
    is_flag=True,
    envvar="CONVOTRAIL_REPLAY",
    help="conversation: timers fire in event time, so re-processing history yields "
    "the same timeline. Env: CONVOTRAIL_REPLAY.",
)
@click.option(
    "--bounce-wait",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    envvar="CONVOTRAIL_BOUNCE_WAIT",
    help="bounces: seconds a notification waits for the event that introduces its "
    "message before it goes to the DLQ. Env: CONVOTRAIL_BOUNCE_WAIT.",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0.01, max=60),
    default=0.1,
    show_default=True,
    envvar="CONVOTRAIL_COMMIT_INTERVAL",
    help="Seconds a transaction stays open at most (it also commits every 5,000 "
    "records): the bound on the latency transactions add. Env: CONVOTRAIL_COMMIT_INTERVAL.",
)
@_METRICS_PORT
@_METRICS_HOST
@_one_line_errors
def worker(
    verbose: bool,
    processor: str,
    instance_id: str | None,
    timers: bool,
    policy_path: str | None,
    replay: bool,
    bounce_wait: float,
    commit_interval: float,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a stream processor (default: the conversation processor: state, timeline,
    timers and dead letters from conversation-events), exactly once.

    Start several of a kind to share the partitions; state moves with them.
    SIGTERM or Ctrl-C commits and leaves the group.
    """
    from processors.catalog import build
    from processors.runtime.config import RuntimeOptions
    from processors.runtime.run import default_instance_id, run, state_dir

    _logging(verbose)
    settings = _settings()
    topology = build(
        processor, settings, timers=timers, policy_path=policy_path, replay=replay,
        bounce_wait=bounce_wait,
    )  # fmt: skip
    instance = instance_id or default_instance_id(settings.home)
    options = RuntimeOptions(
        instance_id=instance,
        state_dir=state_dir(settings, instance, topology.app_id),
        commit_interval=commit_interval,
    )
    http = (metrics_host, metrics_port) if metrics_port is not None else None
    run(settings, topology, options, http=http)


# -- delivery --------------------------------------------------------------------

_DATABASE_URL = click.option(
    "--database-url", envvar="CONVOTRAIL_DATABASE_URL", default=None,
    help="Sink database URL (default: sqlite:///$CONVOTRAIL_HOME/convotrail.db; "
         "PostgreSQL: postgresql+psycopg://user@host/db). Env: CONVOTRAIL_DATABASE_URL.",
)  # fmt: skip


def _database_url(settings: Settings, database_url: str | None) -> str:
    from connectors.sink.store import default_database_url

    return database_url or default_database_url(settings)


class _DeliveryGroup(click.Group):
    """`convotrail delivery MESSAGE_ID` reads a status; `delivery ingest|serve` are verbs."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "status", self.commands["status"], args
        return super().resolve_command(ctx, args)


@main.group(cls=_DeliveryGroup)
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
@_one_line_errors
def delivery_serve(host: str, port: int, verbose: bool) -> None:
    """Run the webhook intake: POST /webhooks/{ses,sendgrid,mailgun,postmark,dsn}.

    Each provider's own authentication is checked (docs/delivery.md lists the
    CONVOTRAIL_* variables); a provider without credentials is refused.
    Prometheus metrics on GET /metrics.
    """
    import asyncio
    import logging
    import os

    from connectors.intake.config import IntakeConfig
    from connectors.intake.http import serve
    from connectors.intake.records import NotificationPublisher

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = IntakeConfig.from_env(os.environ)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    publisher = NotificationPublisher(
        _settings(),
        delivery_timeout=config.delivery_timeout,
        max_message_bytes=config.broker_max_message_bytes,
    )
    with publisher:
        click.echo(
            f"delivery intake on http://{host}:{port}/webhooks/<provider> "
            f"(bodies up to {config.max_body_bytes} bytes)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config, publisher.deliver, host, port))


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


@main.command()
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
) -> None:
    """Write conversation-timeline and conversation-state to SQL, exactly once.

    Positions are kept in the database with the rows, so a crash neither loses
    nor doubles anything. Creates or upgrades the schema; Ctrl-C stops cleanly.
    """
    from connectors.sink.runner import run_until_signalled

    _logging(verbose)
    _serve_metrics(metrics_port, metrics_host)
    settings = _settings()
    stats = run_until_signalled(
        settings,
        _database_url(settings, database_url),
        group_id=group,
        batch_size=batch_size,
        batch_timeout=batch_timeout,
        max_idle_seconds=max_idle_seconds,
    )
    click.echo(stats.describe())


@main.command()
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


@main.command()
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


@main.command()
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


@main.command()
@_DATABASE_URL
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CONVOTRAIL_API_HOST")
@click.option("--port", default=8080, show_default=True, envvar="CONVOTRAIL_API_PORT")
@_one_line_errors
def serve(database_url: str | None, host: str, port: int) -> None:
    """Run the read API and the conversation page over the sink database.

    Page: http://HOST:PORT/accounts/ACCOUNT/conversations/CONVERSATION (timeline,
    delivery status, "Viewed" with the exact time on hover); JSON under /api/v1.
    CONVOTRAIL_API_TOKENS=account=token,... requires a bearer token per account.
    CONVOTRAIL_API_ALLOWED_HOSTS=name,... the Host names served (default: the
    loopback names when bound to loopback; `*` for any).
    """
    import asyncio
    import os

    from connectors.api.guard import default_allowed_hosts
    from connectors.api.http import parse_tokens, serve_api
    from connectors.sink.store import store_at

    try:
        tokens = parse_tokens(os.environ.get("CONVOTRAIL_API_TOKENS"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not tokens and host not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException(
            f"refusing to serve every account's data on {host} without CONVOTRAIL_API_TOKENS"
        )
    allowed = default_allowed_hosts(host, os.environ.get("CONVOTRAIL_API_ALLOWED_HOSTS"))
    settings = _settings()
    with store_at(_database_url(settings, database_url), migrate=False) as store:
        access = "per-account tokens" if tokens else "open, local only"
        hosts = ", ".join(sorted(allowed)) if allowed else "any"
        click.echo(f"read API on http://{host}:{port}/api/v1 ({access}; Host: {hosts})")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_api(store, tokens, host, port, allowed))


# -- demo ----------------------------------------------------------------------


@main.command()
@click.option("--once", is_flag=True, help="Publish the history and exit instead of running on.")
@click.option("--conversations", default=200, show_default=True, help="Conversations to generate.")
@_one_line_errors
def demo(once: bool, conversations: int) -> None:
    """Bring the local pipeline up, publish demo traffic and show it coming back."""
    from convotrail.demo import run_demo

    run_demo(_settings(), once=once, conversations=conversations, echo=click.echo)


if __name__ == "__main__":
    main()
