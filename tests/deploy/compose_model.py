"""docker-compose.yml as the deploy tests read it: its services, which of them run the
convotrail image, the `convotrail` command lines they run, parsed by the real click
app, and the ports their health checks and Prometheus reach.

Nothing here starts a container: the file is read as Compose would read it (YAML with
merge keys resolved), and the command lines go through the same click parser the
image's ENTRYPOINT runs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import click
import yaml

from convotrail.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The shells a one-shot service may run `convotrail` commands through.
SHELL_ENTRYPOINTS = (["/bin/sh", "-c"], ["/bin/sh", "-ec"])


def load_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def project_version() -> str:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert isinstance(version, str)
    return version


def is_convotrail(service: Mapping[str, Any]) -> bool:
    """Runs the project's own image (built from ./Dockerfile)."""
    return str(service.get("image", "")).startswith("convotrail:")


def is_one_shot(service: Mapping[str, Any]) -> bool:
    """A job that runs to completion (init), as opposed to a long-running process."""
    return service.get("restart") == "no"


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        pairs = (item.partition("=") for item in env)
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def command_lines(service: Mapping[str, Any]) -> list[list[str]]:
    """Every `convotrail ...` argv the service runs: its command after the image's
    ENTRYPOINT, or each `&&`-joined command of a shell entrypoint."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        return [["convotrail", *map(str, command)]]
    assert entrypoint in SHELL_ENTRYPOINTS, f"unexpected entrypoint {entrypoint}"
    assert len(command) == 1, "a shell entrypoint takes one script"
    lines = [shlex.split(part) for part in command[0].split("&&")]
    for line in lines:
        assert line[0] == "convotrail", f"{line}: only convotrail commands belong here"
    return lines


def parse_command(argv: list[str], env: Mapping[str, str | None]) -> click.Context:
    """Resolve argv through the click app and parse its options, as the container
    would, with the service's environment (options read CONVOTRAIL_* variables).
    Raises click.UsageError for an unknown command or option, BadParameter for a bad
    value."""
    assert argv[0] == "convotrail", argv
    command: click.Command = main
    context = click.Context(main, info_name="convotrail")
    name, args = "convotrail", argv[1:]
    while isinstance(command, click.Group):
        found_name, found, args = command.resolve_command(context, args)
        assert found is not None and found_name is not None
        parent = context
        command, name = found, found_name
        context = click.Context(command, info_name=name, parent=parent)
    visible = {key: value for key, value in env.items() if value is not None}
    # Only the service's own variables: the test process's CONVOTRAIL_* must not leak in.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CONVOTRAIL_")}
    with mock.patch.dict(os.environ, {**clean, **visible}, clear=True):
        return command.make_context(name, list(args), parent=context.parent)


@dataclass(frozen=True)
class Process:
    """A long-running convotrail service: where it listens and how it is probed."""

    service: str
    params: Mapping[str, Any]
    health_url: str

    @property
    def port(self) -> int:
        """The port its metrics are served on: --metrics-port, else its HTTP --port."""
        port = self.params.get("metrics_port")
        if port is None:
            port = self.params["port"]
        return int(port)

    @property
    def bind_host(self) -> str:
        host = self.params.get("metrics_host") if "metrics_port" in self.params else None
        return str(host if host is not None else self.params["host"])

    @property
    def health_port(self) -> int | None:
        return urlsplit(self.health_url).port


def health_url(service: Mapping[str, Any]) -> str:
    """The URL a service's health check fetches (the last word of its test)."""
    test = service["healthcheck"]["test"]
    url = str(test[-1]).split()[-1]
    assert url.startswith("http://"), f"health check without a URL: {test}"
    return url


def processes(compose: Mapping[str, Any]) -> Iterator[Process]:
    for name, service in compose["services"].items():
        if is_convotrail(service) and not is_one_shot(service):
            (argv,) = command_lines(service)
            context = parse_command(argv, environment(service))
            yield Process(name, context.params, health_url(service))
