"""Committed-offset lag of the project's consumer groups, measured from outside.

Shared by `convotrail doctor` (one measurement) and `convotrail lag-exporter` (one
every few seconds), so that lag stays visible while the consumers themselves are down.
Lag per partition is the high watermark minus the group's committed offset (or minus
the low watermark where the group has committed nothing: it would start there).

Transactions need a second look. The workers commit `last processed offset + 1` in
their Kafka transactions and the sink commits the same, but a transaction's commit
marker takes the next offset of every partition it wrote: a fully caught-up group sits
one offset below the high watermark of every partition written transactionally
(conversation-events gets derived events that way, the timeline and state topics
everything). `high - committed` alone would report a lag of 1 forever. So each
partition whose offsets say it is behind is probed: a read_committed consumer
positioned at the committed offset either meets a record (the lag stands, counted in
offsets like every lag tool) or the partition's end (markers, aborted records or an
open transaction only: nothing to read yet, lag 0).

This module never commits an offset and never joins a group: its consumers only ask
for committed offsets or assign partitions, they never subscribe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings

log = logging.getLogger(__name__)

Position = tuple[str, int]  # (topic, partition)

DEFAULT_SINK_GROUP = "convotrail-sink"  # `convotrail sink --group`'s default
# The probe's group id: needed to build a consumer, never used to commit or join.
PROBE_GROUP = "convotrail-lag-probe"


# What a group coordinator answers while it moves or loads: ask again.
_COORDINATOR_MOVING = frozenset({
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._WAIT_COORD,
})  # fmt: skip


class LagUnavailable(ConvotrailError):
    """Kafka did not say the offsets a lag is computed from."""


@dataclass(frozen=True)
class GroupSpec:
    """A consumer group of the project: the topics it reads, and what runs in it."""

    group: str
    topics: tuple[str, ...]
    runs: str


# The processors' app ids (ConversationOptions, BounceOptions, ReceiptsOptions), written
# out because importing the processors and the sink costs seconds;
# tests/unit/test_group_lag.py checks them and the topics below against the topologies
# and the sink themselves.
CONVERSATIONS, BOUNCES, RECEIPTS = (
    "convotrail-conversations",
    "convotrail-bounces",
    "convotrail-receipts",
)


def project_groups(settings: Settings, sink_group: str = DEFAULT_SINK_GROUP) -> list[GroupSpec]:
    """The three processors' groups (their app ids carry the topic prefix, like their
    topics) and the sink's, with the topics each reads (the sink's: its
    `sink_sources`, also checked by the test)."""
    names = settings.topics
    prefix = names.prefix
    return [
        GroupSpec(f"{prefix}{CONVERSATIONS}", (names.conversation_events,),
                  "convotrail worker --processor conversation"),
        GroupSpec(f"{prefix}{BOUNCES}",
                  (names.conversation_events, names.message_routes,
                   names.delivery_notifications, names.delivery_facts),
                  "convotrail worker --processor bounces"),
        GroupSpec(f"{prefix}{RECEIPTS}", (names.conversation_events,),
                  "convotrail worker --processor receipts"),
        GroupSpec(sink_group,
                  (names.conversation_timeline, names.conversation_state,
                   names.read_receipts, names.delivery_status),
                  "convotrail sink"),
    ]  # fmt: skip


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing on this partition
    low: int
    high: int
    lag: int


@dataclass(frozen=True)
class GroupLag:
    """One group's lag; `positions` says whose positions: Kafka's commits or the sink
    database's (the sink's truth); `members` is None when Kafka did not say."""

    spec: GroupSpec
    partitions: tuple[PartitionLag, ...]
    members: int | None
    positions: str = "kafka"
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)


# -- the arithmetic (pure) -------------------------------------------------------------


def start_of(committed: int | None, low: int) -> int:
    """Where the group reads next: its committed offset, or the log's start when it
    committed nothing or retention deleted past its commit."""
    return low if committed is None or committed < low else committed


def offset_lag(committed: int | None, low: int, high: int) -> int:
    return max(0, high - start_of(committed, low))


def settled(lag: int, visible: bool | None) -> int:
    """The offset lag once probed: no readable record behind the position means 0;
    unprobed (None) keeps the offsets' word."""
    return 0 if visible is False else lag


