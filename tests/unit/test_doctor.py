"""`convotrail doctor`'s checks (convotrail/doctor.py): facts in, one line per problem
out, each naming the thing and the fix. Pure; tests/integration/test_doctor.py runs
the command against a real broker, registry and database."""

from __future__ import annotations

import json

from convotrail.doctor import (
    PROBLEM,
    DatabaseFacts,
    Expected,
    Facts,
    KafkaFacts,
    RegistryFacts,
    SubjectFacts,
    TopicFacts,
    check_database,
    check_groups,
    check_kafka,
    check_subjects,
    check_topics,
    diagnose,
    render_json,
    render_text,
)
from convotrail.group_lag import GroupLag, GroupSpec, PartitionLag
from convotrail.settings import Settings
from convotrail.topics import topic_specs
from schemas import contract
from schemas.registration import subject_plan

SETTINGS = Settings.from_env({"CONVOTRAIL_PARTITIONS": "3"})
WORKER = "convotrail-conversations"
EXPECTED = Expected(
    topics=tuple(topic_specs(SETTINGS)),
    changelog_owners=(WORKER,),
    subjects=tuple(subject_plan(SETTINGS.topics)),
    partitions=3,
    max_lag=10,
)
BOOTSTRAP = "b:9092"


def _healthy_topics() -> dict[str, TopicFacts]:
    return {
        spec.name: TopicFacts(spec.name, 3, spec.config.get("cleanup.policy", "delete"))
        for spec in EXPECTED.topics
    }


def _healthy_registry() -> RegistryFacts:
    return RegistryFacts("http://r", {
        plan.subject: SubjectFacts(plan.subject, 1, contract.expand(plan.fullname),
                                   plan.compatibility)
        for plan in EXPECTED.subjects
    })  # fmt: skip


def _problems(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.text for f in findings if f.status == PROBLEM]


def test_a_healthy_cluster_has_no_problem_and_one_line_per_check() -> None:
    partition = PartitionLag("g", "conversation-events", 0, 5, 0, 5, 0)
    group = GroupLag(GroupSpec("g", ("conversation-events",), "convotrail sink"), (partition,),
                     1, "database")  # fmt: skip
    facts = Facts(
        KafkaFacts(BOOTSTRAP, ("1 b:9092",)), _healthy_registry(), _healthy_topics(), [group],
        DatabaseFacts("sqlite:///x.db", head="0003", revision="0003"),
    )  # fmt: skip
    findings = diagnose(facts, EXPECTED)
    assert _problems(findings) == []
    assert [f.text for f in findings] == [
        "kafka at b:9092: 1 broker(s) (1 b:9092)",
        "topics: all 15 present, 3 partitions each, cleanup policies as designed",
        "schema registry at http://r answered",
        "subjects: all 8 registered, compatible with this code's schemas, compatibility "
        "levels as designed",
        "group g: 0 records behind (1 member(s); positions from the sink database)",
        "sink database sqlite:///x.db: at the head revision 0003",
    ]
    assert render_text(findings).splitlines()[-1] == "doctor: no problem found"
    assert json.loads(render_json(findings))["ok"] is True


def test_kafka_unreachable_is_its_own_line_and_the_kafka_checks_are_skipped() -> None:
    facts = Facts(KafkaFacts(BOOTSTRAP, error="Kafka at b:9092 did not answer in 5 s: x: "
                             "check KAFKA_BOOTSTRAP_SERVERS"), _healthy_registry())  # fmt: skip
    findings = diagnose(facts, EXPECTED)
    assert _problems(findings) == [
        "Kafka at b:9092 did not answer in 5 s: x: check KAFKA_BOOTSTRAP_SERVERS"
    ]
    skipped = [f.check for f in findings if f.status == "skipped"]
    assert skipped == ["topics", "groups", "database"]
    text = render_text(findings)
    assert text.splitlines()[0].startswith("PROBLEM  Kafka at b:9092")
    assert text.splitlines()[-1] == "doctor: 1 problem(s)"
    body = json.loads(render_json(findings))
    assert body["ok"] is False and body["problems"] == 1
    assert check_kafka(KafkaFacts(BOOTSTRAP, ("1 a:1", "2 b:2")))[0].status == "ok"


