"""Read receipts and delivery status per message (processors/receipts/core.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.receipts.codec import decode_track, encode_track
from processors.receipts.core import Changes, Track, track
from processors.receipts.scanner import ScannerRule
from schemas import model as m

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULE = ScannerRule()
MIMECAST = "Mozilla/5.0 (compatible; Mimecast URL Protect)"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
ACTOR = m.Actor(kind=m.ActorKind.SYSTEM, id="platform")


def event(
    event_id: str, event_type: m.EventType, payload: m.Payload, at: datetime
) -> m.ConversationEvent:
    return m.ConversationEvent(
        event_id=event_id,
        conversation_id="c-1",
        account_id="acme",
        type=event_type,
        occurred_at=at,
        actor=ACTOR,
        payload=payload,
    )


def reply(at: datetime = T0) -> m.ConversationEvent:
    payload = m.MessageAdded(
        message_id="msg-1",
        direction=m.MessageDirection.OUTBOUND,
        visibility=m.MessageVisibility.REPLY,
        channel=m.Channel.EMAIL,
        recipients=("jo@example.com",),
    )
    return event("added", m.EventType.MESSAGE_ADDED, payload, at)


def view(
    event_id: str,
    at: datetime,
    kind: m.ViewerKind = m.ViewerKind.CUSTOMER,
    viewer: str = "cust-9",
    agent: str | None = BROWSER,
    source: m.ViewSource = m.ViewSource.TRACKING_PIXEL,
) -> m.ConversationEvent:
    payload = m.MessageViewed(
        message_id="msg-1", viewer_kind=kind, viewer_id=viewer, source=source, user_agent=agent
    )
    return event(event_id, m.EventType.MESSAGE_VIEWED, payload, at)


def delivered(at: datetime, event_id: str = "dlv") -> m.ConversationEvent:
    payload = m.MessageDelivered(message_id="msg-1", recipient="jo@example.com", provider="ses")
    return event(event_id, m.EventType.MESSAGE_DELIVERED, payload, at)


def sent(at: datetime) -> m.ConversationEvent:
    payload = m.MessageSent(message_id="msg-1", recipient="jo@example.com", provider="ses")
    return event("snt", m.EventType.MESSAGE_SENT, payload, at)


def bounced(at: datetime) -> m.ConversationEvent:
    payload = m.BounceDetected(
        message_id="msg-1",
        recipient="jo@example.com",
        provider="dsn",
        bounce_class=m.BounceClass.HARD,
        smtp_status="5.1.1",
        diagnostic="user unknown",
    )
    return event("bnc", m.EventType.BOUNCE_DETECTED, payload, at)


def fold(events: list[m.ConversationEvent]) -> tuple[Track, list[Changes]]:
    current: Track | None = None
    changes = []
    for e in events:
        current, change = track(current, e, RULE)
        changes.append(change)
    assert current is not None
    return current, changes


def receipt_of(t: Track, kind: m.ViewerKind = m.ViewerKind.CUSTOMER) -> m.ReadReceipt:
    (found,) = [v.receipt for v in t.viewers if v.receipt.viewer_kind is kind]
    return found


def test_customer_view_sets_first_and_latest_with_exact_times() -> None:
    first, second = T0 + timedelta(hours=1, milliseconds=123), T0 + timedelta(hours=3)
    t, changes = fold(
        [reply(), delivered(T0 + timedelta(seconds=5)), view("v1", first), view("v2", second)]
    )
    receipt = receipt_of(t)
    assert (receipt.first_viewed_at, receipt.last_viewed_at) == (first, second)
    assert (receipt.view_count, receipt.automated_view_count) == (2, 0)
    assert receipt.last_event_id == "v2" and receipt.viewer_id == "cust-9"
    assert changes[-1].receipts == (receipt,)


def test_duplicates_are_folded_by_event_id_and_by_time_and_source() -> None:
    at = T0 + timedelta(hours=1)
    t, changes = fold([reply(), view("v1", at), view("v1", at), view("v1-resent", at)])
    assert receipt_of(t).view_count == 1
    assert changes[2] == Changes() and changes[3] == Changes()


def test_out_of_order_views_never_move_the_receipt_backwards() -> None:
    late, early = T0 + timedelta(hours=5), T0 + timedelta(hours=2)
    t, _ = fold([reply(), view("v-late", late), view("v-early", early)])
    receipt = receipt_of(t)
    assert (receipt.first_viewed_at, receipt.last_viewed_at, receipt.view_count) == (early, late, 2)


def test_teammate_and_customer_views_are_separate_receipts() -> None:
    t, _ = fold(
        [
            reply(),
            view("v1", T0 + timedelta(minutes=5), kind=m.ViewerKind.STAFF, viewer="dana",
                 agent=None, source=m.ViewSource.APP),
            view("v2", T0 + timedelta(minutes=9), kind=m.ViewerKind.STAFF, viewer="lee",
                 agent=None, source=m.ViewSource.APP),
            view("v3", T0 + timedelta(hours=1)),
        ]
    )  # fmt: skip
    staff = sorted(
        v.receipt.viewer_id for v in t.viewers if v.receipt.viewer_kind is m.ViewerKind.STAFF
    )
    assert staff == ["dana", "lee"]
    assert receipt_of(t).first_viewed_at == T0 + timedelta(hours=1)


def test_scanner_prefetch_right_after_delivery_is_automated() -> None:
    t, _ = fold(
        [
            reply(),
            delivered(T0 + timedelta(seconds=4)),
            view("scan", T0 + timedelta(seconds=6), agent=MIMECAST),
            view("proxy", T0 + timedelta(seconds=7), agent=GMAIL_PROXY),
        ]
    )
    receipt = receipt_of(t)
    assert receipt.first_viewed_at is None and receipt.view_count == 0
    assert receipt.automated_view_count == 2


def test_a_proxy_fetch_long_after_delivery_is_the_customer_opening_it() -> None:
    at = T0 + timedelta(hours=2)
    t, _ = fold(
        [reply(), delivered(T0 + timedelta(seconds=4)), view("open", at, agent=GMAIL_PROXY)]
    )
    assert receipt_of(t).first_viewed_at == at and receipt_of(t).view_count == 1


def test_a_browser_right_after_delivery_is_a_person() -> None:
    at = T0 + timedelta(seconds=6)
    t, _ = fold([reply(), delivered(T0 + timedelta(seconds=4)), view("v", at)])
    assert receipt_of(t).first_viewed_at == at


def test_sent_time_is_the_reference_when_delivery_is_not_reported_yet() -> None:
    t, _ = fold([reply(T0), view("scan", T0 + timedelta(seconds=20), agent=MIMECAST)])
    assert receipt_of(t).automated_view_count == 1 and receipt_of(t).first_viewed_at is None


def test_scanner_view_before_anything_about_the_message_is_judged_by_agent() -> None:
    t, _ = fold([view("scan", T0, agent=MIMECAST), view("p", T0 + timedelta(hours=1))])
    receipt = receipt_of(t)
    assert receipt.automated_view_count == 1 and receipt.view_count == 1


def test_a_late_delivery_does_not_undo_viewed() -> None:
    at = T0 + timedelta(minutes=30)
    t, changes = fold(
        [reply(), view("v", at, agent=GMAIL_PROXY), delivered(at - timedelta(seconds=3))]
    )
    assert receipt_of(t).first_viewed_at == at and receipt_of(t).view_count == 1
    assert changes[-1].receipts == ()  # the delivery touched the status only


def test_widget_and_staff_views_are_never_automated() -> None:
    rule = ScannerRule()
    widget = view("w", T0, agent=MIMECAST, source=m.ViewSource.CHAT_WIDGET).payload
    staff = view("s", T0, kind=m.ViewerKind.STAFF, agent=MIMECAST).payload
    assert isinstance(widget, m.MessageViewed) and isinstance(staff, m.MessageViewed)
    assert not rule.is_automated(widget, T0, T0)
    assert not rule.is_automated(staff, T0, T0)


def test_delivery_status_goes_forward_only() -> None:
    t, changes = fold(
        [reply(), delivered(T0 + timedelta(seconds=3)), sent(T0 + timedelta(seconds=1))]
    )
    (status,) = t.statuses
    assert status.state is m.DeliveryState.DELIVERED
    assert status.sent_at == T0 + timedelta(seconds=1)
    assert status.delivered_at == T0 + timedelta(seconds=3)
    assert changes[-1].statuses == (status,)  # sent_at learned, state kept


def test_bounce_after_delivery_wins_by_event_time_and_carries_its_status() -> None:
    t, _ = fold([delivered(T0), bounced(T0 + timedelta(minutes=2))])
    (status,) = t.statuses
    assert status.state is m.DeliveryState.BOUNCED
    assert (status.bounce_class, status.smtp_status) == (m.BounceClass.HARD, "5.1.1")
    assert status.delivered_at == T0


STATUS_FACTS = [
    reply(T0),
    sent(T0),
    delivered(T0 + timedelta(seconds=2)),
    bounced(T0 + timedelta(minutes=3)),
    view("v1", T0 + timedelta(hours=1)),
    view("v2", T0 + timedelta(hours=2), agent=GMAIL_PROXY),
    view("v3", T0 + timedelta(hours=3), kind=m.ViewerKind.STAFF, viewer="dana"),
]


@settings(max_examples=80, deadline=None)
@given(st.permutations(STATUS_FACTS[1:]), st.lists(st.integers(0, 5), max_size=4))
def test_any_arrival_order_with_duplicates_gives_the_same_receipts_and_status(
    order: list[m.ConversationEvent], repeats: list[int]
) -> None:
    """The message's own event comes first (a view cannot precede the reply it views
    on the platform); everything after it may arrive in any order, repeated."""
    reference, _ = fold(STATUS_FACTS)
    shuffled = [STATUS_FACTS[0], *order] + [STATUS_FACTS[1 + i] for i in repeats]
    t, _ = fold(shuffled)
    assert t.statuses == reference.statuses
    key = lambda r: (r.viewer_kind, r.viewer_id)  # noqa: E731
    got = {key(v.receipt): v.receipt for v in t.viewers}
    want = {key(v.receipt): v.receipt for v in reference.viewers}
    for k in want:
        # last_event_id names the last view applied, which follows arrival order.
        assert got[k].first_viewed_at == want[k].first_viewed_at
        assert got[k].last_viewed_at == want[k].last_viewed_at
        assert got[k].view_count == want[k].view_count


def test_track_round_trips_through_its_codec() -> None:
    t, _ = fold(STATUS_FACTS)
    assert decode_track(encode_track(t)) == t
