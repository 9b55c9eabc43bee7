"""Register the contract in the schema registry and check it against what is there.

Subjects follow TopicNameStrategy (`<topic>-value`). Each subject gets the
compatibility level of the local evolution gate (schemas/evolution.py), so the
registry refuses what the gate would refuse: BACKWARD_TRANSITIVE for
conversation-events, FULL_TRANSITIVE for the output topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from convotrail.settings import TopicNames
from schemas import contract, evolution
from schemas.registry import Registry, value_subject


@dataclass(frozen=True)
class SubjectPlan:
    topic: str
    fullname: str
    compatibility: str

    @property
    def subject(self) -> str:
        return value_subject(self.topic)


@dataclass(frozen=True)
class Registered:
    subject: str
    schema_id: int
    compatibility: str


def subject_plan(topics: TopicNames) -> list[SubjectPlan]:
    return [
        SubjectPlan(topics.conversation_events, contract.CONVERSATION_EVENT, "BACKWARD_TRANSITIVE"),
        SubjectPlan(topics.conversation_state, contract.CONVERSATION_STATE, "FULL_TRANSITIVE"),
        SubjectPlan(topics.conversation_timeline, contract.TIMELINE_ENTRY, "FULL_TRANSITIVE"),
        SubjectPlan(topics.read_receipts, contract.READ_RECEIPT, "FULL_TRANSITIVE"),
        SubjectPlan(topics.delivery_status, contract.DELIVERY_STATUS, "FULL_TRANSITIVE"),
        SubjectPlan(topics.suppressed_recipients, contract.SUPPRESSED_RECIPIENT, "FULL_TRANSITIVE"),
        SubjectPlan(topics.message_routes, contract.MESSAGE_ROUTE, "FULL_TRANSITIVE"),
        SubjectPlan(topics.delivery_facts, contract.CONVERSATION_EVENT, "BACKWARD_TRANSITIVE"),
    ]


def register_contract(registry: Registry, topics: TopicNames) -> list[Registered]:
    """Set each subject's compatibility, then register the current schema (idempotent)."""
    done: list[Registered] = []
    for plan in subject_plan(topics):
        level = registry.set_compatibility(plan.compatibility, plan.subject)
        schema_id = registry.register(plan.subject, contract.expanded_json(plan.fullname))
        done.append(Registered(plan.subject, schema_id, level))
    return done


def check_against_registry(registry: Registry, topics: TopicNames) -> list[str]:
    """Problems registering the current schemas would meet; [] when all would be accepted."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    problems: list[str] = []
    for plan in subject_plan(topics):
        try:
            _, version, text = registry.latest(plan.subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                continue  # nothing registered yet: anything goes
            raise
        problems.extend(registered_problems(plan, version, json.loads(text)))
    return problems


def registered_problems(plan: SubjectPlan, version: int, registered: Any) -> list[str]:
    """Why this code's schema for `plan` and the registered version `version` do not
    mix (pure; [] when they do): new readers must read the registered records, and for
    FULL subjects the registered readers must read new records too."""
    problems: list[str] = []
    current = contract.expand(plan.fullname)
    backward = evolution.compatibility(reader=current, writer=registered)
    if not backward.compatible:
        problems.append(
            f"{plan.subject} v{version}: new readers cannot read it: {'; '.join(backward.problems)}"
        )
    if plan.compatibility.startswith("FULL"):
        forward = evolution.compatibility(reader=registered, writer=current)
        if not forward.compatible:
            problems.append(
                f"{plan.subject} v{version}: its readers cannot read new records: "
                f"{'; '.join(forward.problems)}"
            )
    return problems