def test_a_missing_topic_names_it_and_topics_create() -> None:
    topics = _healthy_topics()
    del topics["delivery-facts"]
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        "topic delivery-facts is missing: run `convotrail topics create` (it creates every "
        "missing topic and changes none)"
    ]


def test_no_topic_at_all_is_one_line_that_mentions_the_prefix() -> None:
    assert _problems(check_topics({}, EXPECTED, BOOTSTRAP)) == [
        "none of the 15 topics exists (the first is conversation-events): run `convotrail "
        "topics create`, or set CONVOTRAIL_TOPIC_PREFIX if this installation's topics carry "
        "a prefix"
    ]


def test_a_wrong_partition_count_says_how_to_grow_or_that_it_cannot_shrink() -> None:
    topics = _healthy_topics()
    topics["conversation-state"] = TopicFacts("conversation-state", 2, "compact")
    topics["delivery-facts"] = TopicFacts("delivery-facts", 6, "delete")
    topics["read-receipts.dlq"] = TopicFacts("read-receipts.dlq", 1, "delete")  # free count
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        "topic conversation-state has 2 partitions, expected 3: `convotrail topics create` "
        "never changes an existing topic; grow it with `kafka-topics.sh --bootstrap-server "
        "b:9092 --alter --topic conversation-state --partitions 3` (keys move to other "
        "partitions: stop its producers and workers and let its consumers drain it first)",
        "topic delivery-facts has 6 partitions, expected 3: `convotrail topics create` never "
        "changes an existing topic; a topic cannot shrink: delete it (`kafka-topics.sh "
        "--bootstrap-server b:9092 --delete --topic delivery-facts`, its records are lost) "
        "and run `convotrail topics create`",
    ]


def test_every_topic_at_another_count_points_at_the_setting() -> None:
    topics = {name: TopicFacts(name, 6, t.cleanup_policy) for name, t in _healthy_topics().items()}
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        "every topic has 6 partitions, expected 3 (CONVOTRAIL_PARTITIONS): if 6 is the "
        "cluster's count, set CONVOTRAIL_PARTITIONS=6 for every convotrail process"
    ]


def test_a_wrong_cleanup_policy_gives_the_kafka_configs_command() -> None:
    topics = _healthy_topics()
    topics["read-receipts"] = TopicFacts("read-receipts", 3, "delete")
    topics["conversation-events"] = TopicFacts("conversation-events", 3, "compact")
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        "topic conversation-events has cleanup.policy=compact, expected delete (compaction "
        "would drop facts of a log that must keep every one): run `kafka-configs.sh "
        "--bootstrap-server b:9092 --alter --entity-type topics --entity-name "
        "conversation-events --add-config cleanup.policy=delete`",
        "topic read-receipts has cleanup.policy=delete, expected compact (a table's topic "
        "keeps the latest record per key, for ever): run `kafka-configs.sh "
        "--bootstrap-server b:9092 --alter --entity-type topics --entity-name read-receipts "
        "--add-config cleanup.policy=compact`",
    ]


def test_changelogs_of_the_workers_are_checked_like_the_topics() -> None:
    topics = _healthy_topics()
    name = f"{WORKER}-conversation-memory-changelog"
    topics[name] = TopicFacts(name, 3, "delete")
    topics["someone-else-changelog"] = TopicFacts("someone-else-changelog", 1, "delete")
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        f"topic {name} has cleanup.policy=delete, expected compact (a table's topic keeps the "
        "latest record per key, for ever): run `kafka-configs.sh --bootstrap-server b:9092 "
        f"--alter --entity-type topics --entity-name {name} --add-config "
        "cleanup.policy=compact`"
    ]
    topics[name] = TopicFacts(name, 3, "compact")
    assert [f.text for f in check_topics(topics, EXPECTED, BOOTSTRAP)] == [
        "topics: all 15 present and 1 processor changelog(s), 3 partitions each, cleanup "
        "policies as designed"
    ]


