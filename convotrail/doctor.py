"""`convotrail doctor`'s checks: from gathered facts to findings, one line each.

Pure: the facts (what Kafka, the registry and the database said) are gathered by
doctor_facts.py; here every check turns them into findings, and each problem is one
line that names the thing and says the fix. Nothing here does I/O or reads a clock,
so every line is unit-tested without a broker (tests/unit/test_doctor.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from convotrail.group_lag import GroupLag
from convotrail.terminal import escape
from convotrail.topics import TopicSpec
from schemas.registration import SubjectPlan, registered_problems

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"
DELETE = "delete"  # Kafka's default cleanup.policy


@dataclass(frozen=True)
class Finding:
    check: str  # kafka, registry, topics, subjects, group, database
    status: str  # ok, problem, skipped
    text: str  # one line: what is wrong, then the fix

    @property
    def ok(self) -> bool:
        return self.status != PROBLEM


# -- facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaFacts:
    bootstrap: str
    brokers: tuple[str, ...] = ()  # "<id> <host>:<port>"
    error: str | None = None  # one line with its fix (convotrail.topics.connect's)


@dataclass(frozen=True)
class TopicFacts:
    name: str
    partitions: int
    cleanup_policy: str | None  # None: the broker did not say
    leaderless: tuple[int, ...] = ()
    under_replicated: tuple[int, ...] = ()


@dataclass(frozen=True)
class SubjectFacts:
    subject: str
    version: int | None = None  # None: not registered
    schema: Any = None  # the latest version's schema (parsed JSON)
    compatibility: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RegistryFacts:
    url: str
    subjects: Mapping[str, SubjectFacts] = field(default_factory=dict)
    error: str | None = None  # one line with its fix


@dataclass(frozen=True)
class DatabaseFacts:
    url: str  # password hidden
    head: str | None
    revision: str | None = None
    known: bool = True  # the revision is one of this code's migrations
    missing: str | None = None  # the SQLite file that does not exist
    error: str | None = None


@dataclass(frozen=True)
class Facts:
    kafka: KafkaFacts
    registry: RegistryFacts
    topics: Mapping[str, TopicFacts] | None = None  # None: Kafka did not answer
    groups: Sequence[GroupLag] | None = None  # None: Kafka did not answer
    database: DatabaseFacts | None = None  # None: not checked (--no-database)


@dataclass(frozen=True)
class Expected:
    """What the code expects of the cluster."""

    topics: tuple[TopicSpec, ...]
    # Worker app ids: `<app id>-<store>-changelog` topics are their state's changelogs.
    changelog_owners: tuple[str, ...]
    subjects: tuple[SubjectPlan, ...]
    partitions: int
    max_lag: int


# -- checks ----------------------------------------------------------------------------


def diagnose(facts: Facts, expected: Expected) -> list[Finding]:
    return [
        *check_kafka(facts.kafka),
        *check_topics(facts.topics, expected, facts.kafka.bootstrap),
        *check_registry(facts.registry),
        *check_subjects(facts.registry, expected.subjects),
        *check_groups(facts.groups, expected.max_lag),
        *check_database(facts.database),
    ]


def check_kafka(kafka: KafkaFacts) -> list[Finding]:
    if kafka.error is not None:
        return [Finding("kafka", PROBLEM, kafka.error)]
    brokers = ", ".join(kafka.brokers)
    count = len(kafka.brokers)
    return [Finding("kafka", OK, f"kafka at {kafka.bootstrap}: {count} broker(s) ({brokers})")]


def _changelogs(topics: Mapping[str, TopicFacts], expected: Expected) -> list[TopicSpec]:
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(name, expected.partitions, 1, compact, "changelog")
        for name in sorted(topics)
        for owner in expected.changelog_owners
        if name.startswith(f"{owner}-") and name.endswith("-changelog")
    ]


def _co_partitioned(spec: TopicSpec) -> bool:
    # A dead-letter topic meets nothing by key: its partition count is free (the sink
    # creates a missing one; an existing one with another count is fine).
    return not spec.name.endswith(".dlq")


def check_topics(
    topics: Mapping[str, TopicFacts] | None, expected: Expected, bootstrap: str
) -> list[Finding]:
    if topics is None:
        return [Finding("topics", SKIPPED, "topics: not checked (Kafka did not answer)")]
    specs = [*expected.topics, *_changelogs(topics, expected)]
    found = [(spec, topics[spec.name]) for spec in specs if spec.name in topics]
    if not found:
        return [Finding(
            "topics", PROBLEM, f"none of the {len(specs)} topics exists (the first is "
            f"{specs[0].name}): run `convotrail topics create`, or set "
            "CONVOTRAIL_TOPIC_PREFIX if this installation's topics carry a prefix",
        )]  # fmt: skip
    findings = [
        Finding("topics", PROBLEM, f"topic {spec.name} is missing: run `convotrail topics "
                "create` (it creates every missing topic and changes none)")
        for spec in specs if spec.name not in topics
    ]  # fmt: skip
    findings += _partition_findings(found, expected.partitions, bootstrap)
    for spec, facts in found:
        findings += _topic_findings(spec, facts, bootstrap)
    if not findings:
        changelogs = len(specs) - len(expected.topics)
        also = f" and {changelogs} processor changelog(s)" if changelogs else ""
        findings.append(Finding(
            "topics", OK, f"topics: all {len(expected.topics)} present{also}, "
            f"{expected.partitions} partitions each, cleanup policies as designed",
        ))  # fmt: skip
    return findings


def _partition_findings(
    found: list[tuple[TopicSpec, TopicFacts]], want: int, bootstrap: str
) -> list[Finding]:
    counts = {spec.name: facts.partitions for spec, facts in found if _co_partitioned(spec)}
    wrong = {name: count for name, count in counts.items() if count != want}
    if not wrong:
        return []
    if len(counts) > 1 and len(set(counts.values())) == 1:
        (count,) = set(counts.values())
        return [Finding(
            "topics", PROBLEM, f"every topic has {count} partitions, expected {want} "
            f"(CONVOTRAIL_PARTITIONS): if {count} is the cluster's count, set "
            f"CONVOTRAIL_PARTITIONS={count} for every convotrail process",
        )]  # fmt: skip
    findings = []
    for name, count in sorted(wrong.items()):
        head = (f"topic {name} has {count} partitions, expected {want}: `convotrail topics "
                "create` never changes an existing topic; ")  # fmt: skip
        if count < want:
            fix = (
                f"grow it with `kafka-topics.sh --bootstrap-server {bootstrap} --alter "
                f"--topic {name} --partitions {want}` (keys move to other partitions: "
                "stop its producers and workers and let its consumers drain it first)"
            )
        else:
            fix = (f"a topic cannot shrink: delete it (`kafka-topics.sh --bootstrap-server "
                   f"{bootstrap} --delete --topic {name}`, its records are lost) and run "
                   "`convotrail topics create`")  # fmt: skip
        findings.append(Finding("topics", PROBLEM, head + fix))
    return findings


def _topic_findings(spec: TopicSpec, facts: TopicFacts, bootstrap: str) -> list[Finding]:
    findings = []
    want = spec.config.get("cleanup.policy", DELETE)
    if facts.cleanup_policy is not None and facts.cleanup_policy != want:
        why = (
            "a table's topic keeps the latest record per key, for ever"
            if want == "compact"
            else "compaction would drop facts of a log that must keep every one"
        )
        findings.append(Finding(
            "topics", PROBLEM, f"topic {spec.name} has cleanup.policy={facts.cleanup_policy}, "
            f"expected {want} ({why}): run `kafka-configs.sh --bootstrap-server {bootstrap} "
            f"--alter --entity-type topics --entity-name {spec.name} --add-config "
            f"cleanup.policy={want}`",
        ))  # fmt: skip
    if facts.leaderless:
        findings.append(Finding(
            "topics", PROBLEM, f"topic {spec.name}: partitions {_numbers(facts.leaderless)} "
            "have no leader: the brokers holding them are down; start them "
            f"(`kafka-topics.sh --bootstrap-server {bootstrap} --describe "
            "--unavailable-partitions` lists them)",
        ))  # fmt: skip
    if facts.under_replicated:
        findings.append(Finding(
            "topics", PROBLEM, f"topic {spec.name}: partitions "
            f"{_numbers(facts.under_replicated)} are under-replicated: a broker holding a "
            "replica is down or behind; start it or let it catch up "
            f"(`kafka-topics.sh --bootstrap-server {bootstrap} --describe "
            "--under-replicated-partitions`)",
        ))  # fmt: skip
    return findings


def _numbers(values: Sequence[int]) -> str:
    return ", ".join(str(value) for value in sorted(values))


def check_registry(registry: RegistryFacts) -> list[Finding]:
    if registry.error is not None:
        return [Finding("registry", PROBLEM, registry.error)]
    return [Finding("registry", OK, f"schema registry at {registry.url} answered")]


def check_subjects(registry: RegistryFacts, plans: Sequence[SubjectPlan]) -> list[Finding]:
    if registry.error is not None:
        return [Finding("subjects", SKIPPED, "subjects: not checked (the registry did not "
                        "answer)")]  # fmt: skip
    found = {p.subject: registry.subjects.get(p.subject, SubjectFacts(p.subject)) for p in plans}
    if plans and all(f.version is None and f.error is None for f in found.values()):
        return [Finding(
            "subjects", PROBLEM, f"none of the {len(plans)} subjects is registered (the first "
            f"is {plans[0].subject}): run `convotrail schemas register` (it also sets their "
            "compatibility levels)",
        )]  # fmt: skip
    findings = []
    for plan in plans:
        facts = found[plan.subject]
        if facts.error is not None:
            findings.append(Finding(
                "subjects", PROBLEM, f"subject {plan.subject}: the registry said: "
                f"{facts.error}: check SCHEMA_REGISTRY_URL and the registry's log",
            ))  # fmt: skip
            continue
        if facts.version is None:
            findings.append(Finding(
                "subjects", PROBLEM, f"subject {plan.subject} is not registered: run "
                f"`convotrail schemas register` (it also sets its compatibility level, "
                f"{plan.compatibility})",
            ))  # fmt: skip
            continue
        for problem in registered_problems(plan, facts.version, facts.schema):
            findings.append(Finding(
                "subjects", PROBLEM, f"subject {problem}: this code and the registry "
                "disagree: run the convotrail version that registered it "
                "(`convotrail schemas check` says more)",
            ))  # fmt: skip
        if facts.compatibility is not None and facts.compatibility != plan.compatibility:
            findings.append(Finding(
                "subjects", PROBLEM, f"subject {plan.subject} has compatibility "
                f"{facts.compatibility}, expected {plan.compatibility} (else the registry "
                "accepts schemas that break readers): run `convotrail schemas register`",
            ))  # fmt: skip
    if not findings:
        findings.append(Finding(
            "subjects", OK, f"subjects: all {len(plans)} registered, compatible with this "
            "code's schemas, compatibility levels as designed",
        ))  # fmt: skip
    return findings


def check_groups(groups: Sequence[GroupLag] | None, max_lag: int) -> list[Finding]:
    if groups is None:
        return [Finding("groups", SKIPPED, "consumer groups: not checked (Kafka did not "
                        "answer)")]  # fmt: skip
    return [_group_finding(group, max_lag) for group in groups]


def _group_finding(group: GroupLag, max_lag: int) -> Finding:
    name, runs = group.spec.group, group.spec.runs
    if group.error is not None:
        return Finding(
            "group", PROBLEM, f"group {name}: {group.error}: check that its coordinator "
            "broker is up and that these credentials may describe the group",
        )  # fmt: skip
    members = "members unknown" if group.members is None else f"{group.members} member(s)"
    source = "; positions from the sink database" if group.positions == "database" else ""
    total = group.total
    if total <= max_lag:
        return Finding("group", OK, f"group {name}: {total} records behind ({members}{source})")
    behind = sorted((p for p in group.partitions if p.lag), key=lambda p: (-p.lag, p.topic))
    where = ", ".join(f"{p.topic}[{p.partition}] {p.lag}" for p in behind[:3])
    if len(behind) > 3:
        where += f" and {len(behind) - 3} more partitions"
    if group.members == 0:
        fix = f"nothing consumes it: start `{runs}`"
    elif group.members is None:
        fix = f"check that `{runs}` runs and keeps up"
    else:
        fix = (f"its {group.members} member(s) do not keep up: check their logs and "
               "convotrail_consumer_lag, or start more (at most one per partition)")  # fmt: skip
    return Finding(
        "group", PROBLEM, f"group {name} is {total} records behind, more than --max-lag "
        f"{max_lag} ({where}{source}): {fix}",
    )  # fmt: skip


def check_database(database: DatabaseFacts | None) -> list[Finding]:
    if database is None:
        return [Finding("database", SKIPPED, "sink database: not checked (--no-database)")]
    url, head = database.url, database.head
    if database.missing is not None:
        text = (f"no sink database at {database.missing}: start `convotrail sink` (it creates "
                "and migrates it), or point --database-url (CONVOTRAIL_DATABASE_URL) at the "
                "sink's database")  # fmt: skip
    elif database.error is not None:
        text = (f"sink database {url} cannot be opened: {database.error}: check that it is "
                "up and --database-url (CONVOTRAIL_DATABASE_URL)")  # fmt: skip
    elif not database.known:
        text = (f"sink database {url} is at schema revision {database.revision}, which this "
                f"code does not know (its head is {head}): a newer convotrail migrated it; "
                "run that version")  # fmt: skip
    elif database.revision != head:
        text = (f"sink database {url} is at schema revision {database.revision or 'none'}, "
                f"this code's head is {head}: start `convotrail sink` of this version once "
                "(it migrates the database on start)")  # fmt: skip
    else:
        return [Finding("database", OK, f"sink database {url}: at the head revision {head}")]
    return [Finding("database", PROBLEM, text)]


# -- output ----------------------------------------------------------------------------

_LABELS = {OK: "ok", PROBLEM: "PROBLEM", SKIPPED: "skipped"}


def render_text(findings: Sequence[Finding]) -> str:
    """One line per finding (untrusted text escaped), then the verdict."""
    lines = [f"{_LABELS[f.status]:<8} {escape(f.text)}" for f in findings]
    problems = sum(1 for f in findings if not f.ok)
    lines.append(f"doctor: {problems} problem(s)" if problems else "doctor: no problem found")
    return "\n".join(lines)


def render_json(findings: Sequence[Finding]) -> str:
    problems = sum(1 for f in findings if not f.ok)
    body = {
        "ok": problems == 0,
        "problems": problems,
        "findings": [{"check": f.check, "status": f.status, "text": f.text} for f in findings],
    }
    return json.dumps(body, indent=2)
