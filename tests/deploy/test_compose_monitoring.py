"""The compose stack's Prometheus and Grafana: what they are given is what they load.

Prometheus must scrape every convotrail process on the port its command line gives
and load the project's rule files through the mount; Grafana must find the
datasource its dashboards name and the folder they are mounted in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.deploy.compose_model import ROOT, load_compose, processes

PROMETHEUS_CONFIG = ROOT / "deploy/compose/prometheus.yml"
GRAFANA = ROOT / "deploy/grafana"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (ROOT / source).resolve()
    return found


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a path the container reads comes from on the host, through its mounts."""
    path = PurePosixPath(container_path)
    for target, source in _mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the checkout")


def _targets(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                yield job["job_name"], target


def test_prometheus_reads_the_mounted_config(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"])
    assert _host_path(prometheus, flags["--config.file"]) == PROMETHEUS_CONFIG


def test_prometheus_scrapes_every_process_on_its_metrics_port(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    expected = {f"{process.service}:{process.port}" for process in processes(compose)}
    targets = {target for _, target in _targets(prometheus_config)}
    assert targets == expected | {"localhost:9090"}
    jobs = [job for job, _ in _targets(prometheus_config)]
    assert all(job.startswith("convotrail-") for job in jobs if job != "prometheus")


def test_prometheus_loads_every_project_rule_file(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    prometheus = compose["services"]["prometheus"]
    patterns = prometheus_config["rule_files"]
    host_patterns = [_host_path(prometheus, pattern) for pattern in patterns]
    assert all(p.parent == ROOT / "deploy/prometheus/rules" for p in host_patterns)
    # A rule file the glob misses would be silently not loaded (e.g. `.yaml`).
    for rules in (ROOT / "deploy/prometheus/rules").iterdir():
        if not rules.name.startswith("."):
            assert any(fnmatch(rules.name, p.name) for p in host_patterns), rules.name


def test_promtool_accepts_the_config(
    compose: dict[str, Any], prometheus_config: dict[str, Any], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian package prometheus, installed by .ci/run)")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    # The rule globs point into the container; point them at the checkout instead.
    prometheus = compose["services"]["prometheus"]
    local = dict(prometheus_config)
    local["rule_files"] = [str(_host_path(prometheus, p)) for p in local["rule_files"]]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(local), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_from_the_checkout(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert _host_path(grafana, "/etc/grafana/provisioning") == GRAFANA / "provisioning"
    (provider,) = _provisioning("dashboards")["providers"]
    assert _host_path(grafana, provider["options"]["path"]) == GRAFANA / "dashboards"


def test_grafana_datasource_is_the_compose_prometheus(compose: dict[str, Any]) -> None:
    (datasource,) = _provisioning("datasources")["datasources"]
    assert (datasource["name"], datasource["uid"]) == ("Prometheus", "prometheus")
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    published = compose["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://prometheus:{published}"


def test_dashboards_name_only_the_provisioned_datasource() -> None:
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        variables = {
            item["name"]: item
            for item in dashboard.get("templating", {}).get("list", [])
            if item.get("type") == "datasource"
        }
        for uid in _datasource_uids(dashboard):
            if uid.startswith("${"):
                variable = variables[uid[2:-1]]
                assert variable["query"] == "prometheus", path.name
            else:
                assert uid == "prometheus", f"{path.name}: datasource {uid}"


def _provisioning(kind: str) -> dict[str, Any]:
    (path,) = (GRAFANA / "provisioning" / kind).glob("*.yml")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict) and loaded["apiVersion"] == 1
    return loaded


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                # Grafana's built-in annotation source is not a provisioned one.
                if value.get("type") != "grafana":
                    yield str(value["uid"])
            elif key == "datasource" and isinstance(value, str):
                yield value
            else:
                yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)
