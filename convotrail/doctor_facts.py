"""`convotrail doctor`'s gatherer: asks Kafka, the registry and the sink database what
is there, each with a short timeout, and returns it as facts (doctor.py judges them).

It never changes anything: no topic is created, no schema registered, no database
created or migrated (a missing SQLite file stays missing), no offset committed.
Whatever fails to answer becomes a fact ("did not answer: ...") so that one dead
service costs one line and the other checks still run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from convotrail import clients
from convotrail.doctor import (
    DatabaseFacts,
    Expected,
    Facts,
    KafkaFacts,
    RegistryFacts,
    SubjectFacts,
    TopicFacts,
)
from convotrail.errors import ConvotrailError
from convotrail.group_lag import GroupSpec, LagReader, LagUnavailable, Position
from convotrail.settings import Settings
from convotrail.topics import KafkaUnreachable, connect, topic_specs
from schemas.registration import subject_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """What to look at: the groups, the sink's group and database (None: skip it)."""

    groups: tuple[GroupSpec, ...]
    sink_group: str
    database_url: str | None
    max_lag: int
    timeout: float = 5.0


def expected(settings: Settings, scope: Scope) -> Expected:
    workers = tuple(spec.group for spec in scope.groups if spec.group != scope.sink_group)
    return Expected(
        topics=tuple(topic_specs(settings)),
        changelog_owners=workers,
        subjects=tuple(subject_plan(settings.topics)),
        partitions=settings.partitions,
        max_lag=scope.max_lag,
    )


def gather(settings: Settings, scope: Scope) -> Facts:
    database, positions = None, None
    if scope.database_url is not None:
        sink = next((g for g in scope.groups if g.group == scope.sink_group), None)
        database, positions = database_facts(scope.database_url, sink, scope.timeout)
    registry = registry_facts(settings, scope.timeout)
    try:
        admin, metadata = connect(settings, scope.timeout)
    except KafkaUnreachable as exc:
        return Facts(KafkaFacts(settings.bootstrap_servers, error=str(exc)), registry,
                     database=database)  # fmt: skip
    brokers = tuple(f"{b.id} {b.host}:{b.port}" for b in sorted(metadata.brokers.values(),
                                                                key=lambda b: b.id))  # fmt: skip
    kafka = KafkaFacts(settings.bootstrap_servers, brokers)
    topics = topic_facts(admin, metadata, expected(settings, scope), scope.timeout)
    reader = LagReader(settings, scope.timeout)
    try:
        database_positions = {scope.sink_group: positions} if positions is not None else None
        groups = reader.measure(scope.groups, database_positions, members=True)
    except LagUnavailable as exc:
        kafka = KafkaFacts(settings.bootstrap_servers, brokers,
                           error=f"Kafka at {settings.bootstrap_servers} answered but not "
                                 f"about offsets: {exc}: check the broker's log")  # fmt: skip
        groups = None
    finally:
        reader.close()
    return Facts(kafka, registry, topics, groups, database)


def topic_facts(
    admin: Any, metadata: Any, expect: Expected, timeout: float
) -> dict[str, TopicFacts]:
    """The project's topics and the processors' changelogs that exist, with their
    partitions' health and their cleanup policy."""
    wanted = {spec.name for spec in expect.topics}
    names = sorted(
        name for name in metadata.topics
        if name in wanted or any(name.startswith(f"{owner}-") and name.endswith("-changelog")
                                 for owner in expect.changelog_owners)
    )  # fmt: skip
    policies = _cleanup_policies(admin, names, timeout)
    found = {}
    for name in names:
        partitions = metadata.topics[name].partitions.values()
        found[name] = TopicFacts(
            name,
            len(partitions),
            policies.get(name),
            leaderless=tuple(sorted(p.id for p in partitions if p.leader < 0)),
            under_replicated=tuple(
                sorted(p.id for p in partitions if p.leader >= 0 and len(p.isrs) < len(p.replicas))
            ),
        )
    return found


def _cleanup_policies(admin: Any, names: list[str], timeout: float) -> dict[str, str]:
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    policies = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entry = future.result().get("cleanup.policy")
        except KafkaException as exc:  # not allowed to describe it: say nothing about it
            log.debug("describe_configs %s: %s", resource.name, exc)
            continue
        if entry is not None and entry.value is not None:
            policies[resource.name] = str(entry.value)
    return policies


def registry_facts(settings: Settings, timeout: float) -> RegistryFacts:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    url = settings.registry_url
    try:
        registry = clients.checked_registry(settings, {"timeout": timeout, "max.retries": 1})
    except ConvotrailError as exc:
        return RegistryFacts(url, error=str(exc))
    subjects = {}
    for plan in subject_plan(settings.topics):
        try:
            _, version, text = registry.latest(plan.subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                subjects[plan.subject] = SubjectFacts(plan.subject)
            else:
                subjects[plan.subject] = SubjectFacts(plan.subject, error=str(exc))
            continue
        except Exception as exc:  # the HTTP client's transport errors have no public base
            subjects[plan.subject] = SubjectFacts(plan.subject, error=f"{type(exc).__name__}: "
                                                  f"{exc}")  # fmt: skip
            continue
        try:
            level: str | None = registry.compatibility(plan.subject)
        except Exception as exc:  # a registry without per-subject levels: not judged
            log.debug("compatibility of %s: %s", plan.subject, exc)
            level = None
        subjects[plan.subject] = SubjectFacts(plan.subject, version, json.loads(text), level)
    return RegistryFacts(url, subjects)


def database_facts(
    database_url: str, sink: GroupSpec | None, timeout: float
) -> tuple[DatabaseFacts, dict[Position, int] | None]:
    """The sink database's revision, and the sink group's positions when it is at the
    head revision (None otherwise: the lag then comes from Kafka's advisory commits)."""
    import sqlalchemy as sa
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from connectors.sink.engine import (
        alembic_config,
        create_store_engine,
        current_revision,
        sqlite_path,
    )
    from connectors.sink.failures import reason
    from connectors.sink.store import Store

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        return DatabaseFacts(database_url, head, error=f"not a URL ({exc})"), None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and not path.is_file():
            # Connecting would create an empty file: the doctor changes nothing.
            return DatabaseFacts(shown, head, missing=str(path)), None
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(max(1, int(timeout)))})
    try:
        engine = create_store_engine(url.render_as_string(hide_password=False))
    except ConvotrailError as exc:
        return DatabaseFacts(shown, head, error=str(exc)), None
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
        known = revision is None or revision in {r.revision for r in script.walk_revisions()}
        facts = DatabaseFacts(shown, head, revision, known)
        if revision != head or sink is None:
            return facts, None
        return facts, Store(engine).committed_offsets(sink.group, sink.topics)
    except (SQLAlchemyError, sa.exc.DBAPIError) as exc:
        return DatabaseFacts(shown, head, error=reason(exc)), None
    finally:
        engine.dispose()
