"""The alert and recording rules of deploy/prometheus/rules/: valid for Prometheus
(`promtool check rules`), each alert and recording rule unit-tested with
`promtool test rules` (tests/deploy/prometheus/), and every alert carrying what an
on-call engineer needs: a severity, a summary, a description and a runbook section
that exists in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.prometheus import (
    REPO,
    RULE_TESTS,
    operands,
    required_tool,
    rule_files,
    rules,
)

SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return required_tool("promtool")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          cwd=REPO)  # fmt: skip


def _unit_tests() -> list[dict[str, Any]]:
    return [
        test
        for path in sorted(RULE_TESTS.glob("*.yml"))
        for test in yaml.safe_load(path.read_text())["tests"]
    ]


def test_the_rule_files_are_valid(promtool: str) -> None:
    assert rule_files(), "no rule files under deploy/prometheus/rules/"
    result = _run(promtool, "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files
    result = _run(promtool, "test", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"


def test_every_recording_rule_is_tested() -> None:
    tested = {
        case["expr"].strip() for test in _unit_tests() for case in test.get("promql_expr_test", [])
    }
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    assert recorded - tested == set()


def test_every_alert_says_how_bad_what_and_where_the_runbook_is() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    # GitHub's anchors: a heading's text, lower-cased, punctuation dropped.
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)
    }
    for rule in rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        runbook = annotations["runbook_url"]
        assert runbook == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section in docs/operations.md"


def test_alert_operands_are_found_at_the_top_level_only() -> None:
    """The integration test evaluates each operand of an alert: the split must keep
    parentheses, label matchers and modifiers whole."""
    assert operands("up == 0") == ["up"]
    assert operands(
        'sum by (a) (x{o="and"}) / sum by (a) (y) > 0.05\nand sum by (a) (x) * 60 > 1'
    ) == ['sum by (a) (x{o="and"}) / sum by (a) (y)', "sum by (a) (x) * 60"]
    assert operands("a > 0 unless on (job, instance) b > 0 unless on (job) c == 0") == [
        "a", "b", "c"
    ]  # fmt: skip
    assert operands("(a > 1 and b) > 2") == ["(a > 1 and b)"]
