"""Before a processor starts: is Kafka reachable with these credentials, do its topics
exist, and are its inputs and changelogs co-partitioned? Each problem is one line
with its fix; missing changelogs are created (compacted, like Kafka Streams does).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from convotrail.settings import Settings
from convotrail.topics import KafkaUnreachable
from convotrail.topics import connect as connect_to_kafka
from processors.runtime.errors import FatalKafkaError, TopologyError
from processors.runtime.topology import Topology

log = logging.getLogger(__name__)

CHANGELOG_CONFIG = {"cleanup.policy": "compact"}


def connect(settings: Settings, timeout: float = 15.0) -> tuple[AdminClient, Any]:
    """An admin client and the cluster's metadata, or one line saying why not.

    The probe is `convotrail.topics.connect`, shared with `convotrail topics` and
    `convotrail produce`: refused credentials, no credentials on a SASL listener or a
    SASL mechanism the broker does not offer end the wait at once, with the setting to fix.
    """
    try:
        return connect_to_kafka(settings, timeout)
    except KafkaUnreachable as exc:
        raise FatalKafkaError(str(exc)) from exc


def check(settings: Settings, topology: Topology[Any], timeout: float = 15.0) -> int:
    """Check (and complete) the topics of `topology`; return the partition count."""
    admin, metadata = connect(settings, timeout)
    topics = metadata.topics
    wanted = [*topology.inputs, *topology.dead_letters.values(), *topology.outputs]
    missing = sorted({t for t in wanted if t not in topics or topics[t].error is not None})
    if missing:
        raise TopologyError(
            f"topics missing or not readable: {', '.join(missing)}: run `convotrail topics create`"
        )
    counts = {t: len(topics[t].partitions) for t in topology.inputs}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
        raise TopologyError(
            f"the inputs of {topology.app_id} must have one partition count ({listed})"
        )
    (partitions,) = set(counts.values())
    create = []
    for spec in topology.stores:
        name = topology.changelog(spec.name)
        if name in topics:
            found = len(topics[name].partitions)
            if found != partitions:
                raise TopologyError(
                    f"changelog {name} has {found} partitions, its inputs {partitions}: "
                    "a store partition must match its input partition (delete the changelog "
                    "only if its state may be rebuilt from scratch)"
                )
        else:
            create.append(NewTopic(name, partitions, settings.replication_factor,
                                   config=dict(CHANGELOG_CONFIG)))  # fmt: skip
    if create:
        futures = admin.create_topics(create, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
                log.info("created changelog %s (%d partitions, compacted)", name, partitions)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopologyError(f"creating changelog {name} failed: {exc}") from exc
    return partitions
