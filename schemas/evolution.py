"""The schema-evolution gate: every current schema against every released version.

Released versions live in schemas/released/<version>/<fullname>.avsc (expanded,
self-contained, never edited after release). The checker is the `avro` package's
ReaderWriterCompatibilityChecker, the reference implementation's rules.

Policy, per top-level record:
- ConversationEvent: BACKWARD_TRANSITIVE. New readers read every old event.
  FORWARD cannot hold in general: a new event type adds an enum symbol and a
  payload branch that old readers cannot resolve, so it is reported, not enforced.
- Output records (state, timeline, receipts, delivery status): FULL_TRANSITIVE.
  Analytics consumers on an older schema must keep reading new records, so only
  fields with defaults may be added or removed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import contract

FORWARD_ENFORCED = frozenset(
    {
        contract.CONVERSATION_STATE,
        contract.TIMELINE_ENTRY,
        contract.READ_RECEIPT,
        contract.DELIVERY_STATUS,
        contract.SUPPRESSED_RECIPIENT,
        contract.MESSAGE_ROUTE,
    }
)


@dataclass(frozen=True)
class Compatibility:
    compatible: bool
    problems: tuple[str, ...]


@dataclass(frozen=True)
class GateResult:
    fullname: str
    version: str
    backward: Compatibility
    forward: Compatibility
    forward_enforced: bool

    @property
    def passed(self) -> bool:
        return self.backward.compatible and (self.forward.compatible or not self.forward_enforced)

    def describe(self) -> str:
        def word(result: Compatibility) -> str:
            return "ok" if result.compatible else "BROKEN: " + "; ".join(result.problems)

        forward = word(self.forward) + ("" if self.forward_enforced else " (not enforced)")
        name = self.fullname.rsplit(".", 1)[-1]
        return f"{name} vs {self.version}: BACKWARD {word(self.backward)}; FORWARD {forward}"


def compatibility(reader: Any, writer: Any) -> Compatibility:
    """Can data written with `writer` be read with `reader`? (both as JSON schemas)"""
    result = ReaderWriterCompatibilityChecker().get_compatibility(  # type: ignore[no-untyped-call]
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return Compatibility(True, ())
    problems = tuple(
        f"{kind.value} at {location} ({message})"
        for kind, location, message in zip(
            result.incompatibilities,
            sorted(result.locations),
            sorted(result.messages),
            strict=False,
        )
    )
    return Compatibility(False, problems or ("incompatible",))


def gate(current: Mapping[str, Any], released: Mapping[str, Mapping[str, Any]]) -> list[GateResult]:
    """Check each current schema against each released version that has it."""
    results: list[GateResult] = []
    for version, schemas in released.items():
        for fullname, old in schemas.items():
            if fullname not in current:
                results.append(
                    GateResult(
                        fullname, version, Compatibility(False, ("schema was removed",)),
                        Compatibility(False, ("schema was removed",)), True,
                    )
                )  # fmt: skip
                continue
            new = current[fullname]
            results.append(
                GateResult(
                    fullname=fullname,
                    version=version,
                    backward=compatibility(reader=new, writer=old),
                    forward=compatibility(reader=old, writer=new),
                    forward_enforced=fullname in FORWARD_ENFORCED,
                )
            )
    return results


def current_schemas() -> dict[str, Any]:
    return {fullname: contract.expand(fullname) for fullname in contract.TOP_LEVEL}


def release(version: str, directory: Path = contract.RELEASED_DIR) -> Path:
    """Freeze the current top-level schemas as `version` (refuses to overwrite a release)."""
    target = directory / version
    if target.exists():
        raise FileExistsError(f"{target} exists: released schemas are never rewritten")
    target.mkdir(parents=True)
    for fullname, schema in current_schemas().items():
        (target / f"{fullname}.avsc").write_text(json.dumps(schema, indent=2) + "\n")
    return target
