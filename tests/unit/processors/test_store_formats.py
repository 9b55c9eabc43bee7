"""The processors' store formats (their changelog values): every value round-trips,
and the first versions' JSON values, which existing changelogs hold, are still read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.delivery import ledger as lg
from processors.delivery.recipients import (
    EscalationPolicy,
    Health,
    assess,
    decode_health,
    encode_health,
    encode_health_json,
)
from processors.framing import Reader, Writer
from processors.receipts.codec import decode_track, encode_track, encode_track_v1
from schemas import model as m
from tests.unit.delivery.test_recipients import bounce, delivered
from tests.unit.receipts.test_receipts_core import STATUS_FACTS, fold

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
moments = st.integers(-(10**12), 10**13).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)


@given(st.lists(st.one_of(st.none(), moments)), st.lists(st.text(max_size=6)).map(tuple))
def test_framing_round_trips_times_and_ids(
    times: list[datetime | None], ids: tuple[str, ...]
) -> None:
    out = Writer(9)
    for moment in times:
        out.optional_ms(moment)
    out.strings(ids)
    read = Reader(out.bytes())
    assert [read.optional_ms() for _ in times] == times
    assert read.strings() == ids


def test_a_track_round_trips_and_the_json_format_is_read() -> None:
    track, _ = fold(STATUS_FACTS)
    assert decode_track(encode_track(track)) == track
    assert decode_track(encode_track_v1(track)) == track


def test_a_health_round_trips_and_the_json_format_is_read() -> None:
    policy = EscalationPolicy()
    health = Health()
    facts = [bounce(f"msg-{n}", m.BounceClass.SOFT, T0 + timedelta(hours=n)) for n in range(3)]
    for fact in [delivered("msg-0", T0 - timedelta(days=1)), *facts]:
        health, _, _ = assess(health, fact, policy)
    assert health.suppression is not None and len(health.soft_bounces) == 3
    assert decode_health(encode_health(health)) == health
    assert decode_health(encode_health_json(health)) == health
    assert decode_health(encode_health(Health())) == Health()


def test_a_ledger_round_trips_and_the_json_format_is_read() -> None:
    route = m.MessageRoute(message_ref="m1@acme.example", message_id="msg-1",
                           conversation_id="cnv-1", account_id="acct-1",
                           recipients=("jo@example.com",), learned_from="evt-1")  # fmt: skip
    waiting = lg.Waiting("ses", b"\x00raw body\xff", T0, T0 + timedelta(seconds=1), "t[2]@7")
    for ledger in (lg.Ledger(), lg.Ledger(routes=(route,)), lg.Ledger(waiting=(waiting, waiting))):
        assert lg.decode_ledger(lg.encode_ledger(ledger)) == ledger
        assert lg.decode_ledger(lg.encode_ledger_json(ledger)) == ledger
