"""Prometheus for the tests: the project's rule files, promtool, a real server.

Debian's `prometheus` package (installed by .ci/run) brings both binaries. Without
them a test is skipped on a developer's machine and fails under CI=true, so CI can
never pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS = REPO / "tests" / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "convotrail.json"


def required_tool(name: str) -> str:
    """The path of `name` (promtool, prometheus); skipped when missing, failed under CI."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is not None:
        return path
    message = f"`{name}` is not installed: `apt-get install prometheus` (.ci/run does it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alert) of every rule file, in file order."""
    found: list[dict[str, Any]] = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def rules_with_short_for(directory: Path, hold: str = "1s") -> list[Path]:
    """Copies of the rule files with every alert's `for:` set to `hold`: the test
    proves the conditions, and cannot wait out production's minutes."""
    copies = []
    for path in rule_files():
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = hold
        copy = directory / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        copies.append(copy)
    return copies


# Binary operators that join the operands of an alert's condition (PromQL's
# comparison and set operators), with their optional modifiers.
_JOINS = re.compile(
    r"\s+(?:and|or|unless|==|!=|>=|<=|>|<)(?:\s+bool)?"
    r"(?:\s+(?:on|ignoring)\s*\([^)]*\))?(?:\s+group_(?:left|right)(?:\s*\([^)]*\))?)?\s+"
)
_NUMBER = re.compile(r"^[\d.]+(?:\s*[*/]\s*[\d.]+)*$")


def operands(expr: str) -> list[str]:
    """The operands of an alert expression's top-level comparisons and set operators,
    constants left out: `a > 0.1 and b / c > 0.25` gives [`a`, `b / c`]. Each must
    return data for the alert to be able to fire."""
    parts, depth, start = [], 0, 0
    text = " ".join(expr.split())
    position = 0
    while position < len(text):
        char = text[position]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and char == " ":
            match = _JOINS.match(text, position)
            if match:
                parts.append(text[start:position])
                start = position = match.end()
                continue
        position += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if not _NUMBER.match(part.strip())]


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' nested panels too."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def _panels(container: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in container.get("panels", []):
        panels.append(panel)
        panels.extend(_panels(panel))
    return panels


def grafana_to_promql(expr: str, rate_interval: str = "5m") -> str:
    """A panel's query as Grafana sends it: its variables replaced."""
    return expr.replace("$__rate_interval", rate_interval).replace(
        "${__rate_interval}", rate_interval
    )


@dataclass
class PrometheusServer:
    """A real Prometheus on a free port, its data in a temporary directory."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"

    def _get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
            raise AssertionError(f"{path} {params}: {body.get('error')}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now (a query error fails)."""
        data = self._get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", (promql, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return found

    def firing(self, alertname: str) -> list[dict[str, str]]:
        """The label sets of `alertname`'s firing alerts."""
        return [
            alert["labels"]
            for alert in self.alerts()
            if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
        ]

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups

    def targets_up(self) -> dict[str, float]:
        return {s["metric"]["job"]: float(s["value"][1]) for s in self.query("up")}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(
    directory: Path, port: int, targets: dict[str, list[str]], rule_paths: list[Path]
) -> PrometheusServer:
    """Prometheus scraping `targets` (job name -> host:port list) every second, evaluating
    `rule_paths` every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                   "scrape_timeout": "1s"},
        "rule_files": [str(path) for path in rule_paths],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": addresses}]}
            for job, addresses in targets.items()
        ],
    }  # fmt: skip
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [required_tool("prometheus"), f"--config.file={config_path}",
             f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = PrometheusServer(port, process, log)
    deadline = time.monotonic() + 60
    while not server.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"prometheus did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return server
