"""Soft-bounce escalation and the suppression list (processors/delivery/recipients.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.delivery.recipients import (
    EscalationPolicy,
    Health,
    Lift,
    Suppress,
    assess,
    decode_health,
    encode_health,
)
from schemas import model as m

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = EscalationPolicy(limit=3, window=timedelta(days=7))
ADDRESS = "jo@example.com"


def _event(event_id: str, payload: m.Payload, at: datetime) -> m.ConversationEvent:
    types = {
        m.BounceDetected: m.EventType.BOUNCE_DETECTED,
        m.MessageDelivered: m.EventType.MESSAGE_DELIVERED,
        m.CustomerMarkedSpam: m.EventType.CUSTOMER_MARKED_SPAM,
        m.MessageSent: m.EventType.MESSAGE_SENT,
    }
    return m.ConversationEvent(
        event_id=event_id,
        conversation_id="c-1",
        account_id="acme",
        type=types[type(payload)],
        occurred_at=at,
        actor=m.Actor(kind=m.ActorKind.SYSTEM, id="convotrail-bounces"),
        payload=payload,
    )


def bounce(message: str, klass: m.BounceClass, at: datetime) -> m.ConversationEvent:
    payload = m.BounceDetected(
        message_id=message,
        recipient=ADDRESS,
        provider="sendgrid",
        bounce_class=klass,
        smtp_status="4.2.2" if klass is m.BounceClass.SOFT else "5.1.1",
        diagnostic="mailbox full" if klass is m.BounceClass.SOFT else "user unknown",
    )
    return _event(f"b-{message}-{klass.value}-{at.isoformat()}", payload, at)


def delivered(message: str, at: datetime) -> m.ConversationEvent:
    payload = m.MessageDelivered(message_id=message, recipient=ADDRESS, provider="ses")
    return _event(f"d-{message}-{at.isoformat()}", payload, at)


def complaint(message: str, at: datetime) -> m.ConversationEvent:
    payload = m.CustomerMarkedSpam(message_id=message, recipient=ADDRESS, provider="ses")
    return _event(f"s-{message}", payload, at)


def run(events: list[m.ConversationEvent]) -> tuple[Health, list[object]]:
    health: Health | None = None
    changes: list[object] = []
    for event in events:
        health, _, change = assess(health, event, POLICY)
        if change is not None:
            changes.append(change)
    assert health is not None
    return health, changes


def test_hard_bounce_suppresses_with_its_status() -> None:
    health, changes = run([bounce("m1", m.BounceClass.HARD, T0)])
    assert len(changes) == 1 and isinstance(changes[0], Suppress)
    record = changes[0].record
    assert record.reason is m.SuppressionReason.HARD_BOUNCE
    assert (record.recipient, record.account_id, record.smtp_status) == (ADDRESS, "acme", "5.1.1")
    assert record.message_id == "m1" and record.suppressed_at == T0
    assert health.suppression == record


def test_third_soft_bounce_on_distinct_messages_escalates_to_hard() -> None:
    health: Health | None = None
    outs = []
    for i, message in enumerate(["m1", "m2", "m3"]):
        health, out, change = assess(
            health, bounce(message, m.BounceClass.SOFT, T0 + timedelta(days=i)), POLICY
        )
        outs.append((out, change))
    (first, c1), (second, c2), (third, c3) = outs
    assert isinstance(first.payload, m.BounceDetected) and isinstance(
        second.payload, m.BounceDetected
    )
    assert first.payload.bounce_class is m.BounceClass.SOFT and c1 is None
    assert second.payload.bounce_class is m.BounceClass.SOFT and c2 is None
    assert isinstance(third.payload, m.BounceDetected)
    assert third.payload.bounce_class is m.BounceClass.HARD and third.payload.escalated
    assert third.event_id == bounce("m3", m.BounceClass.SOFT, T0 + timedelta(days=2)).event_id
    assert isinstance(c3, Suppress)
    assert c3.record.reason is m.SuppressionReason.REPEATED_SOFT_BOUNCES


def test_retries_of_one_message_count_once() -> None:
    events = [bounce("m1", m.BounceClass.SOFT, T0 + timedelta(hours=h)) for h in range(6)]
    health, changes = run(events)
    assert changes == [] and len(health.soft_bounces) == 1


def test_soft_bounces_outside_the_window_do_not_escalate() -> None:
    events = [
        bounce("m1", m.BounceClass.SOFT, T0),
        bounce("m2", m.BounceClass.SOFT, T0 + timedelta(days=4)),
        bounce("m3", m.BounceClass.SOFT, T0 + timedelta(days=8)),  # m1 is 8 days back
    ]
    _, changes = run(events)
    assert changes == []


def test_later_delivery_clears_soft_bounces_and_lifts_bounce_suppression() -> None:
    health, changes = run(
        [
            bounce("m1", m.BounceClass.SOFT, T0),
            bounce("m2", m.BounceClass.HARD, T0 + timedelta(hours=1)),
            delivered("m3", T0 + timedelta(hours=2)),
        ]
    )
    assert isinstance(changes[0], Suppress)
    assert changes[1] == Lift("acme", ADDRESS)
    assert health.suppression is None and health.soft_bounces == ()
    # Two more soft bounces after the delivery do not reach the limit of three.
    _, later = run(
        [
            bounce("m1", m.BounceClass.SOFT, T0),
            delivered("m3", T0 + timedelta(hours=2)),
            bounce("m4", m.BounceClass.SOFT, T0 + timedelta(hours=3)),
            bounce("m5", m.BounceClass.SOFT, T0 + timedelta(hours=4)),
        ]
    )
    assert later == []


def test_a_bounce_older_than_the_latest_delivery_suppresses_nothing() -> None:
    _, changes = run(
        [delivered("m2", T0 + timedelta(hours=1)), bounce("m1", m.BounceClass.HARD, T0)]
    )
    assert changes == []


def test_policy_and_unknown_bounces_do_not_suppress() -> None:
    _, changes = run(
        [bounce("m1", m.BounceClass.POLICY, T0), bounce("m2", m.BounceClass.UNKNOWN, T0)]
    )
    assert changes == []


def test_complaint_suppresses_and_a_delivery_does_not_lift_it() -> None:
    health, changes = run(
        [
            bounce("m1", m.BounceClass.HARD, T0),
            complaint("m2", T0 + timedelta(hours=1)),
            delivered("m3", T0 + timedelta(hours=2)),
        ]
    )
    assert [type(c) for c in changes] == [Suppress, Suppress]
    assert isinstance(changes[1], Suppress)
    assert changes[1].record.reason is m.SuppressionReason.COMPLAINT
    assert health.suppression is not None
    assert health.suppression.reason is m.SuppressionReason.COMPLAINT


def test_applying_a_fact_twice_changes_nothing_the_second_time() -> None:
    facts = [
        bounce("m1", m.BounceClass.SOFT, T0),
        bounce("m2", m.BounceClass.SOFT, T0 + timedelta(hours=1)),
        bounce("m3", m.BounceClass.SOFT, T0 + timedelta(hours=2)),
        delivered("m4", T0 + timedelta(hours=3)),
        bounce("m5", m.BounceClass.HARD, T0 + timedelta(hours=4)),
    ]
    health: Health | None = None
    for fact in facts:
        health, out, _ = assess(health, fact, POLICY)
        again, out_again, change = assess(health, fact, POLICY)
        assert again == health and change is None
        assert out_again.payload == out.payload


def test_health_round_trips_through_its_codec() -> None:
    health, _ = run(
        [bounce("m1", m.BounceClass.SOFT, T0), bounce("m2", m.BounceClass.HARD, T0 + timedelta(1))]
    )
    assert decode_health(encode_health(health)) == health


FACTS = [
    bounce("m1", m.BounceClass.HARD, T0),
    bounce("m2", m.BounceClass.SOFT, T0 + timedelta(hours=1)),
    delivered("m3", T0 + timedelta(hours=2)),
    bounce("m4", m.BounceClass.SOFT, T0 + timedelta(hours=3)),
    complaint("m5", T0 + timedelta(hours=5)),
]


@settings(max_examples=60, deadline=None)
@given(st.permutations(FACTS[:4]))
def test_final_suppression_does_not_depend_on_arrival_order(
    order: list[m.ConversationEvent],
) -> None:
    """Hard bounce, then a delivery: whatever the order, the address ends unsuppressed."""
    health, _ = run(list(order))
    assert health.suppression is None
    assert health.last_delivered_at == T0 + timedelta(hours=2)


def test_every_order_of_a_complaint_ends_suppressed_for_complaint() -> None:
    for order in itertools.permutations(FACTS):
        health, _ = run(list(order))
        assert health.suppression is not None
        assert health.suppression.reason is m.SuppressionReason.COMPLAINT


def test_delay_warnings_never_suppress_nor_count_toward_escalation() -> None:
    """A delay (DEFERRED: the server still retries) is shown, whatever its class, but
    the address was never shown bad: five of them on distinct messages, one even
    classified HARD, suppress nothing, and a later real soft bounce counts as the first."""
    delays = [
        _event(
            f"delay-{i}",
            m.BounceDetected(
                message_id=f"m{i}",
                recipient=ADDRESS,
                provider="dsn",
                bounce_class=klass,
                smtp_status="4.4.1",
                delayed=True,
            ),
            T0 + timedelta(hours=i),
        )
        for i, klass in enumerate([m.BounceClass.SOFT] * 4 + [m.BounceClass.HARD])
    ]
    health, changes = run(delays)
    assert changes == [] and health.suppression is None and health.soft_bounces == ()
    health, _out, change = assess(
        health, bounce("m9", m.BounceClass.SOFT, T0 + timedelta(hours=9)), POLICY
    )
    assert change is None and len(health.soft_bounces) == 1


def test_a_providers_delay_becomes_a_delayed_bounce_and_a_final_one_does_not() -> None:
    from processors.delivery.facts import to_fact
    from processors.delivery.notification import Notification, NotificationKind

    route = m.MessageRoute(
        message_ref="ref-1", message_id="m1", conversation_id="cnv-1", account_id="acct-1",
        recipients=(ADDRESS,), learned_from="evt-1",
    )  # fmt: skip
    for kind, delayed in ((NotificationKind.DEFERRED, True), (NotificationKind.BOUNCED, False)):
        notification = Notification(
            provider="sendgrid", kind=kind, recipient=ADDRESS, message_refs=("ref-1",),
            occurred_at=T0, bounce_class=m.BounceClass.SOFT, smtp_status="4.2.2",
        )  # fmt: skip
        fact = to_fact(notification, route, b"{}", T0)
        assert isinstance(fact.payload, m.BounceDetected) and fact.payload.delayed is delayed
