"""The `convotrail` commands for operators: `doctor` (is this cluster fit to run
convotrail? each problem one line with its fix) and `lag-exporter` (the consumer
groups' lag for Prometheus, measured from outside the consumers)."""

from __future__ import annotations

import sys
from typing import Any

import click

from convotrail.cli_support import (
    _DATABASE_URL,
    _LOG_FORMAT,
    _METRICS_HOST,
    _database_url,
    _logging,
    _one_line_errors,
    _settings,
)
from convotrail.group_lag import DEFAULT_SINK_GROUP, GroupSpec, project_groups


def _group_names(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse a blank group id: librdkafka aborts the process on one."""
    for name in value if isinstance(value, tuple) else (value,):
        if not name.strip():
            raise click.BadParameter("a consumer group id cannot be empty", param=param)
    return value


_SINK_GROUP = click.option(
    "--sink-group", default=DEFAULT_SINK_GROUP, show_default=True, callback=_group_names,
    help="The sink's consumer group (`convotrail sink --group`).",
)  # fmt: skip


@click.command(
    epilog="Exit status: 0 no problem found; 1 a problem (each one line with its fix); "
    "2 a usage error."
)
@_DATABASE_URL
@click.option(
    "--no-database", is_flag=True,
    help="Do not check the sink database (the sink's lag then comes from Kafka's commits).",
)  # fmt: skip
@_SINK_GROUP
@click.option(
    "--max-lag", type=click.IntRange(min=0), default=1000, show_default=True,
    help="Records a group may be behind (all its partitions together) before it is a problem.",
)  # fmt: skip
@click.option(
    "--timeout", type=click.FloatRange(min=0.5, max=120), default=5.0, show_default=True,
    help="Seconds to wait for Kafka, the registry and the database, each.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The findings as JSON.")
@click.option("--verbose", is_flag=True, help="INFO logs.")
@_one_line_errors
def doctor(
    database_url: str | None,
    no_database: bool,
    sink_group: str,
    max_lag: int,
    timeout: float,
    as_json: bool,
    verbose: bool,
) -> None:
    """Check the cluster: brokers, registry, topics, schemas, consumer lag, database.

    \b
    Uses the same settings as every command (KAFKA_BOOTSTRAP_SERVERS, KAFKA_*,
    SCHEMA_REGISTRY_URL, CONVOTRAIL_TOPIC_PREFIX, CONVOTRAIL_PARTITIONS,
    --database-url). Changes nothing. docs/doctor.md explains each check and fix.
    """
    from convotrail.doctor import diagnose, render_json, render_text
    from convotrail.doctor_facts import Scope, expected, gather

    if verbose:
        _logging(verbose)
    settings = _settings()
    scope = Scope(
        groups=tuple(project_groups(settings, sink_group)),
        sink_group=sink_group,
        database_url=None if no_database else _database_url(settings, database_url),
        max_lag=max_lag,
        timeout=timeout,
    )
    findings = diagnose(gather(settings, scope), expected(settings, scope))
    click.echo(render_json(findings) if as_json else render_text(findings))
    sys.exit(0 if all(finding.ok for finding in findings) else 1)


def choose_groups(project: list[GroupSpec], names: tuple[str, ...]) -> list[GroupSpec]:
    """The groups named (a project group keeps its inputs; another is measured on the
    topics it has committed offsets for), or every project group when none is named."""
    if not names:
        return project
    known = {spec.group: spec for spec in project}
    return [known.get(name, GroupSpec(name, (), "its consumers")) for name in dict.fromkeys(names)]


@click.command("lag-exporter")
@click.option(
    "--group", "groups", multiple=True, callback=_group_names,
    help="A consumer group to measure (repeatable). Default: the three workers' groups "
    "and the sink's.",
)  # fmt: skip
@_SINK_GROUP
@click.option(
    "--interval", type=click.FloatRange(min=0.1, max=3600), default=5.0, show_default=True,
    help="Seconds between measurements.",
)  # fmt: skip
@click.option(
    "--metrics-port", type=click.IntRange(min=0, max=65535), default=9102, show_default=True,
    envvar="CONVOTRAIL_METRICS_PORT",
    help="Serve /metrics, /healthz and /readyz on this port. Env: CONVOTRAIL_METRICS_PORT.",
)  # fmt: skip
@_METRICS_HOST
@click.option("--verbose", is_flag=True, help="INFO logs.")
@_LOG_FORMAT
@_one_line_errors
def lag_exporter(
    groups: tuple[str, ...],
    sink_group: str,
    interval: float,
    metrics_port: int,
    metrics_host: str,
    verbose: bool,
    log_format: str,
) -> None:
    """Serve the consumer groups' committed-offset lag to Prometheus.

    Measured from outside the consumers, so a stopped worker's lag keeps growing on
    the dashboard: convotrail_group_lag{group,topic,partition}, plus
    convotrail_group_lag_exporter_up, _errors_total and
    _last_success_timestamp_seconds. SIGTERM or Ctrl-C stops it.
    """
    import signal
    import threading

    from convotrail.lag_exporter import serve

    _logging(verbose, log_format)
    settings = _settings()
    chosen = choose_groups(project_groups(settings, sink_group), groups)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(settings, chosen, interval, metrics_host, metrics_port, stop)


# Added to `convotrail` by cli.py.
COMMANDS: list[click.Command] = [doctor, lag_exporter]
