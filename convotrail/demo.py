"""`convotrail demo`: bring the local pipeline up and put demo traffic through it.

It starts the local stack (unless an external cluster is configured), creates
the topics, registers the schemas, starts a conversation worker and the SQL sink
as child processes, publishes a generated history of realistic conversations
with the producer SDK, waits until the sink has stored it, shows a few
timelines from the database, and says where everything is. Without `--once` it
keeps publishing a new conversation every few seconds until Ctrl-C, then stops
whatever it started (worker, sink, and the stack if it started it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from confluent_kafka import TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from connectors.demo_feed import recent_history
from connectors.publisher import DeliveryReport, EventPublisher
from convotrail import clients
from convotrail.settings import Settings
from convotrail.stack import LocalStack
from convotrail.topics import admin_client, ensure_topics, topic_specs
from schemas.codecs import ModelCodec
from schemas.model import ConversationEvent, TimelineEntry
from schemas.registration import register_contract
from schemas.serde import AvroSerde

Echo = Callable[[str], None]
DEMO_SEED = 7


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def publish(
    publisher: EventPublisher, events: list[ConversationEvent], show_progress: bool
) -> list[DeliveryReport]:
    futures: list[Future[DeliveryReport]] = []
    columns = [TextColumn("  publishing"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("publish", total=len(events))
        for event in events:
            futures.append(publisher.publish(event))
            progress.advance(task)
        publisher.flush()
    return [future.result(timeout=30) for future in futures]


def read_back(
    settings: Settings, reports: list[DeliveryReport], timeout: float = 60.0
) -> list[ConversationEvent]:
    """Exactly the records just published, consumed from the broker and decoded."""
    topic = settings.topics.conversation_events
    first: dict[int, int] = {}
    for report in reports:
        first[report.partition] = min(report.offset, first.get(report.partition, report.offset))
    wanted = {(report.partition, report.offset) for report in reports}
    codec = ModelCodec(AvroSerde(clients.registry(settings)), topic, ConversationEvent)
    group = f"convotrail-demo-{uuid.uuid4()}"
    consumer = clients.consumer(settings, group, guarantees={"enable.auto.commit": False})
    events: list[ConversationEvent] = []
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in first.items()])
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                position = (message.partition() or 0, message.offset() or 0)
                if message.error() is None and position in wanted:
                    wanted.discard(position)
                    events.append(codec.decode(message.value()))
    finally:
        consumer.close()
    return events


def _start_child(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "convotrail", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _stored_timeline(database_url: str, conversation_id: str) -> list[TimelineEntry]:
    from connectors.sink.errors import SinkError
    from connectors.sink.query import load_timeline

    try:
        return load_timeline(database_url, conversation_id)
    except SinkError:  # no database or no rows yet
        return []


def _wait_for_sink(database_url: str, expected: dict[str, int], timeout: float, echo: Echo) -> bool:
    """Until every sampled conversation has its expected number of stored entries."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(_stored_timeline(database_url, c)) >= n for c, n in expected.items()):
            return True
        time.sleep(1.0)
    echo("  the sink has not stored everything yet; see the worker and sink logs")
    return False


def _describe(event: ConversationEvent) -> str:
    who = event.actor.name or event.actor.kind.value.lower()
    return f"{event.occurred_at:%Y-%m-%d %H:%M:%S}  {event.type.value:<22} by {who}"


def _expected_entries(events: list[ConversationEvent], conversation_id: str) -> int:
    """Timeline entries the worker will store for one conversation (its own events)."""
    from processors.conversation.core import evolve

    memory, count = None, 0
    for event in events:
        if event.conversation_id == conversation_id:
            memory, outputs = evolve(memory, event, event.occurred_at)
            count += len(outputs.timeline)
    return count


def _page_check(url: str) -> str:
    """Whether the read API answers with the page and its "Viewed" indicator."""
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                html = response.read().decode()
            viewed = ">Viewed</span>" in html
            return " (answering; 'Viewed' shown)" if viewed else " (answering)"
        except OSError:
            time.sleep(0.5)
    return " (not answering: see api.log)"