def test_partitions_without_a_leader_or_replicas_are_reported() -> None:
    topics = _healthy_topics()
    topics["conversation-events"] = TopicFacts(
        "conversation-events", 3, "delete", leaderless=(2, 0), under_replicated=(1,)
    )
    assert _problems(check_topics(topics, EXPECTED, BOOTSTRAP)) == [
        "topic conversation-events: partitions 0, 2 have no leader: the brokers holding them "
        "are down; start them (`kafka-topics.sh --bootstrap-server b:9092 --describe "
        "--unavailable-partitions` lists them)",
        "topic conversation-events: partitions 1 are under-replicated: a broker holding a "
        "replica is down or behind; start it or let it catch up (`kafka-topics.sh "
        "--bootstrap-server b:9092 --describe --under-replicated-partitions`)",
    ]


def test_subject_problems_name_the_subject_and_schemas_register() -> None:
    registry = _healthy_registry()
    subjects = dict(registry.subjects)
    subjects["delivery-facts-value"] = SubjectFacts("delivery-facts-value")
    subjects["read-receipts-value"] = SubjectFacts(
        "read-receipts-value", 2, contract.expand(contract.READ_RECEIPT), "BACKWARD"
    )
    findings = check_subjects(RegistryFacts("http://r", subjects), EXPECTED.subjects)
    assert _problems(findings) == [
        "subject read-receipts-value has compatibility BACKWARD, expected FULL_TRANSITIVE "
        "(else the registry accepts schemas that break readers): run `convotrail schemas "
        "register`",
        "subject delivery-facts-value is not registered: run `convotrail schemas register` "
        "(it also sets its compatibility level, BACKWARD_TRANSITIVE)",
    ]


def test_no_subject_at_all_is_one_line() -> None:
    assert _problems(check_subjects(RegistryFacts("http://r", {}), EXPECTED.subjects)) == [
        "none of the 8 subjects is registered (the first is conversation-events-value): run "
        "`convotrail schemas register` (it also sets their compatibility levels)"
    ]


def test_a_registered_schema_this_code_cannot_read_is_a_problem() -> None:
    registry = _healthy_registry()
    subjects = dict(registry.subjects)
    alien = {"type": "record", "name": "ConversationState",
             "namespace": "dev.convotrail.outputs",
             "fields": [{"name": "unknown_required", "type": "string"}]}  # fmt: skip
    subjects["conversation-state-value"] = SubjectFacts(
        "conversation-state-value", 4, alien, "FULL_TRANSITIVE"
    )
    problems = _problems(check_subjects(RegistryFacts("http://r", subjects), EXPECTED.subjects))
    assert len(problems) == 2
    assert problems[0].startswith("subject conversation-state-value v4: new readers cannot read")
    assert problems[1].startswith("subject conversation-state-value v4: its readers cannot read")
    assert all(p.endswith("this code and the registry disagree: run the convotrail version "
                          "that registered it (`convotrail schemas check` says more)")
               for p in problems)  # fmt: skip


def test_the_registry_unreachable_skips_the_subjects() -> None:
    error = "schema registry at http://r did not answer (x): check SCHEMA_REGISTRY_URL"
    registry = RegistryFacts("http://r", error=error)
    facts = Facts(KafkaFacts(BOOTSTRAP, ("1 b:9092",)), registry, _healthy_topics(), [],
                  DatabaseFacts("u", "0003", revision="0003"))  # fmt: skip
    findings = diagnose(facts, EXPECTED)
    assert _problems(findings) == [error]
    assert [f.text for f in findings if f.status == "skipped"] == [
        "subjects: not checked (the registry did not answer)"
    ]


