"""Routing by recipient, the pure rule (processors/delivery/by_recipient.py): a
notification that names no message goes to the latest message its account sent to
the recipient at or before the bounce, within the window; without an account only
when exactly one account mailed the address; the index is bounded and forgets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.delivery import by_recipient as br
from processors.delivery import ledger as lg
from processors.delivery.routes import routes_of
from schemas import keys
from schemas import model as m
from tests.support.delivery import outbound_email

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
JO = "jo@example.com"


def sent(message_id: str, at: datetime, account: str = "acct-1") -> m.MessageRoute:
    """The recipient route the event that sends `message_id` to jo teaches."""
    event = outbound_email(f"cnv-{message_id}", message_id, f"{message_id}@mail.example",
                           (JO,), account_id=account, at=at)  # fmt: skip
    (route,) = [r for r in routes_of(event) if keys.recipient_of_route(r.message_ref)]
    return route


def index(*routes: m.MessageRoute) -> lg.Ledger:
    ledger: lg.Ledger | None = None
    for route in routes:
        ledger, _ = br.learn(ledger, route, WEEK)
    assert ledger is not None
    return ledger


def routed(ledger: lg.Ledger, at: datetime, account: str | None = None) -> str | None:
    found = br.route_for(ledger, account, at, WEEK)
    assert not isinstance(found, br.Ambiguous), found
    return None if found is None else found.message_id


def test_each_recipient_of_an_outbound_email_gets_a_route_with_its_send_time() -> None:
    event = outbound_email("cnv-1", "msg-1", "<m1@mail.example>", ("Jo <JO@Example.com>",
                           "sam@example.org", "jo@example.com"), at=T0)  # fmt: skip
    routes = routes_of(event)
    assert [r.message_ref for r in routes] == [
        "msg-1", "m1@mail.example", "recipient <jo@example.com>", "recipient <sam@example.org>"
    ]  # fmt: skip
    assert {r.sent_at for r in routes} == {T0}
    assert {r.recipients for r in routes} == {("jo@example.com", "sam@example.org")}
    assert keys.recipient_route(JO) == b"recipient <jo@example.com>"
    assert keys.recipient_of_route("recipient <jo@example.com>") == JO
    assert keys.recipient_of_route("m1@mail.example") is None


def test_the_most_recent_message_sent_before_the_bounce_wins() -> None:
    ledger = index(sent("msg-1", T0), sent("msg-3", T0 + timedelta(hours=2)),
                   sent("msg-2", T0 + timedelta(hours=1)))  # fmt: skip
    assert routed(ledger, T0 + timedelta(hours=3)) == "msg-3"
    # A bounce between two sendings is about the earlier one: the later cannot cause it.
    assert routed(ledger, T0 + timedelta(minutes=90)) == "msg-2"
    assert routed(ledger, T0 + timedelta(seconds=5)) == "msg-1"
    # A bounce whose clock runs a little behind ours still matches its message...
    assert routed(ledger, T0 - br.CLOCK_SKEW) == "msg-1"
    # ...but one from before any sending matches nothing (it waits, then the DLQ).
    assert routed(ledger, T0 - br.CLOCK_SKEW - timedelta(seconds=1)) is None


def test_only_messages_within_the_window_count() -> None:
    ledger = index(sent("msg-1", T0))
    assert routed(ledger, T0 + WEEK - timedelta(seconds=1)) == "msg-1"
    assert routed(ledger, T0 + WEEK) is None
    assert br.route_for(ledger, None, T0 + timedelta(days=1), timedelta(hours=12)) is None


def test_the_account_it_names_picks_among_the_senders() -> None:
    ledger = index(sent("msg-a", T0, "acct-a"), sent("msg-b", T0 + timedelta(hours=1), "acct-b"))
    at = T0 + timedelta(hours=2)
    assert routed(ledger, at, "acct-a") == "msg-a"
    assert routed(ledger, at, "acct-b") == "msg-b"
    assert routed(ledger, at, "acct-c") is None


def test_without_an_account_two_senders_are_ambiguous_never_a_guess() -> None:
    ledger = index(sent("msg-a", T0, "acct-a"), sent("msg-b", T0 + timedelta(hours=1), "acct-b"))
    found = br.route_for(ledger, None, T0 + timedelta(hours=2), WEEK)
    assert found == br.Ambiguous(("acct-a", "acct-b"))
    assert isinstance(found, br.Ambiguous)
    text = found.message(JO, WEEK)
    assert "'jo@example.com'" in text and "acct-a, acct-b" in text and "7 days" in text
    # Even when the other account mailed after the bounce: conservative.
    assert isinstance(br.route_for(ledger, None, T0 + timedelta(minutes=1), WEEK), br.Ambiguous)
    # Once one account's message has left the window, the other is the only sender.
    assert routed(ledger, T0 + WEEK + timedelta(minutes=30)) == "msg-b"


def test_one_message_learned_twice_keeps_its_first_time_and_releases_nothing_new() -> None:
    ledger = index(sent("msg-1", T0))
    again, released = br.learn(ledger, sent("msg-1", T0 + timedelta(seconds=3)), WEEK)
    assert again is ledger and released == ()
    earlier, _ = br.learn(ledger, sent("msg-1", T0 - timedelta(seconds=3)), WEEK)
    assert [r.sent_at for r in earlier.recent] == [T0 - timedelta(seconds=3)]


def test_learning_releases_what_waited_for_the_recipient() -> None:
    waiting = lg.Waiting("dsn", b"bounce", T0, T0, "t[0]@1")
    parked, ok = lg.park(None, waiting)
    assert ok
    ledger, released = br.learn(parked, sent("msg-1", T0), WEEK)
    assert released == (waiting,) and ledger.waiting == ()


def test_the_index_is_bounded_per_account_and_in_accounts() -> None:
    many = [sent(f"msg-{n}", T0 + timedelta(minutes=n)) for n in range(10)]
    ledger = index(*many)
    assert [r.message_id for r in ledger.recent] == [f"msg-{n}" for n in range(6, 10)]
    crowd = [sent(f"msg-{n}", T0 + timedelta(minutes=n), f"acct-{n}")
             for n in range(br.MAX_ACCOUNTS + 2)]  # fmt: skip
    ledger = index(*crowd)
    assert len({r.account_id for r in ledger.recent}) == br.MAX_ACCOUNTS
    assert ledger.evicted_until == T0 + timedelta(minutes=1)  # acct-0 and acct-1 dropped
    # An account kept can still be routed to; without an account nobody can be sure.
    last = f"acct-{br.MAX_ACCOUNTS + 1}"
    assert routed(ledger, T0 + timedelta(hours=1), last) == f"msg-{br.MAX_ACCOUNTS + 1}"
    found = br.route_for(ledger, None, T0 + timedelta(hours=1), WEEK)
    assert isinstance(found, br.Ambiguous) and found.evicted
    assert "more than the index keeps" in found.message(JO, WEEK)


def test_the_index_forgets_what_left_the_window_and_then_leaves_nothing() -> None:
    ledger = index(sent("msg-1", T0), sent("msg-2", T0 + timedelta(days=2)))
    assert br.forget_at(ledger, WEEK) == T0 + WEEK
    assert br.forget(ledger, T0 + WEEK - timedelta(seconds=1), WEEK) is ledger
    later = br.forget(ledger, T0 + WEEK, WEEK)
    assert [r.message_id for r in later.recent] == ["msg-2"]
    assert br.forget_at(later, WEEK) == T0 + timedelta(days=9)
    gone = br.forget(later, T0 + timedelta(days=9), WEEK)
    assert gone.recent == () and br.is_empty(gone) and br.forget_at(gone, WEEK) is None
    # Learning prunes too: a message a window older than the newest is dropped.
    pruned = index(sent("msg-1", T0), sent("msg-9", T0 + WEEK))
    assert [r.message_id for r in pruned.recent] == ["msg-9"]
    crowded = index(*[sent(f"m{n}", T0, f"acct-{n}") for n in range(br.MAX_ACCOUNTS + 1)])
    assert br.forget_at(crowded, WEEK) == T0 + WEEK
    assert br.forget(crowded, T0 + WEEK, WEEK).evicted_until is None


def test_a_bounce_is_timed_by_its_own_date_but_never_after_we_received_it() -> None:
    assert br.bounce_time(T0, T0 + timedelta(minutes=1)) == T0
    assert br.bounce_time(T0 + timedelta(hours=3), T0) == T0  # a clock running ahead
    assert br.bounce_time(None, T0) == T0


def test_a_route_without_a_send_time_is_not_indexed() -> None:
    route = m.MessageRoute(message_ref="recipient <jo@example.com>", message_id="msg-1",
                           conversation_id="cnv-1", account_id="acct-1", recipients=(JO,),
                           learned_from="evt-1")  # fmt: skip
    assert br.learn(None, route, WEEK) == (lg.Ledger(), ())


_sendings = st.lists(
    st.tuples(st.sampled_from(["acct-a", "acct-b", "acct-c"]), st.integers(0, 14 * 24 * 60)),
    max_size=25,
)


@given(_sendings, st.randoms())
def test_the_index_does_not_depend_on_the_order_messages_are_learned(
    sendings: list[tuple[str, int]], rnd: random.Random
) -> None:
    routes = [sent(f"msg-{n}", T0 + timedelta(minutes=minute), account)
              for n, (account, minute) in enumerate(sendings)]  # fmt: skip
    shuffled = list(routes)
    rnd.shuffle(shuffled)
    first = index(*routes) if routes else lg.Ledger()
    second = index(*shuffled) if routes else lg.Ledger()
    assert sorted(first.recent, key=repr) == sorted(second.recent, key=repr)
    assert lg.decode_ledger(lg.encode_ledger(first)) == first
