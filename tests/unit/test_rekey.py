"""The re-keying plan (convotrail/rekey.py): what compaction keeps of a topic, and where
each legacy key's live value goes. Pure; tests/integration/test_rekey.py runs it on a
real broker and a worker continuing a re-keyed conversation."""

from __future__ import annotations

from convotrail.rekey import health_key, memory_key, plan
from processors.conversation.core import evolve
from processors.conversation.memory_codec import encode_memory
from processors.delivery.recipients import Health, encode_health
from schemas import keys
from tests.unit.processors.test_conversation_core import T0, Script


def _memory(conversation: str, account: str) -> bytes:
    memory, _ = evolve(None, Script(conversation, account).created(), T0)
    return encode_memory(memory)


def test_each_live_legacy_value_moves_to_its_accounts_key() -> None:
    a, b = _memory("cnv-1", "acct/1"), _memory("cnv-2", "acct-2")
    records = [
        (b"cnv-1", b"stale"),  # overwritten later: only the live value moves
        (b"cnv-1", a),
        (b"cnv-2", b),
        (b"cnv-3", _memory("cnv-3", "acct-3")),
        (b"cnv-3", None),  # deleted: nothing to move
        (keys.conversation("acct-4", "cnv-4"), _memory("cnv-4", "acct-4")),  # already new
    ]
    result = plan("t", records, memory_key)
    assert result.moves == [
        (b"cnv-1", keys.conversation("acct/1", "cnv-1"), a),
        (b"cnv-2", keys.conversation("acct-2", "cnv-2"), b),
    ]
    assert result.current == 1 and result.unresolved == []


def test_a_value_that_does_not_say_its_account_is_reported_not_guessed() -> None:
    result = plan("t", [(b"cnv-9", b"\x00garbage")], memory_key)
    assert result.moves == [] and result.unresolved == [b"cnv-9"]


def test_a_recipient_key_is_split_only_where_it_is_unambiguous() -> None:
    health = encode_health(Health())
    assert health_key(b"acct-1/jo@example.com", health) == keys.recipient(
        "acct-1", "jo@example.com"
    )
    # `a/b/jo@x`: account `a` or `a/b`? Nothing in the value says: unresolved.
    assert health_key(b"a/b/jo@example.com", health) is None
