"""docker-compose.yml: valid against the Compose Specification, and true to the project.

The specification's JSON schema (tests/fixtures/compose-spec/) catches what Compose
itself would refuse; the rules below catch what it would accept and run wrongly: a
service with no health check, a dependency that does not wait, a mount of a file that
is not there, a `convotrail` option that does not exist, a health check or scrape
target on the wrong port, a secret with a default, a port open beyond the host.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import click
import pytest
from jsonschema import Draft7Validator

from tests.deploy.compose_model import (
    ROOT,
    command_lines,
    environment,
    is_convotrail,
    is_one_shot,
    load_compose,
    parse_command,
    processes,
    project_version,
)

SCHEMA_FILE = ROOT / "tests/fixtures/compose-spec/compose-spec.json"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|SIGNING_KEY|PUBLIC_KEY")
REQUIRED_VARIABLE = re.compile(r"^\$\{\w+:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _schema_errors(document: Any) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # The schema says draft-07 in a spelling ("https://.../draft-07/schema", no "#")
    # that jsonschema does not recognise, so the draft is named here.
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []


def test_the_specification_refuses_what_compose_refuses(compose: dict[str, Any]) -> None:
    # The vendored schema is not vacuous: a misspelt condition and an unknown key fail.
    broken = copy.deepcopy(compose)
    broken["services"]["sink"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["api"]["healthcheck"]["intervall"] = "5s"
    errors = _schema_errors(broken)
    assert any(e.startswith("services/sink/depends_on") for e in errors), errors
    assert any(e.startswith("services/api/healthcheck") for e in errors), errors


def test_the_whole_system_is_there(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "kafka", "registry", "postgres", "init", "worker-conversation", "worker-bounces",
        "worker-receipts", "sink", "intake", "api", "lag-exporter", "prometheus", "grafana",
    }  # fmt: skip
    assert set(services) == expected


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if is_one_shot(service):
            # Docker runs a check only while a container runs; a job's signal is its exit.
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert service.get("restart") == "unless-stopped", f"{name}: no restart policy"


def test_every_dependency_waits_for_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for target, rule in depends_on.items():
            assert target in services and target != name, f"{name} -> {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} -> {target}"
            elif condition == "service_completed_successfully":
                assert is_one_shot(services[target]), f"{name} -> {target}"
            else:
                pytest.fail(f"{name} -> {target}: {condition} waits for nothing")


def test_one_shot_init_runs_before_every_convotrail_process(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services["init"]
    assert is_one_shot(init)
    commands = [argv[1:3] for argv in command_lines(init)]
    assert commands == [["topics", "create"], ["schemas", "register"]]
    for name, service in services.items():
        if is_convotrail(service) and name != "init":
            condition = service["depends_on"]["init"]["condition"]
            assert condition == "service_completed_successfully", name


def test_every_mounted_host_path_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_published_ports_are_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to all"


def test_no_secret_has_a_default(services: dict[str, dict[str, Any]]) -> None:
    # A secret is either required from the operator's environment (`${X:?why}`, so
    # Compose stops with its name) or passed through only when set there (no value).
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and value is not None:
                assert REQUIRED_VARIABLE.match(value), f"{name}: {key}={value}"


def test_images_are_pinned_and_ours_is_the_project_version(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        image = service["image"]
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: unpinned {image}"
        if is_convotrail(service):
            assert image == f"convotrail:{project_version()}", name
            assert service["build"]["args"]["VERSION"] == project_version(), name


def test_convotrail_processes_set_no_stray_kafka_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    # Every KAFKA_<X> variable becomes librdkafka's <x>: a copied broker setting such
    # as KAFKA_HEAP_OPTS would stop every client with "No such configuration property".
    for name, service in services.items():
        if is_convotrail(service):
            kafka = {key for key in environment(service) if key.startswith("KAFKA_")}
            assert kafka == {"KAFKA_BOOTSTRAP_SERVERS"}, name


def test_kafka_keeps_its_data_on_the_volume(services: dict[str, dict[str, Any]]) -> None:
    # The image's default log dir is under /tmp, outside the mounted volume.
    kafka = services["kafka"]
    mounts = dict(volume.split(":")[1::-1] for volume in kafka["volumes"])
    env = environment(kafka)
    assert env["KAFKA_LOG_DIRS"] in mounts and mounts[env["KAFKA_LOG_DIRS"]] == "kafka-data"
    # As on the local stack: a misspelt topic fails loudly instead of being created.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_every_convotrail_command_is_a_real_command(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if not is_convotrail(service):
            continue
        for argv in command_lines(service):
            try:
                parse_command(argv, environment(service))
            except click.ClickException as exc:
                pytest.fail(f"{name}: `{' '.join(argv)}`: {exc.format_message()}")


def test_a_made_up_option_is_refused_by_the_parser() -> None:
    # The check above is only as good as the parser: an unknown option must fail it.
    with pytest.raises(click.UsageError):
        parse_command(["convotrail", "worker", "--metrics-prot", "9100"], {})
    with pytest.raises(click.UsageError):
        parse_command(["convotrail", "workers"], {})


def test_processes_listen_where_they_are_probed(compose: dict[str, Any]) -> None:
    found = list(processes(compose))
    assert {p.service for p in found} == {
        "worker-conversation", "worker-bounces", "worker-receipts", "sink", "intake", "api",
        "lag-exporter",
    }  # fmt: skip
    for process in found:
        assert process.health_port == process.port, process.service
        assert process.health_url.startswith("http://127.0.0.1:"), process.service
        # 127.0.0.1 inside the container would be unreachable for Prometheus.
        assert process.bind_host == "0.0.0.0", process.service
        assert process.params["log_format"] == "json", process.service


def test_every_processor_runs_once_with_its_own_identity_and_state(
    services: dict[str, dict[str, Any]],
) -> None:
    workers = {
        name: (parse_command(argv, environment(service)).params, environment(service), service)
        for name, service in services.items()
        if is_convotrail(service)
        for argv in command_lines(service)
        if argv[1] == "worker"
    }
    worker = parse_command(["convotrail", "worker"], {}).command
    (processor,) = [param for param in worker.params if param.name == "processor"]
    assert isinstance(processor.type, click.Choice)
    assert sorted(params["processor"] for params, _, _ in workers.values()) == sorted(
        processor.type.choices
    )
    home = _dockerfile_env("CONVOTRAIL_HOME")
    instance_ids = {params["instance_id"] for params, _, _ in workers.values()}
    assert len(instance_ids) == len(workers) and None not in instance_ids
    volumes = set()
    for name, (_, env, service) in workers.items():
        assert env.get("CONVOTRAIL_HOME") in (None, home), name
        (volume,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == home]
        volumes.add(volume)
    assert len(volumes) == len(workers), "workers share a state volume"


def _dockerfile_env(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(rf"\b{name}=(\S+)", text)
    assert match, f"Dockerfile sets no {name}"
    return match.group(1)
