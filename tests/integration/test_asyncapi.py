"""The AsyncAPI document: in step with the code, and valid for a real AsyncAPI parser.

The validator is the JavaScript @asyncapi/parser with its Avro schema parser
(tests/asyncapi), the tooling consumers of the document use; it needs Node.js
and npm, and installs its locked dependencies on first use. No Kafka needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from convotrail.settings import Settings
from convotrail.topics import topic_specs
from schemas import asyncapi

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_DIR = ROOT / "tests" / "asyncapi"
VALIDATOR = VALIDATOR_DIR / "validate.mjs"
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
NODE_PACKAGES_HINT = "install Node.js and npm (Debian: apt-get install nodejs npm)"


def _installed_is_current() -> bool:
    # npm writes node_modules/.package-lock.json on every install; older than the
    # committed lock means the dependencies changed since the last `npm ci`.
    marker = VALIDATOR_DIR / "node_modules" / ".package-lock.json"
    lock = VALIDATOR_DIR / "package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


def _run_validator(document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(VALIDATOR), str(document)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def validator() -> Path:
    """The validator script, with its npm dependencies installed from the lock file."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not on PATH: {NODE_PACKAGES_HINT}", pytrace=False)
    if not _installed_is_current():
        # --ignore-scripts: no dependency needs one, and one of them only phones home.
        install = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=VALIDATOR_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if install.returncode != 0:
            pytest.fail(
                f"`npm ci` in {VALIDATOR_DIR} failed ({install.returncode}):\n"
                f"{install.stdout}\n{install.stderr}",
                pytrace=False,
            )
    return VALIDATOR


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(asyncapi.generate())
    return loaded


def test_committed_document_matches_the_code() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == asyncapi.generate(), (
        "docs/asyncapi.yaml is out of date: run `python -m schemas.asyncapi` and commit it"
    )


def test_committed_document_is_valid_asyncapi(validator: Path) -> None:
    result = _run_validator(DOCUMENT)
    assert result.returncode == 0, (
        f"validator exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    assert "valid AsyncAPI 3.0.0" in result.stdout


def test_validator_refuses_an_avro_payload_with_an_unknown_type(
    validator: Path, tmp_path: Path
) -> None:
    document = _document()
    schema = document["components"]["messages"]["ConversationEvent"]["payload"]["schema"]
    schema["fields"][0]["type"] = "dev.convotrail.events.NoSuchType"
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    result = _run_validator(broken)

    assert result.returncode == 1, f"validator accepted it:\n{result.stdout}\n{result.stderr}"
    assert "undefined type name: dev.convotrail.events.NoSuchType" in result.stdout


def test_validator_refuses_a_bad_kafka_binding(validator: Path, tmp_path: Path) -> None:
    document = _document()
    document["channels"]["conversationState"]["bindings"]["kafka"]["topicConfiguration"] = {
        "cleanup.policy": ["compacted"]
    }
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    result = _run_validator(broken)

    assert result.returncode == 1, f"validator accepted it:\n{result.stdout}\n{result.stderr}"
    assert "cleanup.policy" in result.stdout


def test_every_topic_is_a_channel() -> None:
    specs = topic_specs(Settings.from_env({}))
    channels = _document()["channels"].values()

    assert sorted(channel["address"] for channel in channels) == sorted(s.name for s in specs)


def test_compacted_topics_say_so() -> None:
    specs = {spec.name: spec for spec in topic_specs(Settings.from_env({}))}
    for channel in _document()["channels"].values():
        spec = specs[channel["address"]]
        binding = channel["bindings"]["kafka"]
        compacted = spec.config.get("cleanup.policy") == "compact"
        assert binding["partitions"] == spec.partitions
        assert (binding.get("topicConfiguration") == {"cleanup.policy": ["compact"]}) is compacted