def _lag(members: int | None, *lags: int, positions: str = "kafka") -> GroupLag:
    spec = GroupSpec("convotrail-conversations", ("conversation-events",),
                     "convotrail worker --processor conversation")  # fmt: skip
    parts = tuple(PartitionLag(spec.group, "conversation-events", p, 0, 0, lag, lag)
                  for p, lag in enumerate(lags))  # fmt: skip
    return GroupLag(spec, parts, members, positions)


def test_a_group_behind_names_its_worst_partitions_and_the_fix() -> None:
    assert _problems(check_groups([_lag(0, 4, 9, 0, 3, 2)], max_lag=10)) == [
        "group convotrail-conversations is 18 records behind, more than --max-lag 10 "
        "(conversation-events[1] 9, conversation-events[0] 4, conversation-events[3] 3 and 1 "
        "more partitions): nothing consumes it: start `convotrail worker --processor "
        "conversation`"
    ]
    assert _problems(check_groups([_lag(2, 20)], max_lag=10)) == [
        "group convotrail-conversations is 20 records behind, more than --max-lag 10 "
        "(conversation-events[0] 20): its 2 member(s) do not keep up: check their logs and "
        "convotrail_consumer_lag, or start more (at most one per partition)"
    ]
    assert _problems(check_groups([_lag(None, 20, positions="database")], max_lag=10)) == [
        "group convotrail-conversations is 20 records behind, more than --max-lag 10 "
        "(conversation-events[0] 20; positions from the sink database): check that "
        "`convotrail worker --processor conversation` runs and keeps up"
    ]
    assert [f.text for f in check_groups([_lag(1, 10)], max_lag=10)] == [
        "group convotrail-conversations: 10 records behind (1 member(s))"
    ]


def test_a_group_kafka_said_nothing_about_is_a_problem() -> None:
    group = GroupLag(GroupSpec("g", (), "it"), (), None, error="its committed offsets: x")
    assert _problems(check_groups([group], 0)) == [
        "group g: its committed offsets: x: check that its coordinator broker is up and that "
        "these credentials may describe the group"
    ]


def test_database_findings() -> None:
    def problem(facts: DatabaseFacts) -> list[str]:
        return _problems(check_database(facts))

    assert problem(DatabaseFacts("u", "0003", missing="/x/convotrail.db")) == [
        "no sink database at /x/convotrail.db: start `convotrail sink` (it creates and "
        "migrates it), or point --database-url (CONVOTRAIL_DATABASE_URL) at the sink's database"
    ]
    assert problem(DatabaseFacts("u", "0003", revision=None)) == [
        "sink database u is at schema revision none, this code's head is 0003: start "
        "`convotrail sink` of this version once (it migrates the database on start)"
    ]
    assert problem(DatabaseFacts("u", "0003", revision="0002")) == [
        "sink database u is at schema revision 0002, this code's head is 0003: start "
        "`convotrail sink` of this version once (it migrates the database on start)"
    ]
    assert problem(DatabaseFacts("u", "0003", revision="0009", known=False)) == [
        "sink database u is at schema revision 0009, which this code does not know (its head "
        "is 0003): a newer convotrail migrated it; run that version"
    ]
    assert problem(DatabaseFacts("u", "0003", error="connection refused")) == [
        "sink database u cannot be opened: connection refused: check that it is up and "
        "--database-url (CONVOTRAIL_DATABASE_URL)"
    ]
    assert check_database(None)[0].status == "skipped"


def test_untrusted_text_reaches_the_terminal_escaped() -> None:
    facts = Facts(KafkaFacts(BOOTSTRAP, error="Kafka said \x1b[2J"), _healthy_registry())
    text = render_text(diagnose(facts, EXPECTED))
    assert "\x1b" not in text and "Kafka said \\x1b[2J" in text


def test_a_blank_group_id_is_refused_in_one_line_before_any_client_exists() -> None:
    from click.testing import CliRunner

    from convotrail.cli import main

    for args in (["doctor", "--sink-group", " "], ["lag-exporter", "--group", ""]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert result.output.splitlines()[-1].endswith("a consumer group id cannot be empty")
