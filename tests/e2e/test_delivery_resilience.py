"""The bounce and receipts workers killed (SIGKILL) mid-stream and restarted: each
delivery event is on conversation-events exactly once, and the database ends up with
exactly what the pure cores make of the input, as an uninterrupted run would store
it: no delivery status lost, no view counted twice."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.delivery_samples import sendgrid_event, ses_via_sns
from connectors.intake.records import PARSERS, NotificationPublisher
from connectors.sink.runner import run_sink
from connectors.sink.store import store_at
from convotrail.settings import Settings
from processors.delivery.facts import to_fact
from processors.delivery.routes import routes_of
from processors.receipts.core import Track, message_id_of, track
from processors.receipts.scanner import ScannerRule
from schemas import model as m
from tests.support.delivery import delivery_events, outbound_email, publish
from tests.support.waiting import wait_until
from tests.support.worker import start_worker, stop_worker

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
N = 400
MIMECAST = "Mozilla/5.0 (compatible; Mimecast URL Protect)"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15"


def _history() -> tuple[list[m.ConversationEvent], list[tuple[str, bytes]]]:
    """Outbound emails and views (events), and what the providers report (bodies)."""
    events: list[m.ConversationEvent] = []
    notifications: list[tuple[str, bytes]] = []
    for i in range(N):
        sent = T0 + timedelta(minutes=i)
        ref, to = f"m{i}@acme.example", f"cust{i}@example.com"
        events.append(outbound_email(f"cnv-{i % 100}", f"msg-{i}", ref, (to,), at=sent))
        common = {"email_message_id": ref, "ses_message_id": f"ses-{i}", "recipient": to}
        if i % 5 == 0:
            notifications.append(("ses", ses_via_sns("Bounce", **common, at=sent + timedelta(
                seconds=30), notification_id=f"b-{i}")))  # fmt: skip
            continue
        notifications.append(("ses", ses_via_sns("Delivery", **common,
                                                 at=sent + timedelta(seconds=3),
                                                 notification_id=f"d-{i}")))  # fmt: skip
        if i % 7 == 0:  # a second provider reports it too
            later = sent + timedelta(seconds=4)
            event = sendgrid_event("delivered", email_message_id=ref, recipient=to, at=later,
                                   event_id=f"sg-{i:022d}")  # fmt: skip
            notifications.append(("sendgrid", json.dumps([event]).encode()))
        views = []
        if i % 3 == 0:  # a mail scanner's prefetch, seconds after delivery
            views.append((f"scan-{i}", sent + timedelta(seconds=8), MIMECAST))
        views.append((f"view-{i}", sent + timedelta(hours=1), BROWSER))
        for event_id, at, agent in views:
            view = m.MessageViewed(message_id=f"msg-{i}", viewer_kind=m.ViewerKind.CUSTOMER,
                                   viewer_id=f"cus-{i}", source=m.ViewSource.TRACKING_PIXEL,
                                   user_agent=agent)  # fmt: skip
            events.append(m.ConversationEvent(
                event_id=event_id, conversation_id=f"cnv-{i % 100}", account_id="acct-1",
                type=m.EventType.MESSAGE_VIEWED, occurred_at=at,
                actor=m.Actor(kind=m.ActorKind.CUSTOMER, id=f"cus-{i}"), payload=view,
            ))  # fmt: skip
            if i % 4 == 0:
                events.append(events[-1])  # published twice
    return events, notifications


def _oracle(
    events: list[m.ConversationEvent], notifications: list[tuple[str, bytes]]
) -> tuple[dict[str, m.ConversationEvent], dict[str, Track]]:
    """The delivery events (by id) and each message's final track, from the pure cores."""
    routes = {r.message_ref: r for e in events for r in routes_of(e)}
    facts: dict[str, m.ConversationEvent] = {}
    for provider, body in notifications:
        for unit in PARSERS[provider].split(body):
            for n in PARSERS[provider].parse(unit):
                fact = to_fact(n, routes[n.message_refs[0]], unit, T0)
                facts[fact.event_id] = fact
    tracks: dict[str, Track] = {}
    rule = ScannerRule()
    for event in [*events, *facts.values()]:
        message_id = message_id_of(event)
        assert message_id is not None
        tracks[message_id], _ = track(tracks.get(message_id), event, rule)
    return facts, tracks


def test_killed_delivery_workers_store_what_an_uninterrupted_run_stores(
    topics: Settings, tmp_path: Path
) -> None:
    events, notifications = _history()
    facts, tracks = _oracle(events, notifications)
    publish(topics, events)
    with NotificationPublisher(topics) as intake:
        for provider, body in notifications:
            intake.publish(provider, body)

    def start(kind: str, run: int):  # type: ignore[no-untyped-def]
        return start_worker(topics, tmp_path / kind, log_name=f"{kind}-{run}.log",
                            processor=kind)  # fmt: skip

    workers = {kind: start(kind, 0) for kind in ("bounces", "receipts")}
    try:
        for run in (1, 2):  # twice: killed while busy, restarted on the same store
            busy = 20 * run
            wait_until(lambda busy=busy: len(delivery_events(topics)) > busy, timeout=120,
                       interval=0.5, what="the workers to be busy")  # fmt: skip
            time.sleep(0.7 * run)
            for kind, worker in workers.items():
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                workers[kind] = start(kind, run)
        wait_until(
            lambda: {e.event_id for e in delivery_events(topics)} >= set(facts),
            timeout=180, interval=1, what="every delivery event",
        )  # fmt: skip
        found = delivery_events(topics)
        # Exactly once on the topic: nothing missing, nothing extra, nothing twice.
        assert sorted(e.event_id for e in found) == sorted(facts)
        for event in found:
            assert event == facts[event.event_id]
        database = f"sqlite:///{tmp_path / 'sink.db'}"

        def stored() -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
            run_sink(topics, database, group_id="sink-resilience", max_idle_seconds=2)
            with store_at(database, migrate=False) as store:
                statuses = {
                    (s.message_id, s.recipient, s.state, s.sent_at, s.delivered_at, s.provider)
                    for i in range(N) for s in store.delivery(f"msg-{i}")
                }  # fmt: skip
                receipts = {
                    (r.message_id, r.viewer_id, r.first_viewed_at, r.view_count,
                     r.automated_view_count)
                    for i in range(N) for r in store.receipts(f"msg-{i}")
                }  # fmt: skip
            return statuses, receipts

        want_statuses = {
            (s.message_id, s.recipient, s.state, s.sent_at, s.delivered_at, s.provider)
            for t in tracks.values() for s in t.statuses
        }  # fmt: skip
        want_receipts = {
            (v.receipt.message_id, v.receipt.viewer_id, v.receipt.first_viewed_at,
             v.receipt.view_count, v.receipt.automated_view_count)
            for t in tracks.values() for v in t.viewers
        }  # fmt: skip
        statuses, receipts = wait_until(
            lambda: (got := stored()) == (want_statuses, want_receipts) and got,
            timeout=120, interval=1, what="the database to match the oracle",
        )  # fmt: skip
        assert len(statuses) == N and len(receipts) == N - N // 5
    finally:
        for worker in workers.values():
            stop_worker(worker)
