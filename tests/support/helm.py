"""Rendering the Helm chart and judging what it renders, for tests/deploy/test_helm.py.

helm comes from deploy/tools/install-tools.sh (`make tools`, run by `make test`); the
built-in kinds are checked with kubernetes-validate's schemas, the custom resources
(KEDA, prometheus-operator) with their CRDs' openAPIV3 schemas vendored under
tests/fixtures/crds/, and container args with the real click application.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "convotrail"
CRDS = ROOT / "tests" / "fixtures" / "crds"
# The Kubernetes release the chart is rendered for and validated against: one whose
# schemas the pinned kubernetes-validate ships.
KUBERNETES_VERSION = "1.33.0"
RELEASE = "convotrail"
NAMESPACE = "convotrail"

Document = dict[str, Any]


def helm_path() -> str | None:
    """The helm that `make tools` builds, else one on PATH."""
    cache = Path(os.environ.get("CONVOTRAIL_CACHE") or Path.home() / ".cache" / "convotrail")
    built = cache / "bin" / "helm"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    return shutil.which("helm")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def template_args(*values_files: Path, sets: Sequence[str] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--kube-version", KUBERNETES_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def documents(rendered: str) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


# -- custom resources against their CRDs ---------------------------------------------


def _closed(schema: Any) -> Any:
    """An openAPIV3 schema as the API server's strict field validation applies it: an
    object schema with `properties` admits no other field (unless it says it keeps
    unknown fields)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    # A map's values are schemas too (additionalProperties: {type: string}).
    return closed


def crd_schemas() -> dict[tuple[str, str], Mapping[str, Any]]:
    """(apiVersion, kind) -> the closed openAPIV3 schema of every served version."""
    schemas: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = _closed(schema)
    return schemas


def crd_errors(document: Document, schema: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


# -- walking the rendered objects -----------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def of_kind(docs: Sequence[Document], kind: str) -> list[Document]:
    return [doc for doc in docs if doc["kind"] == kind]


def workloads(docs: Sequence[Document]) -> list[Document]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def containers(workload: Document, *, init: bool = True) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    found = list(spec.get("initContainers", [])) if init else []
    return found + list(spec["containers"])


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A matchLabels selector (the only kind the chart writes) against pod labels."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def pod_labels(workload: Document) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def name(doc: Document) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


# -- container args against the real CLI ---------------------------------------------


def cli_refusal(args: Sequence[str]) -> str | None:
    """None when `convotrail ARGS` names a real command and its options parse (types and
    choices included, as click checks them at start-up); else click's reason."""
    from convotrail.cli import main

    command: click.Command = main
    rest = list(args)
    path = ["convotrail"]
    while isinstance(command, click.Group):
        if not rest:
            return f"{' '.join(path)} needs a subcommand"
        word = rest.pop(0)
        sub = command.commands.get(word)
        if sub is None:
            return f"{' '.join(path)} has no command {word!r}"
        command, path = sub, [*path, word]
    try:
        command.make_context(" ".join(path), rest)
    except click.ClickException as exc:
        return f"{' '.join(path)}: {exc.format_message()}"
    return None
