"""The traffic generator: reproducible, valid, complete and self-consistent streams."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.traffic import SCANNER_USER_AGENTS, TrafficProfile, generate, to_json
from schemas.model import (
    ActorKind,
    AttachmentDeleted,
    BounceDetected,
    Channel,
    ConversationCreated,
    ConversationEvent,
    CustomerMarkedSpam,
    DeliveryFailed,
    EventType,
    Merged,
    MessageAdded,
    MessageDelivered,
    MessageDirection,
    MessageSent,
    MessageViewed,
    MessageVisibility,
    Moved,
    NotePinned,
    NoteUnpinned,
    Reassigned,
    ReminderAdded,
    ReminderCancelled,
    RepliedAndArchived,
    RepliedAndReopened,
    SubjectEdited,
    TagAdded,
    TagRemoved,
    ViewerKind,
    WorkflowRan,
    WorkflowTrigger,
)
from schemas.validation import check_event, event_from_json

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DERIVED = {EventType.MERGE_RECEIVED, EventType.REMINDER_TRIGGERED, EventType.AUTO_RESOLVED}
DELIVERY = (MessageSent, MessageDelivered, BounceDetected, DeliveryFailed, CustomerMarkedSpam)
# The default rates are realistic, so spam marks and complaints are rare; this profile
# makes them common enough that a few hundred conversations show every type.
BUSY = TrafficProfile(
    spam_share=0.1,
    complaint_share=0.03,
    delivery_failure_share=0.03,
    bounce_share=0.06,
    duplicate_merge_share=0.3,
)


@pytest.fixture(scope="module")
def events() -> list[ConversationEvent]:
    return generate(42, 300, START, BUSY)


def by_conversation(events: list[ConversationEvent]) -> dict[str, list[ConversationEvent]]:
    grouped: dict[str, list[ConversationEvent]] = defaultdict(list)
    for event in events:
        grouped[event.conversation_id].append(event)
    return grouped


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first = generate(7, 60, START)
    assert first == generate(7, 60, START)
    assert [to_json(e) for e in first] == [to_json(e) for e in generate(7, 60, START)]
    other = generate(8, 60, START)
    assert other != first
    assert {e.conversation_id for e in other}.isdisjoint({e.conversation_id for e in first})


def test_every_event_passes_validation(events: list[ConversationEvent]) -> None:
    now = events[-1].occurred_at
    for event in events:
        check_event(event, now)


def test_every_type_but_the_derived_ones_appears(events: list[ConversationEvent]) -> None:
    seen = {event.type for event in events}
    assert seen == set(EventType) - DERIVED


def test_conversations_open_with_created_and_time_never_runs_backwards(
    events: list[ConversationEvent],
) -> None:
    times = [event.occurred_at for event in events]
    assert times == sorted(times)
    conversations = by_conversation(events)
    assert len(conversations) == 300
    for timeline in conversations.values():
        created = timeline[0]
        assert created.type is EventType.CONVERSATION_CREATED
        assert [e.type for e in timeline].count(EventType.CONVERSATION_CREATED) == 1
        first_message = next(e.payload for e in timeline if isinstance(e.payload, MessageAdded))
        if first_message.direction is MessageDirection.INBOUND:
            assert created.actor.kind is ActorKind.CUSTOMER
            assert created.actor.id == created.payload.customer_id  # type: ignore[union-attr]
        else:  # outreach: a staff member wrote first
            assert created.actor.kind is ActorKind.STAFF


def test_ids_are_unique_and_derived_from_the_seed(events: list[ConversationEvent]) -> None:
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.event_id.startswith("evt-42-") for e in events)
    assert all(e.conversation_id.startswith("cnv-42-") for e in events)
    assert all(e.account_id.startswith("acct-") for e in events)
    message_ids = [e.payload.message_id for e in events if isinstance(e.payload, MessageAdded)]
    assert len(set(message_ids)) == len(message_ids)


def test_to_json_round_trips_through_the_produce_reader(events: list[ConversationEvent]) -> None:
    now = events[-1].occurred_at
    for event in events:
        shape = json.loads(json.dumps(to_json(event)))
        assert shape["occurred_at"].endswith("Z")
        assert event_from_json(shape, now) == event


def test_merges_point_at_an_earlier_conversation_of_the_same_account(
    events: list[ConversationEvent],
) -> None:
    conversations = by_conversation(events)
    merges = [e for e in events if isinstance(e.payload, Merged)]
    assert merges
    for merge in merges:
        assert isinstance(merge.payload, Merged)
        target = conversations[merge.payload.into_conversation_id]
        assert merge.payload.into_conversation_id != merge.conversation_id
        assert target[0].account_id == merge.account_id
        assert target[0].occurred_at <= merge.occurred_at
        # Same customer: a duplicate folded into the conversation it repeats.
        source_created = conversations[merge.conversation_id][0].payload
        target_created = target[0].payload
        assert isinstance(source_created, ConversationCreated)
        assert isinstance(target_created, ConversationCreated)
        assert source_created.customer_id == target_created.customer_id
        assert conversations[merge.conversation_id][-1] == merge
        assert EventType.MERGED not in {e.type for e in target}


def test_each_conversation_agrees_with_itself(events: list[ConversationEvent]) -> None:
    for timeline in by_conversation(events).values():
        _replay(timeline)


def _replay(timeline: list[ConversationEvent]) -> None:
    """Walk one conversation, checking every event against what came before it."""
    created = timeline[0].payload
    assert isinstance(created, ConversationCreated)
    assignee, inbox, subject = None, created.inbox, created.subject
    tags: set[str] = set()
    notes: set[str] = set()
    pinned: set[str] = set()
    inbound: set[str] = set()
    outbound: dict[str, MessageAdded] = {}
    reminders: dict[str, datetime] = {}
    for event in timeline[1:]:
        payload = event.payload
        if isinstance(payload, Reassigned):
            assert payload.from_assignee == assignee
            assert payload.to_assignee != assignee
            assignee = payload.to_assignee
        elif isinstance(payload, Moved):
            assert payload.from_inbox == inbox
            inbox = payload.to_inbox
        elif isinstance(payload, TagAdded):
            assert payload.tag not in tags
            tags.add(payload.tag)
        elif isinstance(payload, TagRemoved):
            tags.remove(payload.tag)
        elif isinstance(payload, SubjectEdited):
            assert payload.from_subject == subject
            subject = payload.to_subject
        elif isinstance(payload, MessageAdded):
            assert payload.channel is created.channel
            if payload.visibility is MessageVisibility.NOTE:
                assert not payload.recipients
                notes.add(payload.message_id)
            elif payload.direction is MessageDirection.INBOUND:
                assert event.actor.kind is ActorKind.CUSTOMER
                inbound.add(payload.message_id)
            else:
                outbound[payload.message_id] = payload
        elif isinstance(payload, NotePinned):
            assert payload.note_id in notes and payload.note_id not in pinned
            pinned.add(payload.note_id)
        elif isinstance(payload, NoteUnpinned):
            pinned.remove(payload.note_id)
        elif isinstance(payload, ReminderAdded):
            assert payload.due_at > event.occurred_at
            reminders[payload.reminder_id] = payload.due_at
        elif isinstance(payload, ReminderCancelled):
            # Cancelled while still pending, never after it fired.
            assert event.occurred_at < reminders.pop(payload.reminder_id)
        elif isinstance(payload, AttachmentDeleted):
            assert payload.message_id in inbound
        elif isinstance(payload, (RepliedAndArchived, RepliedAndReopened)):
            assert payload.message_id in outbound
            reply = next(
                e for e in timeline if getattr(e.payload, "message_id", None) == payload.message_id
            )
            assert event.correlation_id is not None
            assert reply.correlation_id == event.correlation_id
        elif isinstance(payload, DELIVERY):
            assert event.actor.kind is ActorKind.SYSTEM
            message = outbound[payload.message_id]
            assert message.channel is Channel.EMAIL
            assert payload.recipient in message.recipients
        elif isinstance(payload, MessageViewed):
            if payload.viewer_kind is ViewerKind.CUSTOMER:
                assert payload.message_id in outbound
                assert payload.viewer_id == created.customer_id
            else:
                assert payload.message_id in inbound
                assert event.actor.kind is ActorKind.STAFF
                assert payload.viewer_id == event.actor.id
        elif isinstance(payload, WorkflowRan):
            if payload.trigger is WorkflowTrigger.AUTOMATED:
                assert event.actor.kind is ActorKind.WORKFLOW
                assert event.actor.rule_id is not None
            else:
                assert event.actor.kind is ActorKind.STAFF
        if event.type in (
            EventType.CHAT_ENDED,
            EventType.CHATBOT_HANDED_OVER,
            EventType.CHATBOT_RESOLVED,
        ):
            assert created.channel is Channel.CHAT


def test_email_replies_are_reported_by_the_provider_and_scanners_fetch_fast(
    events: list[ConversationEvent],
) -> None:
    replies = [
        e.payload
        for e in events
        if isinstance(e.payload, MessageAdded)
        and e.payload.direction is MessageDirection.OUTBOUND
        and e.payload.visibility is MessageVisibility.REPLY
    ]
    for reply in replies:
        email = reply.channel is Channel.EMAIL
        assert bool(reply.recipients) is email
        assert (reply.email_message_id is not None) is email
    delivered: dict[tuple[str, str], datetime] = {}
    sent: set[tuple[str, str]] = set()
    for event in events:
        if isinstance(event.payload, MessageSent):
            sent.add((event.payload.message_id, event.payload.recipient))
        elif isinstance(event.payload, MessageDelivered):
            assert (event.payload.message_id, event.payload.recipient) in sent
            delivered[(event.payload.message_id, event.payload.recipient)] = event.occurred_at
    # Every recipient of every email reply, and nothing else, is handed to the provider.
    assert {(r.message_id, to) for r in replies for to in r.recipients} == sent
    # Views are the customer's: the first recipient (others are people they copied).
    customer_address = {r.message_id: r.recipients[0] for r in replies if r.recipients}
    email_views = [
        e
        for e in events
        if isinstance(e.payload, MessageViewed) and e.payload.message_id in customer_address
    ]
    scanned = 0
    for view in email_views:
        assert isinstance(view.payload, MessageViewed)
        message_id = view.payload.message_id
        since = view.occurred_at - delivered[(message_id, customer_address[message_id])]
        assert since >= timedelta(0)
        if view.payload.user_agent in SCANNER_USER_AGENTS:
            scanned += 1
            assert since <= timedelta(seconds=10)
    assert 0 < scanned < len(email_views) / 2


def test_chat_moves_in_seconds_and_email_in_hours(events: list[ConversationEvent]) -> None:
    gaps: dict[Channel, list[float]] = {Channel.CHAT: [], Channel.EMAIL: []}
    for timeline in by_conversation(events).values():
        messages = [
            e
            for e in timeline
            if isinstance(e.payload, MessageAdded)
            and e.payload.visibility is MessageVisibility.REPLY
        ]
        for before, after in pairwise(messages):
            assert isinstance(before.payload, MessageAdded)
            gap = (after.occurred_at - before.occurred_at).total_seconds()
            gaps[before.payload.channel].append(gap)
    assert statistics.median(gaps[Channel.CHAT]) < 120
    assert statistics.median(gaps[Channel.EMAIL]) > 20 * 60


def test_the_first_conversation_starts_at_start_whatever_its_offset() -> None:
    paris = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    events = generate(3, 5, paris)
    assert events[0].occurred_at == datetime(2026, 11, 25, 9, 0, 0, 123000, tzinfo=UTC)
    assert events[0].type is EventType.CONVERSATION_CREATED


def test_no_conversations_no_events() -> None:
    assert generate(1, 0, START) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(1, 10, datetime(2026, 11, 25, 9, 0))
    with pytest.raises(ValueError, match="negative"):
        generate(1, -1, START)
    with pytest.raises(ValueError, match="chat_share"):
        TrafficProfile(chat_share=1.5)
    with pytest.raises(ValueError, match="accounts"):
        TrafficProfile(accounts=0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=-(2**40), max_value=2**63),
    conversations=st.integers(min_value=0, max_value=12),
    start=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    accounts=st.integers(min_value=1, max_value=14),
    staff=st.integers(min_value=1, max_value=25),
    chat_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_any_seed_and_profile_gives_valid_consistent_events(
    seed: int,
    conversations: int,
    start: datetime,
    accounts: int,
    staff: int,
    chat_share: float,
) -> None:
    profile = TrafficProfile(accounts=accounts, staff_per_account=staff, chat_share=chat_share)
    events = generate(seed, conversations, start, profile)
    assert len({e.conversation_id for e in events}) == conversations
    if not events:
        return
    now = events[-1].occurred_at
    for event in events:
        check_event(event, now)
    for timeline in by_conversation(events).values():
        assert timeline[0].type is EventType.CONVERSATION_CREATED
        _replay(timeline)
