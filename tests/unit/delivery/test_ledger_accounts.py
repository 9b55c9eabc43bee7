"""The delivery ledger keeps one route per account under a ref and never guesses."""

from __future__ import annotations

from processors.delivery import ledger as lg
from schemas import model as m


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


def test_every_format_round_trips_and_format_2_is_read() -> None:
    ledger, _ = lg.learn(None, route("acct-a"))
    ledger, _ = lg.learn(ledger, route("acct-b"))
    assert lg.decode_ledger(lg.encode_ledger(ledger)) == ledger
    # Format 2 (before account scoping) wrote a 0/1 flag then the route: a count of 1.
    single = lg.Ledger(routes=(route("acct-a"),))
    written = bytearray(lg.encode_ledger(single))
    written[0] = 2
    assert lg.decode_ledger(bytes(written)) == single
    assert lg.decode_ledger(lg.encode_ledger_json(single)) == single
