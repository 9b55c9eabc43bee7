"""Record keys are scoped by account and unambiguous (schemas/keys.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas import keys
from schemas import model as m
from schemas.field_rules import ID_PATTERN

ids = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda s: len(s) < 40)
# The last component may be free text (an email address, a provider's ref).
free = st.text(min_size=0, max_size=30)
kinds = st.sampled_from(list(m.ViewerKind))


def receipt(account: str, message: str, kind: m.ViewerKind, viewer: str) -> m.ReadReceipt:
    return m.ReadReceipt(message_id=message, conversation_id="c", account_id=account,
                         viewer_kind=kind, viewer_id=viewer, first_viewed_at=None,
                         last_viewed_at=None, view_count=0, automated_view_count=0,
                         last_event_id="e")  # fmt: skip


def status(account: str, message: str, recipient: str) -> m.DeliveryStatus:
    return m.DeliveryStatus(message_id=message, conversation_id="c", account_id=account,
                            recipient=recipient, state=m.DeliveryState.SENT, provider="ses",
                            bounce_class=None, smtp_status=None, diagnostic=None, sent_at=None,
                            delivered_at=None, updated_at=datetime(2026, 1, 1, tzinfo=UTC),
                            last_event_id="e")  # fmt: skip


@given(ids, ids, ids, ids)
def test_distinct_account_conversation_pairs_never_share_a_key(a1: str, c1: str, a2: str,
                                                               c2: str) -> None:  # fmt: skip
    if (a1, c1) != (a2, c2):
        assert keys.conversation(a1, c1) != keys.conversation(a2, c2)
        assert keys.message_track(a1, c1) != keys.message_track(a2, c2)


@given(ids, free, ids, free)
def test_distinct_account_recipient_pairs_never_share_a_key(a1: str, r1: str, a2: str,
                                                            r2: str) -> None:  # fmt: skip
    if (a1, r1) != (a2, r2):
        assert keys.recipient(a1, r1) != keys.recipient(a2, r2)


@given(ids, ids, kinds, ids, ids, ids, kinds, ids)
def test_distinct_receipts_never_share_a_key(a1: str, m1: str, k1: m.ViewerKind, v1: str,
                                             a2: str, m2: str, k2: m.ViewerKind,
                                             v2: str) -> None:  # fmt: skip
    if (a1, m1, k1, v1) != (a2, m2, k2, v2):
        assert keys.read_receipt(receipt(a1, m1, k1, v1)) != keys.read_receipt(
            receipt(a2, m2, k2, v2)
        )


@given(ids, ids, free, ids, ids, free)
def test_distinct_statuses_never_share_a_key(a1: str, m1: str, r1: str, a2: str, m2: str,
                                             r2: str) -> None:  # fmt: skip
    if (a1, m1, r1) != (a2, m2, r2):
        assert keys.delivery_status(status(a1, m1, r1)) != keys.delivery_status(status(a2, m2, r2))


@given(ids, ids, free)
def test_a_key_splits_back_into_its_components(account: str, message: str, last: str) -> None:
    assert keys.split(keys.delivery_status(status(account, message, last)), 3) == (
        account,
        message,
        last,
    )


def test_the_old_slash_keys_were_ambiguous_and_the_new_ones_are_not() -> None:
    # An account id may contain "/": ("a/b", "c") and ("a", "b/c") collided before.
    assert keys.legacy_recipient("a/b", "c") == keys.legacy_recipient("a", "b/c")
    assert keys.recipient("a/b", "c") != keys.recipient("a", "b/c")
    assert keys.conversation("acct-a", "cnv-1") == b"acct-a|cnv-1"
    assert keys.legacy_conversation("cnv-1") == b"cnv-1"
