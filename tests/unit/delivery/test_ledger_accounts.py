"""The delivery ledger keeps one route per account under a ref and never guesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.delivery import ledger as lg
from schemas import model as m
from schemas.records import replace


def route(account: str, ref: str = "msg-shared-1") -> m.MessageRoute:
    return m.MessageRoute(message_ref=ref, message_id="msg-shared-1",
                          conversation_id=f"cnv-{account}", account_id=account,
                          recipients=("jo@example.com",), learned_from="evt-1")  # fmt: skip


def test_a_ref_of_one_account_routes_without_a_hint() -> None:
    ledger, _ = lg.learn(None, route("acct-a"))
    assert lg.route_for(ledger, None) == route("acct-a")
    assert lg.route_for(ledger, "acct-a") == route("acct-a")
    assert lg.route_for(ledger, "acct-b") is None  # B's route has not come (yet)


def test_a_ref_of_two_accounts_keeps_both_and_needs_the_account() -> None:
    ledger, _ = lg.learn(None, route("acct-a"))
    ledger, _ = lg.learn(ledger, route("acct-b"))
    ledger, _ = lg.learn(ledger, route("acct-a"))  # relearned: still one route per account
    assert {r.account_id for r in ledger.routes} == {"acct-a", "acct-b"}
    assert len(ledger.routes) == 2
    assert lg.route_for(ledger, "acct-b") == route("acct-b")
    found = lg.route_for(ledger, None)
    assert isinstance(found, lg.Ambiguous)
    assert "acct-a" in found.message("msg-shared-1") and "acct-b" in found.message("x")


# Values the previous versions wrote (encode_ledger of format 3, before the recipient
# index and MessageRoute.sent_at): two accounts' routes, one waiting bounce, two seen
# keys; and one route, which is also what format 2 (a 0/1 flag, then the route) wrote.
FORMAT_3 = bytes.fromhex(
    "03023f1e6d314061636d652e6578616d706c650a6d73672d3114636e762d616363742d610c616363742d"
    "61021c6a6f406578616d706c652e636f6d000a6576742d313f1e6d314061636d652e6578616d706c650a"
    "6d73672d3114636e762d616363742d620c616363742d62021c6a6f406578616d706c652e636f6d000a65"
    "76742d31010364736e0a0072617720626f6479ff81faf882bf68d189f982bf6806745b325d4037011464"
    "736e3a69643a62313a626f756e636564006b32"
)
FORMAT_3_ONE_ROUTE = bytes.fromhex(
    "03013f1e6d314061636d652e6578616d706c650a6d73672d3114636e762d616363742d610c616363742d"
    "61021c6a6f406578616d706c652e636f6d000a6576742d310000"
)


def old_route(account: str) -> m.MessageRoute:
    return m.MessageRoute(message_ref="m1@acme.example", message_id="msg-1",
                          conversation_id=f"cnv-{account}", account_id=account,
                          recipients=("jo@example.com",), learned_from="evt-1")  # fmt: skip


def test_every_format_round_trips_and_the_older_ones_are_read() -> None:
    ledger, _ = lg.learn(None, route("acct-a"))
    ledger, _ = lg.learn(ledger, route("acct-b"))
    assert lg.decode_ledger(lg.encode_ledger(ledger)) == ledger
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    indexed = lg.Ledger(
        recent=(replace(route("acct-a"), message_ref="recipient <jo@example.com>", sent_at=at),),
        evicted_until=at - timedelta(days=1),
    )
    assert lg.decode_ledger(lg.encode_ledger(indexed)) == indexed
    old = lg.decode_ledger(FORMAT_3)
    assert old.routes == (old_route("acct-a"), old_route("acct-b"))
    assert [(w.provider, w.body, w.parked_at - w.received_at) for w in old.waiting] == [
        ("dsn", b"\x00raw body\xff", timedelta(seconds=1))
    ]
    assert old.seen == ("dsn:id:b1:bounced", "k2")
    assert (old.recent, old.evicted_until) == ((), None)
    assert lg.decode_ledger(lg.encode_ledger(old)) == old  # rewritten as format 4
    single = lg.Ledger(routes=(old_route("acct-a"),))
    assert lg.decode_ledger(FORMAT_3_ONE_ROUTE) == single
    assert lg.decode_ledger(bytes([2]) + FORMAT_3_ONE_ROUTE[1:]) == single
    assert lg.decode_ledger(lg.encode_ledger_json(single)) == single
