"""The `convotrail` command line: one verb per thing a user does.

Each command builds `Settings` from the environment, calls into the package that
does the work, and turns `ConvotrailError` into one line on stderr and exit 1.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from convotrail import __version__
from convotrail.cli_support import (
    _LOG_FORMAT,
    _METRICS_HOST,
    _METRICS_PORT,
    _logging,
    _one_line_errors,
    _settings,
)
from convotrail.settings import Settings
from convotrail.terminal import escape


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
    from convotrail.clients import registry
    from schemas.registration import register_contract

    settings = _settings()
    # clients.registry: the same credentials and CA settings as every other process.
    for done in register_contract(registry(settings), settings.topics):
        click.echo(f"{done.subject:<40} id {done.schema_id:<6} {done.compatibility}")


@schemas.command("check")
@_one_line_errors
def schemas_check() -> None:
    """Check the schemas against every released version and the registry (exit 1 if broken)."""
    from convotrail.clients import registry
    from schemas import contract, evolution
    from schemas.registration import check_against_registry

    results = evolution.gate(evolution.current_schemas(), contract.released_versions())
    for result in results:
        click.echo(("ok     " if result.passed else "BROKEN ") + result.describe())
    settings = _settings()
    problems = check_against_registry(registry(settings), settings.topics)
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


@main.command()
@click.option("--dry-run", is_flag=True, help="Say what would move; write nothing.")
@_one_line_errors
def rekey(dry_run: bool) -> None:
    """Move state written before account scoping to its new keys (workers stopped).

    \b
    Exit 0: everything keyed the new way; 3: some legacy records could not be
    resolved (listed; their values do not say their account).
    """
    from convotrail.rekey import rekey as run_rekey

    plans = run_rekey(_settings(), dry_run=dry_run)
    for plan in plans:
        click.echo(("would move: " if dry_run else "") + plan.describe())
        for key in plan.unresolved[:20]:
            click.echo(f"  unresolved: {escape(key.decode(errors='replace'))}", err=True)
    if any(plan.unresolved for plan in plans):
        sys.exit(3)


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
    "--recipient-window-days",
    type=click.FloatRange(min=0, max=366),
    default=7.0,
    show_default=True,
    envvar="CONVOTRAIL_RECIPIENT_WINDOW_DAYS",
    help="bounces: a bounce that names no message goes to the latest message sent to "
    "its recipient at most this many days before it (0: never, it goes to the DLQ). "
    "Env: CONVOTRAIL_RECIPIENT_WINDOW_DAYS.",
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
@_LOG_FORMAT
@_one_line_errors
def worker(
    verbose: bool,
    processor: str,
    instance_id: str | None,
    timers: bool,
    policy_path: str | None,
    replay: bool,
    bounce_wait: float,
    recipient_window_days: float,
    commit_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    log_format: str,
) -> None:
    """Run a stream processor (default: the conversation processor: state, timeline,
    timers and dead letters from conversation-events), exactly once.

    Start several of a kind to share the partitions; state moves with them.
    SIGTERM or Ctrl-C commits and leaves the group.
    """
    from processors.catalog import build
    from processors.runtime.config import RuntimeOptions
    from processors.runtime.run import default_instance_id, run, state_dir

    _logging(verbose, log_format)
    settings = _settings()
    topology = build(
        processor, settings, timers=timers, policy_path=policy_path, replay=replay,
        bounce_wait=bounce_wait, recipient_window_days=recipient_window_days,
    )  # fmt: skip
    instance = instance_id or default_instance_id(settings.home)
    options = RuntimeOptions(
        instance_id=instance,
        state_dir=state_dir(settings, instance, topology.app_id),
        commit_interval=commit_interval,
    )
    http = (metrics_host, metrics_port) if metrics_port is not None else None
    run(settings, topology, options, http=http)


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


def _add_storage_commands() -> None:
    from convotrail import cli_ops, cli_storage

    for command in [*cli_storage.COMMANDS, *cli_ops.COMMANDS]:
        main.add_command(command)


_add_storage_commands()
