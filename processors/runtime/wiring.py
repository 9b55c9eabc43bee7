"""The loop's Kafka clients and what their error callbacks mean.

Kept apart from loop.py: building the clients (which guarantees are fixed, which
defaults an operator may change) and classifying librdkafka's asynchronous errors
are decisions of their own, and the loop only needs their outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from convotrail import clients
from convotrail.settings import Settings
from processors.runtime.config import (
    CONSUMER_DEFAULTS,
    CONSUMER_GUARANTEES,
    PRODUCER_DEFAULTS,
    RESTORE_GUARANTEES,
    RuntimeOptions,
)
from processors.runtime.errors import RuntimeFailure
from processors.runtime.topology import Topology

log = logging.getLogger(__name__)


class ClientErrors:
    """librdkafka reports some errors only through `error_cb`, on a poll: keep the one
    that must end the process, worded for an operator, until the loop raises it."""

    def __init__(self, transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self.fatal: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.fatal():
            text = error.str()
            if "fenced" in text.lower():
                self.fatal = (
                    f"fenced: another process took over {self.transactional_id} "
                    f"(two workers with the same --instance-id?): {text}"
                )
            else:
                self.fatal = f"Kafka client: {text}"
        elif error.code() == KafkaError._AUTHENTICATION:
            self.fatal = f"Kafka refused the credentials: {error.str()}"
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("no broker reachable (librdkafka keeps trying): %s", error.str())
        else:
            log.info("Kafka client: %s", error.str())


def stream_consumer(
    settings: Settings, topology: Topology[Any], options: RuntimeOptions, errors: ClientErrors
) -> Consumer:
    # Co-partitioned topologies (bounces) need partition N of every input together:
    # only the range assignor guarantees that; the others move partitions one by one.
    strategy = "range" if topology.co_partitioned else "cooperative-sticky"
    return clients.consumer(
        settings,
        topology.app_id,
        defaults={**CONSUMER_DEFAULTS, "session.timeout.ms": options.session_timeout_ms},
        guarantees={
            **CONSUMER_GUARANTEES,
            "partition.assignment.strategy": strategy,
            # No static membership (group.instance.id): it would give a restarted
            # instance its partitions back at once, but after a broker restart
            # longer than the session timeout librdkafka declared the consumer
            # "fenced by other consumer with same group.instance.id", fatally
            # (the broker-restart test, in CI). A crashed instance's partitions
            # move after session.timeout.ms instead.
        },
        error_cb=errors,
    )


def restore_consumer(settings: Settings, topology: Topology[Any], errors: ClientErrors) -> Consumer:
    return clients.consumer(
        settings, f"{topology.app_id}-restore", guarantees=RESTORE_GUARANTEES, error_cb=errors
    )


def producer_factory(
    settings: Settings, transactional_id: str, errors: ClientErrors
) -> Callable[[], Producer]:
    """Transactional producers for one id. A replaced producer is fenced by its
    successor: its errors are no longer ours, so only the newest one reports."""
    generation = 0

    def new_producer() -> Producer:
        nonlocal generation
        generation += 1
        mine = generation

        def on_error(error: KafkaError) -> None:
            if mine == generation:
                errors(error)

        return clients.producer(
            settings, PRODUCER_DEFAULTS, {"transactional.id": transactional_id}, error_cb=on_error
        )

    return new_producer


def committed_positions(
    consumer: Consumer, partitions: list[TopicPartition]
) -> list[TopicPartition]:
    """The group's committed positions of `partitions`. Under read_committed this waits
    for a pending transactional commit of these partitions (a zombie's), so the
    positions and the changelog agree."""
    for attempt in range(4):
        try:
            found: list[TopicPartition] = consumer.committed(partitions, timeout=30)
            return found
        except KafkaException as exc:
            log.warning("fetching committed positions (attempt %d): %s", attempt + 1, exc)
    raise RuntimeFailure("the group coordinator gave no committed positions in 120 s")
