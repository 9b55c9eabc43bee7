"""Routing by recipient: what to do with a bounce that names no message.

Some bounce emails carry no Message-ID of the message they return: no returned
headers at all, only the bounce's own id (which names the bounce, never the
original), or an original hidden behind broken MIME. Such a notification names its
recipient only. The intake keys it `recipient <address>` (schemas/keys.py), and the
ledger under that key holds the recipient index (`Ledger.recent`): the latest
outbound messages to that address, per account, learned from the same events as the
message routes (routes.py files each recipient's route under that key).

The rule (docs/delivery.md, "Routing by recipient"):

- the message is the most recent one the account sent to the address at or before
  the bounce (`bounce_time`, allowing CLOCK_SKEW between our clocks and the
  bounce's), and at most `window` before it: an older message is not what bounced
  today, and a later one cannot have caused the bounce;
- the account is the one the notification names; when it names none (a raw bounce
  email never does), routing is only safe when exactly one account has mailed the
  address since the window's start: with two or more (or an account the index had
  to drop for room) the notification is `Ambiguous` and goes to the DLQ as
  `ambiguous-route`, never guessed;
- nothing eligible: None, and the notification waits like one whose message ref is
  not known yet (its message event may still come), then expires to the DLQ as
  `unknown-message`.

The index is bounded (MAX_PER_ACCOUNT messages per account, MAX_ACCOUNTS accounts per
address) and forgets a message `window` after it was sent (`forget`, on the ledger
store's schedule), so an address nobody mails any more leaves no state behind.

Pure: no I/O; times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.delivery.ledger import Ledger, Waiting
from schemas import model as m
from schemas.records import replace

# Messages kept per account and address: a conversation with a few replies in a day.
# Only the latest one sent before a bounce is ever chosen, so older ones matter only
# while a bounce about them can still arrive.
MAX_PER_ACCOUNT = 4
# Accounts kept per address. Beyond it the account whose last message is oldest is
# dropped and remembered as `evicted_until`: until that leaves the window, a bounce
# that names no account cannot know every sender and is ambiguous.
MAX_ACCOUNTS = 16
# How far a bounce's own time may run behind the event time of the message it
# returns (the remote server's clock against the platform's) and still match it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several accounts mailed the address within the window and the notification
    names none of them (`evicted`: and the index dropped some it cannot name)."""

    accounts: tuple[str, ...]
    evicted: bool = False

    def message(self, address: str, window: timedelta) -> str:
        named = ", ".join(self.accounts) or "none kept"
        more = " and more than the index keeps" if self.evicted else ""
        return (
            f"the notification names no message, and recipient {address!r} was mailed "
            f"by accounts {named}{more} within {describe_window(window)}; it does not say which"
        )


def describe_window(window: timedelta) -> str:
    days = window / timedelta(days=1)
    return f"{days:g} days" if days >= 1 else f"{window.total_seconds():g} s"


def bounce_time(occurred_at: datetime | None, received_at: datetime) -> datetime:
    """When the bounce happened, for matching: the time it gives, but never after we
    received it (a remote clock running ahead), and when we received it if it gives
    none."""
    if occurred_at is None:
        return received_at
    return min(occurred_at, received_at)


def learn(
    ledger: Ledger | None, route: m.MessageRoute, window: timedelta
) -> tuple[Ledger, tuple[Waiting, ...]]:
    """File a message in the index of its recipient (`route` is filed under
    `recipient <address>`, sent_at set); what waited is released for the caller to
    route again (`route_for`) or re-park. A message already known (a MESSAGE_SENT
    after its MESSAGE_ADDED) keeps its earliest time and releases nothing."""
    ledger = ledger or Ledger()
    sent_at = route.sent_at
    if sent_at is None:
        # Written by something older than the index: no time, no place in a window.
        return ledger, ()
    same = [
        r
        for r in ledger.recent
        if r.account_id == route.account_id and r.message_id == route.message_id
    ]
    if same and _sent(same[0]) <= sent_at:
        return ledger, ()
    # Ordered by send time, ties by id, so the index does not depend on learning order.
    entries = sorted([*(r for r in ledger.recent if r not in same), route], key=_order)
    newest = _sent(entries[-1])
    entries = [r for r in entries if _sent(r) > newest - window]
    kept: list[m.MessageRoute] = []
    per_account: dict[str, int] = {}
    for r in reversed(entries):  # newest first: each account's latest are kept
        if per_account.get(r.account_id, 0) < MAX_PER_ACCOUNT:
            per_account[r.account_id] = per_account.get(r.account_id, 0) + 1
            kept.append(r)
    kept.reverse()
    last_sent = {r.account_id: _sent(r) for r in kept}  # ascending: the last wins
    evicted = ledger.evicted_until
    if len(last_sent) > MAX_ACCOUNTS:
        by_age = sorted(last_sent, key=lambda account: (last_sent[account], account))
        dropped = by_age[: len(last_sent) - MAX_ACCOUNTS]
        latest_dropped = max(last_sent[a] for a in dropped)
        evicted = latest_dropped if evicted is None else max(evicted, latest_dropped)
        kept = [r for r in kept if r.account_id not in dropped]
    updated = replace(ledger, recent=tuple(kept), evicted_until=evicted, waiting=())
    return updated, ledger.waiting


def route_for(
    ledger: Ledger | None, account_id: str | None, at: datetime, window: timedelta
) -> m.MessageRoute | Ambiguous | None:
    """The message a notification about the index's address that names no message
    is about (see the module docstring); `at` is its `bounce_time`."""
    recent = ledger.recent if ledger is not None else ()
    since = at - window
    if account_id is None:
        # Any account that mailed the address since the window's start counts, even
        # after the bounce: conservative, as a wrong conversation is worse than a DLQ.
        accounts = tuple(dict.fromkeys(r.account_id for r in recent if _sent(r) > since))
        evicted_until = ledger.evicted_until if ledger is not None else None
        evicted = evicted_until is not None and evicted_until > since
        if len(accounts) > 1 or evicted:
            return Ambiguous(accounts, evicted)
        if not accounts:
            return None
        (account_id,) = accounts
    eligible = [
        r for r in recent if r.account_id == account_id and since < _sent(r) <= at + CLOCK_SKEW
    ]
    return eligible[-1] if eligible else None  # oldest first: the last is the latest


def forget(ledger: Ledger, now: datetime, window: timedelta) -> Ledger:
    """The index without what was sent `window` or longer before `now`."""
    horizon = now - window
    recent = tuple(r for r in ledger.recent if _sent(r) > horizon)
    evicted = ledger.evicted_until
    if evicted is not None and evicted <= horizon:
        evicted = None
    if recent == ledger.recent and evicted == ledger.evicted_until:
        return ledger
    return replace(ledger, recent=recent, evicted_until=evicted)


def forget_at(ledger: Ledger, window: timedelta) -> datetime | None:
    """When `forget` next has something to drop; None for a ledger with no index."""
    times = [_sent(r) for r in ledger.recent]
    if ledger.evicted_until is not None:
        times.append(ledger.evicted_until)
    return min(times) + window if times else None


def is_empty(ledger: Ledger) -> bool:
    """Nothing left worth a store entry (the idempotency keys of an index whose
    messages are all forgotten guard against retries days late: not worth keeping)."""
    return not (ledger.routes or ledger.waiting or ledger.recent or ledger.evicted_until)


def _order(route: m.MessageRoute) -> tuple[datetime, str]:
    return _sent(route), route.message_id


def _sent(route: m.MessageRoute) -> datetime:
    assert route.sent_at is not None  # only routes with a time enter the index
    return route.sent_at
