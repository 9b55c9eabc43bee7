"""docs/metrics.md stays true: every metric the code defines is listed there with its
type and labels, and every metric listed there exists (or belongs to a command this
checkout does not have yet)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY

from convotrail.cli import main

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("convotrail", "processors", "connectors")
ROW = re.compile(r"^\| `(convotrail_[a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


def _import_everything() -> None:
    """Every module (processors/runtime is a namespace package: walk the files)."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "migrations" in parts or parts[-1] == "__main__":
                continue
            importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))


def _defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    _import_everything()
    found = {}
    # The registered metric objects: their label names are known before any sample
    # exists (`_labelnames`: prometheus_client's own attribute, stable for years).
    for collector in list(REGISTRY._collector_to_names):
        name = getattr(collector, "_name", "")
        if not name.startswith("convotrail_"):
            continue
        kind = collector._type
        name = f"{name}_total" if kind == "counter" else name
        found[name] = (kind, tuple(sorted(collector._labelnames)))
    # Custom collectors build their families at scrape time: ask them once.
    from convotrail.lag_exporter import LagCollector

    for family in LagCollector().collect():
        found[family.name] = (family.type, tuple(sorted(family._labelnames)))  # type: ignore[attr-defined]
    return found


def _documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Name -> (type, labels, section) of every table row in docs/metrics.md."""
    rows = {}
    section = ""
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        if line.startswith("## "):
            section = line[3:]
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            assert name not in rows, f"{name} is listed twice"
            rows[name] = (kind, tuple(sorted(re.findall(r"`(\w+)`", labels))), section)
    return rows


def test_every_metric_the_code_defines_is_documented_with_its_type_and_labels() -> None:
    defined, documented = _defined(), _documented()
    assert len(defined) >= 30
    for name, (kind, labels) in defined.items():
        assert name in documented, f"{name} is not in docs/metrics.md"
        documented_kind, documented_labels, _ = documented[name]
        assert documented_kind == kind, (name, documented_kind, kind)
        assert documented_labels == labels, (name, documented_labels, labels)


def test_every_documented_metric_exists() -> None:
    defined, documented = _defined(), _documented()
    commands = set(main.commands)
    for name, (_kind, _labels, section) in documented.items():
        command = re.search(r"`convotrail ([a-z-]+)`", section)
        if command and command.group(1) not in commands:
            continue  # another command's, not in this checkout (yet)
        assert name in defined, f"docs/metrics.md lists {name}, which no code defines"
