"""The dashboard and the alert rules against a real Prometheus scraping a real pipeline.

One pipeline for the module, as deployed: the three workers, the sink (SQLite), the
lag exporter, the webhook intake and the read API as processes on the session's
broker and registry; Debian's Prometheus scrapes them every second and evaluates the
project's rule files every second. The only change to the rules: every alert's
`for:` is 1 s (production's minutes cannot be waited out here); thresholds and
windows are production's, so the test makes the conditions true for real.

- every dashboard panel's query (with Grafana's $__rate_interval as 5m) and every
  recording rule's expression return data through /api/v1/query, with a number;
- every alert expression's operands (the expression without its comparisons:
  `a > 0.1 and b / c > 0.25` gives `a` and `b / c`) return data, so each alert
  can fire on what the processes export;
- bad input fires ConvotrailDeadLetterRate, refused webhooks fire
  ConvotrailIntakeRefusalsSpiking, and a worker stopped while events flow fires
  ConvotrailConsumerLagGrowing (measured from outside) and ConvotrailProcessDown.

A counter's first sample is Prometheus's baseline (an increase before it is not
seen), so bad input comes in two waves: one record to create the series, the
rest once Prometheus has scraped it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from connectors.delivery_samples import postfix_bounce_email
from connectors.publisher import GUARANTEES
from connectors.traffic import generate
from convotrail.settings import Settings
from convotrail.stack import Endpoints
from convotrail.topics import admin_client, ensure_topics, topic_specs
from schemas.model import MessageAdded, MessageDirection
from schemas.registration import register_contract
from schemas.registry import Registry
from tests.support.delivery import publish
from tests.support.ports import free_ports
from tests.support.prometheus import (
    DASHBOARD,
    PrometheusServer,
    dashboard_queries,
    grafana_to_promql,
    operands,
    rules,
    rules_with_short_for,
    start_prometheus,
)
from tests.support.sink_process import Sink
from tests.support.topics import Feeder
from tests.support.waiting import wait_until
from tests.support.worker import start_worker, stop_worker, worker_env

pytestmark = pytest.mark.integration

ACCOUNT = "acct-prom"
DSN_TOKEN = "dsn-token-prom"
# Bounces' SMTP statuses: hard (suppresses the address), soft (mailbox full), policy.
BOUNCE_STATUSES = ("5.1.1", "4.2.2", "5.7.1")
# Generated histories start this long ago: they span days, and every event must lie
# in the past (before the feeder's fixed clock too); their timers are all due.
HISTORY_AGO = timedelta(days=20)


@dataclass
class Pipeline:
    settings: Settings
    prometheus: PrometheusServer
    workers: dict[str, subprocess.Popen[bytes]]
    worker_ports: dict[str, int]
    sink: Sink
    intake_port: int
    api_port: int
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def app(self, name: str) -> str:
        return f"{self.settings.topics.prefix}{name}"


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "convotrail", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _module_settings(endpoints: Endpoints, home: Path) -> Settings:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": endpoints.bootstrap_servers,
            "SCHEMA_REGISTRY_URL": endpoints.registry_url,
            "CONVOTRAIL_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
            "CONVOTRAIL_HOME": str(home),
            "CONVOTRAIL_PARTITIONS": "3",
        }
    )
    ensure_topics(admin_client(settings), topic_specs(settings))
    register_contract(Registry(settings.registry_url), settings.topics)
    return settings


@pytest.fixture(scope="module")
def pipeline(
    kafka_endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    base = tmp_path_factory.mktemp("prometheus")
    settings = _module_settings(kafka_endpoints, base / "home")
    ports = dict(
        zip(
            ["conversation", "bounces", "receipts", "exporter", "intake", "api", "prometheus"],
            free_ports(7),
            strict=True,
        )
    )
    workers = {
        name: start_worker(
            settings,
            base / name,
            metrics_port=ports[name],
            processor=name,
            timers=name == "conversation",
        )
        for name in ("conversation", "bounces", "receipts")
    }
    database = f"sqlite:///{base / 'convotrail.db'}"
    sink = Sink(settings, database, base)
    sink.start()
    env = worker_env(settings, base / "home")
    env["CONVOTRAIL_DSN_TOKEN"] = DSN_TOKEN
    others = [
        _spawn(
            [
                "lag-exporter",
                "--sink-group",
                f"{settings.topics.prefix}{sink.group}",
                "--interval",
                "1",
                "--metrics-port",
                str(ports["exporter"]),
            ],
            env,
            base / "lag-exporter.log",
        ),
        _spawn(["delivery", "serve", "--port", str(ports["intake"])], env, base / "intake.log"),
    ]
    # The read API opens the database the sink creates.
    wait_until(
        lambda: sink.metric("convotrail_sink_database_up") == 1,
        timeout=60,
        what="the sink's database",
    )
    api = ["serve", "--port", str(ports["api"]), "--database-url", database]
    others.append(_spawn(api, env, base / "api.log"))
    local = "127.0.0.1:{}".format
    targets = {
        "convotrail-worker": [local(ports[n]) for n in ("conversation", "bounces", "receipts")],
        "convotrail-sink": [local(sink.port)],
        "convotrail-lag-exporter": [local(ports["exporter"])],
        "convotrail-intake": [local(ports["intake"])],
        "convotrail-api": [local(ports["api"])],
    }
    prometheus = start_prometheus(base, ports["prometheus"], targets, rules_with_short_for(base))
    pipeline = Pipeline(
        settings,
        prometheus,
        workers,
        {n: ports[n] for n in workers},
        sink,
        ports["intake"],
        ports["api"],
        others,
    )
    try:
        wait_until(
            lambda: all(v == 1 for v in _up(prometheus).values()) and len(_up(prometheus)) == 7,
            timeout=90,
            interval=0.5,
            what="every process scraped",
        )
        _feed(pipeline)
        yield pipeline
    finally:
        prometheus.stop()
        for process in [*workers.values(), *others]:
            stop_worker(process)
        if sink.alive():
            sink.stop()


def _up(prometheus: PrometheusServer) -> dict[str, float]:
    return {s["metric"]["instance"]: float(s["value"][1]) for s in prometheus.query("up")}


def _garbage(settings: Settings, count: int) -> None:
    """Records no processor can decode, on conversation-events: the conversation
    worker dead-letters each (bad-magic-byte)."""
    producer = Producer(settings.kafka_config(GUARANTEES))
    for number in range(count):
        producer.produce(
            settings.topics.conversation_events,
            key=f"{ACCOUNT}|cnv-garbage-{number}".encode(),
            value=b"not avro",
        )
    assert producer.flush(30) == 0


def _refused_webhook(pipeline: Pipeline) -> None:
    """A bounce email with the wrong token: 401, reason bad-credentials."""
    intake = f"http://127.0.0.1:{pipeline.intake_port}/webhooks/dsn"
    assert _http(intake, b"x", {"Authorization": "Bearer wrong"}) == 401


def _series(pipeline: Pipeline, selector: str) -> list[dict[str, Any]]:
    return wait_until(
        lambda: pipeline.prometheus.query(selector),
        timeout=60,
        interval=0.5,
        what=f"{selector} scraped",
    )


def _feed(pipeline: Pipeline) -> None:
    """Traffic through every process: generated conversations (their timers are
    due: they lie in the past), outbound emails and their bounces through the intake, reads
    through the API, plus the first wave of bad input and refused webhooks."""
    settings = pipeline.settings
    now = datetime.now(UTC)
    history = generate(7, 30, now - HISTORY_AGO)
    publish(settings, history)
    # Bounce emails about the history's first outbound emails, through the intake.
    outbound = [
        e.payload
        for e in history
        if isinstance(e.payload, MessageAdded)
        and e.payload.direction is MessageDirection.OUTBOUND
        and e.payload.email_message_id
    ]
    intake = f"http://127.0.0.1:{pipeline.intake_port}/webhooks/dsn"
    wait_until(
        lambda: _http(f"http://127.0.0.1:{pipeline.intake_port}/healthz") == 200,
        timeout=60,
        interval=0.5,
        what="the intake",
    )
    for number, (message, status) in enumerate(zip(outbound, BOUNCE_STATUSES, strict=False)):
        assert message.email_message_id is not None
        email = postfix_bounce_email(
            email_message_id=message.email_message_id.strip("<>"),
            recipient=message.recipients[0],
            at=now,
            status=status,
            bounce_id=f"prom-{number}@mx1.acme.example",
        )
        assert _http(intake, email, {"Authorization": f"Bearer {DSN_TOKEN}"}) == 202
    # Reads through the API: a conversation the sink stored, one that does not exist,
    # a path that does not exist.
    api = f"http://127.0.0.1:{pipeline.api_port}"
    first = history[0]
    stored = f"{api}/api/v1/accounts/{first.account_id}/conversations/{first.conversation_id}"
    wait_until(
        lambda: _http(stored) == 200,
        timeout=60,
        interval=0.5,
        what="the sink to store the first conversation, the API to serve it",
    )
    assert _http(f"{api}/api/v1/accounts/{ACCOUNT}/conversations/cnv-none") == 404
    assert _http(f"{api}/no-such-page") == 404
    # First waves: the series exist, with a baseline sample, before the bursts.
    _garbage(settings, 1)
    _refused_webhook(pipeline)
    _series(pipeline, 'convotrail_dlq_records_total{reason="bad-magic-byte"}')
    _series(pipeline, 'convotrail_intake_refused_total{provider="dsn"}')


def _has_number(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def _all_answer(pipeline: Pipeline, queries: dict[str, str], timeout: float) -> list[str]:
    """The names of the queries (name -> PromQL) that still return no number after
    `timeout`."""
    pending = dict(queries)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, promql in list(pending.items()):
            if _has_number(pipeline.prometheus.query(promql)):
                del pending[name]
        if pending:
            time.sleep(1)
    return sorted(pending)


def test_every_rule_is_loaded_and_evaluates_without_error(pipeline: Pipeline) -> None:
    loaded = {
        rule["name"]: rule for group in pipeline.prometheus.rule_groups() for rule in group["rules"]
    }
    assert set(loaded) == {rule.get("record") or rule["alert"] for rule in rules()}
    # "ok" once evaluated without error ("unknown" before, "err" with lastError).
    health = {name: (rule["health"], rule.get("lastError", "")) for name, rule in loaded.items()}
    assert health == {name: ("ok", "") for name in loaded}


def test_every_dashboard_query_returns_data(pipeline: Pipeline) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {
        f"{title}: {expr}": grafana_to_promql(expr) for title, expr in dashboard_queries(dashboard)
    }
    assert _all_answer(pipeline, queries, timeout=60) == []


def test_every_recording_rule_expression_returns_data(pipeline: Pipeline) -> None:
    queries = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
    assert _all_answer(pipeline, queries, timeout=60) == []
    # And Prometheus records each one.
    assert _all_answer(pipeline, {name: name for name in queries}, timeout=30) == []


def test_every_alert_expression_has_data_to_compare(pipeline: Pipeline) -> None:
    queries = {
        f"{rule['alert']}: {operand}": operand
        for rule in rules()
        if "alert" in rule
        for operand in operands(rule["expr"])
    }
    assert _all_answer(pipeline, queries, timeout=60) == []


def test_bad_input_fires_the_dead_letter_alert(pipeline: Pipeline) -> None:
    app = pipeline.app("convotrail-conversations")
    assert pipeline.prometheus.firing("ConvotrailDeadLetterRate") == []
    _garbage(pipeline.settings, 20)
    firing = wait_until(
        lambda: [
            a for a in pipeline.prometheus.firing("ConvotrailDeadLetterRate") if a["app"] == app
        ],
        timeout=60,
        interval=0.5,
        what="ConvotrailDeadLetterRate",
    )
    assert firing[0]["topic"] == pipeline.settings.topics.conversation_events
    assert firing[0]["severity"] == "warning"


def test_refused_webhooks_fire_the_intake_alert(pipeline: Pipeline) -> None:
    assert pipeline.prometheus.firing("ConvotrailIntakeRefusalsSpiking") == []
    for _ in range(40):  # 40 in 5 minutes: more than one every 10 s
        _refused_webhook(pipeline)
    firing = wait_until(
        lambda: pipeline.prometheus.firing("ConvotrailIntakeRefusalsSpiking"),
        timeout=60,
        interval=0.5,
        what="ConvotrailIntakeRefusalsSpiking",
    )
    assert [a["provider"] for a in firing] == ["dsn"]


def test_a_worker_stopped_while_events_flow_fires_the_lag_and_down_alerts(
    pipeline: Pipeline,
) -> None:
    for alert in ("ConvotrailConsumerLagGrowing", "ConvotrailProcessDown"):
        assert pipeline.prometheus.firing(alert) == [], alert
    stop_worker(pipeline.workers["conversation"])
    start = datetime.now(UTC) - HISTORY_AGO
    feeder = Feeder(pipeline.settings, generate(11, 100, start), rate=600)
    feeder.start()
    feeder.finish(timeout=120)
    assert feeder.sent > 1000  # over the rule's threshold, on three partitions
    group = pipeline.app("convotrail-conversations")
    lag = wait_until(
        lambda: [
            a
            for a in pipeline.prometheus.firing("ConvotrailConsumerLagGrowing")
            if a["group"] == group
        ],
        timeout=60,
        interval=0.5,
        what="ConvotrailConsumerLagGrowing",
    )
    assert lag[0]["severity"] == "critical"
    instance = f"127.0.0.1:{pipeline.worker_ports['conversation']}"
    down = wait_until(
        lambda: [
            a
            for a in pipeline.prometheus.firing("ConvotrailProcessDown")
            if a["instance"] == instance
        ],
        timeout=60,
        interval=0.5,
        what="ConvotrailProcessDown",
    )
    assert down[0]["job"] == "convotrail-worker"
    # The others are still up: only the stopped worker is reported.
    assert {a["instance"] for a in pipeline.prometheus.firing("ConvotrailProcessDown")} == {
        instance
    }