def _show_delivery(
    settings: Settings, events: list[ConversationEvent], database_url: str, echo: Echo
) -> tuple[str, str] | None:
    """Put three provider notifications about demo emails through the bounce processor
    (an SES bounce, a Postfix bounce email, a SendGrid delivery) and show what the
    database then says, with a message's "Viewed" receipt."""
    import json

    from connectors.delivery_samples import postfix_bounce_email, sendgrid_event, ses_via_sns
    from connectors.intake.records import NotificationPublisher
    from connectors.sink.errors import SinkError
    from connectors.sink.query import (
        load_delivery,
        load_receipts,
        render_delivery_text,
        render_receipts_text,
    )
    from schemas.model import MessageAdded, MessageDirection, MessageViewed, ViewerKind

    emails = [
        (e.payload.message_id, e.payload.email_message_id.strip("<>"), e.payload.recipients[0])
        for e in events
        if isinstance(e.payload, MessageAdded)
        and e.payload.direction is MessageDirection.OUTBOUND
        and e.payload.email_message_id
        and e.payload.recipients
    ]
    if len(emails) < 3:
        return None
    now = datetime.now(UTC)
    (bounced, ref1, to1), (returned, ref2, to2), (delivered, ref3, to3) = emails[-3:]
    notifications = [
        ("ses", ses_via_sns("Bounce", email_message_id=ref1, ses_message_id=f"ses-{bounced}",
                            recipient=to1, at=now, notification_id=str(uuid.uuid4()))),
        ("dsn", postfix_bounce_email(email_message_id=ref2, recipient=to2, at=now,
                                     bounce_id=f"{uuid.uuid4()}@mx1.acme.example")),
        ("sendgrid", json.dumps([sendgrid_event("delivered", email_message_id=ref3,
                                                recipient=to3, at=now,
                                                event_id=uuid.uuid4().hex)]).encode()),
    ]  # fmt: skip
    echo("Putting three provider notifications through the bounce processor:")
    with NotificationPublisher(settings) as intake:
        for provider, body in notifications:
            intake.publish(provider, body)
            echo(f"  {provider:<9} notification on {settings.topics.delivery_notifications}")
    deadline = time.monotonic() + 120
    shown: dict[str, str] = {}
    while time.monotonic() < deadline and len(shown) < 3:
        for message_id, wanted in ((bounced, "BOUNCED"), (returned, "BOUNCED"),
                                   (delivered, "DELIVERED")):  # fmt: skip
            try:
                statuses = load_delivery(database_url, message_id)
            except SinkError:
                continue
            if any(s.state.value == wanted and s.updated_at >= now.replace(microsecond=0)
                   for s in statuses):  # fmt: skip
                shown[message_id] = render_delivery_text(statuses)
        time.sleep(1.0)
    echo("Delivery status from the database (convotrail delivery MESSAGE_ID):")
    for message_id, text in shown.items():
        echo(f"  {message_id}: {text}")
    if len(shown) < 3:
        echo("  not every notification has reached the database yet; see bounces.log")
    viewed = [
        e.payload.message_id
        for e in events
        if isinstance(e.payload, MessageViewed) and e.payload.viewer_kind is ViewerKind.CUSTOMER
    ]
    for message_id in reversed(viewed):
        try:
            receipts = load_receipts(database_url, message_id)
        except SinkError:
            continue
        if any(r.first_viewed_at is not None for r in receipts):
            echo(f"Read receipts of {message_id} (the 'Viewed' indicator):")
            echo(f"  {render_receipts_text(receipts)}")
            return bounced, message_id
    return bounced, viewed[-1] if viewed else bounced