def probe_rounds(starts: Iterable[tuple[str, int, int]]) -> list[dict[Position, int]]:
    """Probe positions grouped so that each partition appears once per round (one
    consumer assigns a partition at one offset at a time)."""
    rounds: list[dict[Position, int]] = []
    for topic, partition, offset in sorted(set(starts)):
        for round_ in rounds:
            if (topic, partition) not in round_:
                round_[(topic, partition)] = offset
                break
        else:
            rounds.append({(topic, partition): offset})
    return rounds


# -- Kafka ---------------------------------------------------------------------------


def _result(future: Any, what: str) -> Any:
    try:
        return future.result()
    except KafkaException as exc:
        raise LagUnavailable(f"{what}: {exc.args[0].str()}") from exc


class LagReader:
    """Reads watermarks with one admin client, committed offsets with one consumer per
    group, and probes with one read_committed consumer; all kept between measurements
    (the exporter's loop)."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.admin = clients.admin(settings)
        self._probe: Any = None
        self._groups: dict[str, Any] = {}

    def close(self) -> None:
        for consumer in [self._probe, *self._groups.values()]:
            if consumer is not None:
                consumer.close()
        self._probe = None
        self._groups.clear()

    def measure(
        self,
        specs: Iterable[GroupSpec],
        positions: Mapping[str, Mapping[Position, int]] | None = None,
        *,
        candidates: Iterable[str] = (),
        members: bool = False,
    ) -> list[GroupLag]:
        """Every group's lag. `positions` replaces Kafka's commits for some groups (the
        sink's database positions); a group that declares no topics is measured on those
        of `candidates` it has committed offsets on; a group whose commits Kafka did not
        give has `error`. `members`: also count each group's members (the doctor's fix
        depends on it)."""
        specs = list(specs)
        positions = positions or {}
        existing = self.topics()  # first: an absent Kafka fails here, within the timeout
        candidates = [t for t in candidates if t in existing]
        committed: dict[str, dict[Position, int]] = {}
        errors: dict[str, str] = {}
        for spec in specs:
            if spec.group in positions:
                committed[spec.group] = dict(positions[spec.group])
                continue
            # A missing topic is the doctor's topic check's business, not a lag.
            asked = [t for t in spec.topics if t in existing] if spec.topics else candidates
            try:
                committed[spec.group] = self.committed(
                    spec.group, {topic: existing[topic] for topic in asked}
                )
            except LagUnavailable as exc:
                errors[spec.group] = str(exc)
        measured = {
            spec.group: sorted(
                {t for t in spec.topics if t in existing}
                or {topic for topic, _ in committed.get(spec.group, {}) if topic in existing}
            )
            for spec in specs
        }
        marks = self.watermarks(sorted({(t, p) for topics in measured.values()
                                        for t in topics for p in range(existing[t])}))  # fmt: skip
        counted = self.members([spec.group for spec in specs]) if members else {}
        raw: list[PartitionLag] = []
        for spec in specs:
            if spec.group in errors:
                continue
            mine = committed[spec.group]
            for topic in measured[spec.group]:
                for partition in range(existing[topic]):
                    low, high = marks[(topic, partition)]
                    at = mine.get((topic, partition))
                    lag = offset_lag(at, low, high)
                    raw.append(PartitionLag(spec.group, topic, partition, at, low, high, lag))
        visible = self.visible({(p.topic, p.partition, start_of(p.committed, p.low))
                                for p in raw if p.lag > 0})  # fmt: skip
        return [
            GroupLag(
                spec,
                tuple(_settle(p, visible) for p in raw if p.group == spec.group),
                counted.get(spec.group),
                "database" if spec.group in positions else "kafka",
                errors.get(spec.group),
            )
            for spec in specs
        ]

    def committed(self, group: str, layout: Mapping[str, int]) -> dict[Position, int]:
        """The group's committed offsets on these topics (name -> partition count).

        Asked through a consumer carrying the group's id, which never subscribes (so
        never joins the group): the admin API's ListConsumerGroupOffsets crashes the
        process when the coordinator answers "not coordinator" or "load in progress",
        as it does for a group it has not seen yet (librdkafka #5040,
        confluent-kafka-python #1982); the consumer's own offset fetch retries those.
        """
        partitions = [TopicPartition(t, p) for t, count in layout.items() for p in range(count)]
        if not partitions:
            return {}
        consumer = self._group_consumer(group)
        # Generous: the first request on a fresh cluster waits for __consumer_offsets to
        # be created and loaded, and a moved coordinator answers "not coordinator" once.
        deadline = time.monotonic() + max(self.timeout, 15.0)
        while True:
            try:
                answer = consumer.committed(partitions, timeout=self.timeout)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() not in _COORDINATOR_MOVING or time.monotonic() > deadline:
                    raise LagUnavailable(f"its committed offsets: {error.str()}") from exc
                time.sleep(0.2)
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in answer
            if tp.offset >= 0 and tp.error is None
        }

    def topics(self) -> dict[str, int]:
        """The cluster's readable topics and their partition counts."""
        try:
            metadata = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise LagUnavailable(f"topic metadata: {exc.args[0].str()}") from exc
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def watermarks(self, positions: list[Position]) -> dict[Position, tuple[int, int]]:
        if not positions:
            return {}
        ends: dict[str, dict[Position, int]] = {}
        specs = (
            ("earliest", OffsetSpec.earliest()),  # type: ignore[no-untyped-call]
            ("latest", OffsetSpec.latest()),  # type: ignore[no-untyped-call]
        )
        for name, spec in specs:
            request = {TopicPartition(t, p): spec for t, p in positions}
            futures = self.admin.list_offsets(
                request,
                isolation_level=IsolationLevel.READ_UNCOMMITTED,
                request_timeout=self.timeout,
            )
            ends[name] = {
                (tp.topic, tp.partition): _result(future, f"{name} offset of {tp.topic}").offset
                for tp, future in futures.items()
            }
        return {position: (ends["earliest"][position], ends["latest"][position])
                for position in positions}  # fmt: skip

    def members(self, groups: list[str]) -> dict[str, int]:
        """Members per group; a group Kafka did not describe is left out (unknown)."""
        try:
            futures = self.admin.describe_consumer_groups(groups, request_timeout=self.timeout)
        except KafkaException as exc:
            log.debug("describe_consumer_groups: %s", exc)
            return {}
        counted = {}
        for group, future in futures.items():
            try:
                counted[group] = len(future.result().members or [])
            except KafkaException as exc:
                log.debug("describe_consumer_groups %s: %s", group, exc)
        return counted

    def visible(self, starts: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], bool]:
        """For each (topic, partition, offset): is a committed record readable from there?
        Unanswered within the timeout: left out (the offsets' lag stands)."""
        answers: dict[tuple[str, int, int], bool] = {}
        if not starts:
            return answers
        consumer = self._consumer()
        for round_ in probe_rounds(starts):
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in round_.items()])
            deadline = time.monotonic() + min(self.timeout, 5.0)
            pending = set(round_)
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.05):
                    position = (message.topic() or "", message.partition() or 0)
                    if position not in pending:
                        continue
                    error = message.error()
                    if error is None:
                        answers[(*position, round_[position])] = True
                    elif error.code() == KafkaError._PARTITION_EOF:
                        answers[(*position, round_[position])] = False
                    else:
                        log.debug("probe of %s[%d]: %s", *position, error.str())
                        continue
                    pending.discard(position)
            consumer.unassign()
        return answers

    def _group_consumer(self, group: str) -> Any:
        if group not in self._groups:
            self._groups[group] = clients.consumer(
                self.settings, group, guarantees={"enable.auto.commit": False}
            )
        return self._groups[group]

    def _consumer(self) -> Any:
        if self._probe is None:
            self._probe = clients.consumer(
                self.settings, PROBE_GROUP,
                defaults={"fetch.wait.max.ms": 10},
                guarantees={"enable.auto.commit": False, "isolation.level": "read_committed",
                            "enable.partition.eof": True, "auto.offset.reset": "earliest"},
            )  # fmt: skip
        return self._probe


def _settle(lag: PartitionLag, visible: Mapping[tuple[str, int, int], bool]) -> PartitionLag:
    probed = visible.get((lag.topic, lag.partition, start_of(lag.committed, lag.low)))
    return dataclasses.replace(lag, lag=settled(lag.lag, probed))
