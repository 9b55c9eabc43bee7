"""The lag arithmetic of convotrail/group_lag.py, and its table of the project's groups
checked against the processors' own topologies (so the two cannot drift). The Kafka
side is tested in tests/integration/test_doctor.py."""

from __future__ import annotations

import uuid

import pytest

from connectors.sink.runner import DEFAULT_GROUP, sink_sources
from convotrail.cli_ops import choose_groups
from convotrail.group_lag import (
    GroupLag,
    GroupSpec,
    PartitionLag,
    offset_lag,
    probe_rounds,
    project_groups,
    settled,
    start_of,
)
from convotrail.settings import Settings
from processors.catalog import NAMES, build


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "unused:9092", "CONVOTRAIL_TOPIC_PREFIX": "p-",
         "SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}"}
    )  # fmt: skip


def test_the_groups_are_the_processors_and_the_sinks_with_their_inputs(
    settings: Settings,
) -> None:
    groups = project_groups(settings)
    topologies = [build(name, settings) for name in NAMES]
    assert [(g.group, set(g.topics)) for g in groups[:3]] == [
        (t.app_id, set(t.inputs)) for t in topologies
    ]
    assert [g.runs for g in groups[:3]] == [
        f"convotrail worker --processor {name}" for name in NAMES
    ]
    assert groups[3] == GroupSpec(DEFAULT_GROUP, tuple(sink_sources(settings)), "convotrail sink")
    assert project_groups(settings, "s")[3].group == "s"
    assert groups[0].group == "p-convotrail-conversations"


def test_lag_is_the_high_watermark_minus_where_the_group_reads_next() -> None:
    assert offset_lag(committed=4, low=0, high=10) == 6
    assert offset_lag(committed=None, low=3, high=10) == 7  # nothing committed: from the start
    assert offset_lag(committed=2, low=5, high=10) == 5  # retention deleted past the commit
    assert offset_lag(committed=12, low=0, high=10) == 0  # a re-created topic: never negative
    assert start_of(None, 3) == 3 and start_of(2, 5) == 5 and start_of(7, 5) == 7


def test_a_probe_that_finds_nothing_to_read_means_no_lag() -> None:
    assert settled(1, visible=False) == 0  # only a transaction marker behind the commit
    assert settled(6, visible=True) == 6
    assert settled(6, visible=None) == 6  # not probed (no answer): the offsets' word


def test_each_probe_round_holds_a_partition_once() -> None:
    rounds = probe_rounds([("a", 0, 4), ("a", 0, 9), ("a", 1, 2), ("a", 0, 4)])
    assert rounds == [{("a", 0): 4, ("a", 1): 2}, {("a", 0): 9}]
    assert probe_rounds([]) == []


def test_a_groups_total_is_the_sum_of_its_partitions() -> None:
    spec = GroupSpec("g", ("t",), "it")
    lag = GroupLag(spec, (PartitionLag("g", "t", 0, 1, 0, 5, 4),
                          PartitionLag("g", "t", 1, None, 0, 3, 3)), 0)  # fmt: skip
    assert lag.total == 7


def test_the_exporter_measures_named_groups_or_else_the_projects(settings: Settings) -> None:
    project = project_groups(settings)
    assert choose_groups(project, ()) == project
    chosen = choose_groups(project, ("other", project[1].group, "other"))
    assert chosen == [GroupSpec("other", (), "its consumers"), project[1]]
