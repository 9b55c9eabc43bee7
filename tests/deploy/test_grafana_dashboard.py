"""The Grafana dashboard (deploy/grafana/dashboards/convotrail.json): a row per user
group, every panel querying the provisioned Prometheus through the `datasource`
variable, every query valid PromQL (promtool), laid out without overlaps, and every
metric it names one the code exports. That each query returns data from a real
pipeline is tests/integration/test_prometheus.py's part."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import (
    DASHBOARD,
    REPO,
    dashboard_queries,
    grafana_to_promql,
    required_tool,
    rules,
)

ROWS = [
    "Throughput and lag",
    "Latency",
    "Dead letters",
    "Timers",
    "Delivery",
    "Read API",
    "Webhook intake",
]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Series Prometheus itself makes; everything else named convotrail_* comes from our code.
PROMETHEUS_SERIES = {"up"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_a_row_per_user_group_in_order(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ROWS
    assert dashboard["panels"][0]["type"] == "row"
    # Every row holds panels (rows expanded: their panels follow them at top level).
    kinds = [p["type"] for p in dashboard["panels"]]
    for index, kind in enumerate(kinds):
        if kind == "row":
            assert index + 1 < len(kinds) and kinds[index + 1] != "row"


def test_every_panel_queries_prometheus_through_the_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    # The compose provisioning names the Prometheus datasource's uid "prometheus".
    assert variable["current"]["value"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 25
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel.get("description"), panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "convotrail"


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool checks PromQL only inside rule files: each query becomes one rule."""
    promtool = required_tool("promtool")
    queries = dashboard_queries(dashboard)
    document = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{number}", "expr": grafana_to_promql(expr)}
                    for number, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(document))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def _exported_metrics() -> set[str]:
    """Every metric name the code declares (the first argument of a prometheus_client
    Counter, Gauge, Histogram or Info)."""
    names: set[str] = set()
    for folder in ("convotrail", "processors", "connectors"):
        for path in (REPO / folder).rglob("*.py"):
            names.update(re.findall(r"\(\s*\"(convotrail_\w+)\"", path.read_text()))
    return names


def _named(expr: str) -> set[str]:
    # Recorded series (level:metric:operation) are the rules' own, not exported.
    found = set(re.findall(r"(?<![\w:])(convotrail_\w+|up)(?![\w:])", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


def test_every_metric_named_by_the_dashboard_and_the_rules_is_exported(
    dashboard: dict[str, Any],
) -> None:
    exported = _exported_metrics() | PROMETHEUS_SERIES
    # Counters are declared without their _total suffix or with it; accept both.
    exported |= {name.removesuffix("_total") for name in exported}
    expressions = [expr for _, expr in dashboard_queries(dashboard)]
    expressions += [rule["expr"] for rule in rules()]
    missing = {
        name
        for expr in expressions
        for name in _named(expr)
        if name not in exported and name.removesuffix("_total") not in exported
    }
    assert missing == set()