def run_demo(settings: Settings, once: bool, conversations: int, echo: Echo) -> None:
    from connectors.sink.query import render_timeline_text
    from connectors.sink.store import default_database_url

    local = LocalStack(settings) if settings.uses_local_stack else None
    started_here = local is not None and not local.is_running()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    children: list[subprocess.Popen[bytes]] = []
    logs = settings.home / "logs"
    database_url = default_database_url(settings)
    try:
        if local is not None:
            echo("Starting the local stack (the first run fetches Kafka and the registry) ...")
            local.start(progress=lambda line: echo(f"  {line}"))
        created = ensure_topics(admin_client(settings), topic_specs(settings))
        echo(f"Topics ready: {', '.join(outcome.name for outcome in created)}")
        registry = clients.registry(settings)
        for done in register_contract(registry, settings.topics):
            echo(f"Schema registered: {done.subject} (id {done.schema_id}, {done.compatibility})")
        echo("Starting the conversation, bounce and receipts workers and the SQL sink ...")
        children.append(_start_child(["worker"], logs / "worker.log"))
        children.append(_start_child(["worker", "--processor", "bounces"], logs / "bounces.log"))
        children.append(_start_child(["worker", "--processor", "receipts"], logs / "receipts.log"))
        children.append(_start_child(["sink", "--database-url", database_url], logs / "sink.log"))
        events = recent_history(DEMO_SEED, conversations, datetime.now(UTC))
        echo(f"Publishing {len(events)} events of {conversations} generated conversations:")
        with EventPublisher(settings, registry=registry) as publisher:
            started = time.perf_counter()
            reports = publish(publisher, events, show_progress=not once)
            seconds = time.perf_counter() - started
            echo(f"  {len(reports)} events acknowledged in {seconds:.1f} s")
            received = read_back(settings, reports)
            echo(f"{len(received)} of {len(events)} events came back through the broker:")
            for event_type, count in Counter(e.type.value for e in received).most_common(6):
                echo(f"  {count:>6}  {event_type}")
            samples = list(dict.fromkeys(e.conversation_id for e in events))[:3]
            expected = {c: _expected_entries(events, c) for c in samples}
            echo("Waiting for the worker and the sink to store the timelines ...")
            _wait_for_sink(database_url, expected, timeout=180, echo=echo)
            # The read API reads the database the sink has created by now.
            api_port = os.environ.get("CONVOTRAIL_API_PORT", "8080")
            children.append(_start_child(
                ["serve", "--database-url", database_url, "--port", api_port], logs / "api.log"
            ))  # fmt: skip
            for conversation_id in samples:
                entries = _stored_timeline(database_url, conversation_id)
                echo(f"Timeline of {conversation_id} ({len(entries)} entries, from the database):")
                for line in render_timeline_text(entries).splitlines()[:12]:
                    echo(f"  {line}")
            tracked = _show_delivery(settings, events, database_url, echo)
            _where_to_look(settings, local, echo)
            echo(f"  Worker and sink logs     {logs}")
            echo(f"  Database                 {database_url}")
            echo(f"  Read it                  convotrail timeline {samples[0]}")
            if tracked is not None:
                echo(f"  Delivery and 'Viewed'   convotrail delivery {tracked[0]}; "
                     f"convotrail receipts {tracked[1]}")  # fmt: skip
                home = next(e for e in events if getattr(e.payload, "message_id", None)
                            == tracked[1])  # fmt: skip
                url = (f"http://127.0.0.1:{api_port}/accounts/{home.account_id}/conversations/"
                       f"{home.conversation_id}")  # fmt: skip
                echo(f"  Conversation page        {url}{_page_check(url)}")
            echo("  Webhook intake           convotrail delivery serve (docs/delivery.md)")
            echo("")
            if once:
                return
            echo("Publishing a new conversation every 3 seconds; press Ctrl-C to stop.")
            tick = 0
            while True:
                time.sleep(3)
                tick += 1
                fresh = recent_history(DEMO_SEED + tick, 1, datetime.now(UTC))
                publish(publisher, fresh, show_progress=False)
                echo(f"  published {len(fresh)} events of conversation {fresh[0].conversation_id}")
    except (KeyboardInterrupt, _Stop):
        echo("\nStopping ...")
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_children(children)
        if children:
            echo("  workers, sink and read API stopped")
        if local is not None and started_here:
            for line in local.stop():
                echo(f"  {line}")
        elif local is not None:
            echo("The stack was already running before the demo; it is left running.")


def _where_to_look(settings: Settings, local: LocalStack | None, echo: Echo) -> None:
    echo("")
    echo("Where to look:")
    echo(f"  Kafka bootstrap servers  {settings.bootstrap_servers}")
    echo(f"  Schema registry          {settings.registry_url}/subjects")
    echo(f"  Events topic             {settings.topics.conversation_events}")
    if local is not None:
        echo(f"  Logs                     {local.state_dir / 'logs'}")
        echo(f"  Broker and registry data {local.state_dir}")
    echo("  Event catalogue          docs/events.md (topics: docs/asyncapi.yaml)")
    echo("  Try                      convotrail demo-events --conversations 5 | "
         "convotrail produce -f -")  # fmt: skip
    echo("")
