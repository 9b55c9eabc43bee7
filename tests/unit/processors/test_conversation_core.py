"""The conversation state machine, tested directly: rules, text, and properties."""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.traffic import TrafficProfile, generate
from processors.conversation.core import Memory, Outputs, evolve
from processors.conversation.memory_codec import decode_memory, encode_memory
from processors.conversation.narration import narrate
from schemas import model as m
from schemas.examples import EXAMPLES
from schemas.validation import event_from_json

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DANA = m.Actor(kind=m.ActorKind.STAFF, id="stf-dana", name="Dana")
JO = m.Actor(kind=m.ActorKind.CUSTOMER, id="cus-jo", name="Jo Park")
LEE, SAM = m.StaffRef(id="stf-lee", name="Lee"), m.StaffRef(id="stf-sam", name="Sam")
SUPPORT = m.InboxRef(id="inb-support", name="Support")


class Script:
    """Builds events for one conversation with increasing ids and times."""

    def __init__(self, conversation_id: str = "cnv-1", account_id: str = "acct-1") -> None:
        self.conversation_id = conversation_id
        self.account_id = account_id
        self.number = 0

    def __call__(
        self, payload: m.Payload, actor: m.Actor = DANA, **extra: Any
    ) -> m.ConversationEvent:
        self.number += 1
        return m.ConversationEvent(
            event_id=extra.pop("event_id", f"{self.conversation_id}-e{self.number}"),
            conversation_id=extra.pop("conversation_id", self.conversation_id),
            account_id=extra.pop("account_id", self.account_id),
            type=m.TYPE_BY_PAYLOAD[type(payload)],
            occurred_at=T0 + timedelta(minutes=self.number),
            actor=actor,
            payload=payload,
            **extra,
        )

    def created(self, channel: m.Channel = m.Channel.EMAIL) -> m.ConversationEvent:
        return self(m.ConversationCreated(channel=channel, inbox=SUPPORT, customer_id="cus-jo",
                                          subject="Invoice"), JO)  # fmt: skip


def run(
    events: Iterable[m.ConversationEvent], memory: Memory | None = None
) -> tuple[Memory, list[Outputs]]:
    outputs = []
    memory = memory or Memory()
    for event in events:
        memory, out = evolve(memory, event, NOW)
        outputs.append(out)
    return memory, outputs


def texts(outputs: list[Outputs]) -> list[str]:
    return [entry.text for out in outputs for entry in out.timeline]


def test_a_reassignment_is_applied_and_narrated() -> None:
    s = Script()
    memory, outputs = run([s.created(), s(m.Reassigned(to_assignee=LEE)),
                           s(m.Reassigned(from_assignee=LEE, to_assignee=SAM))])  # fmt: skip
    assert memory.state is not None
    assert memory.state.assignee == SAM and memory.state.version == 3
    assert texts(outputs) == [
        "Jo Park started this conversation by email in Support",
        "Dana assigned this conversation to Lee",
        "Dana reassigned this conversation from Lee to Sam",
    ]
    last = outputs[-1].timeline[0]
    assert last.sequence == 3
    assert [(c.field, c.before, c.after) for c in last.changes] == [("assignee", "Lee", "Sam")]
    assert outputs[-1].state == memory.state


def test_a_duplicate_event_id_is_dropped_and_counted() -> None:
    s = Script()
    created, tagged = s.created(), s(m.TagAdded(tag="vip"))
    memory, outputs = run([created, tagged, tagged, dataclasses.replace(tagged, occurred_at=NOW)])
    assert memory.state is not None and memory.state.version == 2
    assert [o.duplicates for o in outputs] == [0, 0, 1, 1]
    assert outputs[2] == Outputs(duplicates=1)


def test_rejections_carry_a_reason() -> None:
    s = Script()
    _, outputs = run([s(m.TagAdded(tag="vip"))])
    assert [(r.reason, r.message) for r in outputs[0].rejections] == [
        ("not-created", "conversation cnv-1 was never created")
    ]
    memory, outputs = run([s.created(), s.created(), s(m.TagAdded(tag="x"), account_id="acct-2"),
                           s(m.ChatEnded())])  # fmt: skip
    assert [o.rejections[0].reason for o in outputs[1:]] == [
        "already-created",
        "wrong-account",
        "not-a-chat",
    ]
    assert memory.state is not None and memory.state.version == 1


def test_repeating_the_current_value_is_a_no_op() -> None:
    s = Script()
    memory, outputs = run([s.created(), s(m.Resolved()), s(m.Resolved()), s(m.TagRemoved(tag="x")),
                           s(m.Unarchived()), s(m.Reopened()), s(m.Reopened())])  # fmt: skip
    assert [o.noops for o in outputs] == [0, 0, 1, 1, 1, 0, 1]
    assert texts(outputs) == [
        "Jo Park started this conversation by email in Support",
        "Dana resolved this conversation",
        "Dana reopened this conversation",
    ]
    assert memory.state is not None and memory.state.reopen_count == 1


def test_an_inbound_message_reopens_a_resolved_conversation() -> None:
    s = Script()
    message = s(
        m.MessageAdded(
            message_id="msg-9",
            direction=m.MessageDirection.INBOUND,
            visibility=m.MessageVisibility.REPLY,
            channel=m.Channel.EMAIL,
        ),
        JO,
    )
    memory, outputs = run([s.created(), s(m.Resolved()), message])
    assert memory.state is not None
    assert memory.state.status is m.ConversationStatus.OPEN and memory.state.reopen_count == 1
    (reopened,) = outputs[-1].derived
    assert reopened.type is m.EventType.REOPENED
    assert reopened.actor.kind is m.ActorKind.SYSTEM
    assert reopened.causation_id == message.event_id
    assert reopened.event_id == f"{message.event_id}:reopened"
    assert texts(outputs)[-2:] == [
        "Jo Park wrote a message",
        "The system reopened this conversation (customer replied)",
    ]
    # When the derived event comes back through the log it is a duplicate.
    again, out = evolve(memory, reopened, NOW)
    assert again == memory and out.duplicates == 1


def test_a_merge_moves_reminders_to_the_target_through_a_derived_event() -> None:
    source, target = Script("cnv-src"), Script("cnv-dst")
    due = T0 + timedelta(hours=6)
    source_memory, outputs = run([
        source.created(),
        source(m.ReminderAdded(reminder_id="rem-1", due_at=due, for_staff=SAM, note="Call")),
        source(m.Merged(into_conversation_id="cnv-dst")),
    ])  # fmt: skip
    assert source_memory.state is not None
    assert source_memory.state.merged_into == "cnv-dst"
    assert source_memory.state.pending_reminders == ()
    (received,) = outputs[-1].derived
    assert received.conversation_id == "cnv-dst" and received.causation_id == "cnv-src-e3"
    assert isinstance(received.payload, m.MergeReceived)
    assert [r.reminder_id for r in received.payload.moved_reminders] == ["rem-1"]
    target_memory, target_out = run([target.created(), received])
    assert target_memory.state is not None
    assert target_memory.state.merged_from == ("cnv-src",)
    assert [(r.reminder_id, r.due_at) for r in target_memory.state.pending_reminders] == [
        ("rem-1", due)
    ]
    assert texts(target_out)[-1] == (
        "Conversation cnv-src was merged into this conversation with 1 pending reminder"
    )
    # After the merge the source accepts reports about its messages, not changes.
    after, out = run([source(m.TagAdded(tag="late")),
                      source(m.MessageDelivered(message_id="msg-1", recipient="jo@example.com",
                                                provider="ses"), m.Actor(kind=m.ActorKind.SYSTEM))],
                     source_memory)  # fmt: skip
    assert out[0].rejections[0].reason == "merged"
    assert out[1].applied == 1 and after.state is not None and after.state.tags == ()


def test_reply_and_archive_is_one_action_with_one_entry() -> None:
    s = Script()
    reply = s(m.MessageAdded(message_id="msg-2", direction=m.MessageDirection.OUTBOUND,
                             visibility=m.MessageVisibility.REPLY, channel=m.Channel.EMAIL),
              correlation_id="act-1")  # fmt: skip
    action = s(m.RepliedAndArchived(message_id="msg-2"), correlation_id="act-1")
    memory, outputs = run([s.created(), reply, action])
    assert memory.state is not None
    assert memory.state.archived and memory.state.outbound_replies == 1
    assert texts(outputs[1:]) == ["Dana replied and archived this conversation"]


def test_chat_end_and_auto_resolve_only_where_they_apply() -> None:
    s = Script()
    assistant = m.Actor(kind=m.ActorKind.ASSISTANT)
    created = s.created(m.Channel.CHAT)
    auto = s(
        m.AutoResolved(idle_minutes=30, timer_id="idle:1"), assistant, causation_id=created.event_id
    )
    memory, outputs = run([created, s(m.ChatEnded()), auto])
    assert memory.state is not None and memory.state.chat_ended
    assert memory.state.status is m.ConversationStatus.RESOLVED
    assert texts(outputs)[-2:] == [
        "Dana ended the chat",
        "Conversation auto-resolved by the assistant after 30 minutes without activity",
    ]
    held = s(m.PutOnHold())
    late_auto = s(
        m.AutoResolved(idle_minutes=30, timer_id="idle:2"), assistant, causation_id=held.event_id
    )
    memory, outputs = run([s(m.Reopened()), held, late_auto], memory)
    assert outputs[-1].noops == 1 and memory.state is not None
    assert memory.state.status is m.ConversationStatus.ON_HOLD


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_event_type_has_a_transition_and_a_text(event_type: str) -> None:
    event = event_from_json(EXAMPLES[event_type], NOW)
    created = event_from_json(EXAMPLES["CONVERSATION_CREATED"], NOW)
    chat_types = ("CHAT_ENDED", "CHATBOT_HANDED_OVER", "CHATBOT_RESOLVED", "AUTO_RESOLVED")
    channel = m.Channel.CHAT if event_type in chat_types else m.Channel.EMAIL
    assert isinstance(created.payload, m.ConversationCreated)
    created = dataclasses.replace(
        created, conversation_id=event.conversation_id,
        payload=dataclasses.replace(created.payload, channel=channel),
    )  # fmt: skip
    memory, _ = evolve(None, created, NOW)
    if event_type in ("TAG_REMOVED", "UNARCHIVED", "UNMARKED_SPAM", "NOTE_UNPINNED",
                      "REMINDER_CANCELLED", "REOPENED", "REMINDER_TRIGGERED"):  # fmt: skip
        return  # covered by the no-op test: they need a prior state to undo
    if event_type == "CONVERSATION_CREATED":
        memory = Memory()
    memory, out = evolve(memory, event, NOW)
    assert out.applied >= 1, out.rejections
    text = narrate(event, None)
    assert text and text[0].isupper()
    if event.actor.kind is m.ActorKind.STAFF and event.actor.name:
        assert event.actor.name in text


# -- properties over realistic random histories -----------------------------------------

BUSY = TrafficProfile(accounts=2, spam_share=0.2, duplicate_merge_share=0.5,
                      returning_customer_share=0.6, reopen_share=0.4)  # fmt: skip


def histories() -> st.SearchStrategy[list[m.ConversationEvent]]:
    """Generated traffic, then shuffled a little and salted with duplicates."""

    @st.composite
    def build(draw: st.DrawFn) -> list[m.ConversationEvent]:
        seed = draw(st.integers(min_value=0, max_value=10_000))
        events = generate(seed, draw(st.integers(min_value=1, max_value=6)), T0, BUSY)
        rng = random.Random(draw(st.integers(min_value=0, max_value=2**16)))
        for _ in range(draw(st.integers(min_value=0, max_value=5))):
            i = rng.randrange(len(events))
            events.insert(rng.randrange(i, len(events) + 1), events[i])  # a duplicate, later
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            i, j = rng.randrange(len(events)), rng.randrange(len(events))
            events[i], events[j] = events[j], events[i]  # out of order: rejections happen
        return events

    return build()


def replay(
    events: list[m.ConversationEvent], follow_derived: bool = True
) -> tuple[dict[str, Memory], list[Outputs], list[m.ConversationEvent]]:
    """Process events as the log delivers them: derived events for other conversations
    are appended to the log. Returns the memories, the outputs and the log as processed."""
    memories: dict[str, Memory] = {}
    outputs = []
    log = []
    pending = list(events)
    while pending:
        event = pending.pop(0)
        log.append(event)
        memory, out = evolve(memories.get(event.conversation_id), event, NOW)
        memories[event.conversation_id] = memory
        outputs.append(out)
        if follow_derived:
            pending += [d for d in out.derived if d.conversation_id != event.conversation_id]
    return memories, outputs, log


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(histories())
def test_replaying_a_history_twice_gives_identical_outputs(
    events: list[m.ConversationEvent],
) -> None:
    first, second = replay(events), replay(copy.deepcopy(events))
    assert first == second
    assert first[1], "a history produces outputs"


@FAST
@given(histories())
def test_duplicates_never_change_state(events: list[m.ConversationEvent]) -> None:
    memories, _, _ = replay(events)
    doubled, _, _ = replay([e for event in events for e in (event, event)])
    assert {k: v.state for k, v in doubled.items()} == {k: v.state for k, v in memories.items()}


@FAST
@given(histories(), st.data())
def test_snapshot_plus_suffix_equals_the_whole(
    events: list[m.ConversationEvent], data: st.DataObject
) -> None:
    whole, whole_out, log = replay(events)
    cut = data.draw(st.integers(min_value=0, max_value=len(log)))
    # Stop after `cut` records of the log, keep only what the table's changelog keeps
    # (the encoded memories), restart on the rest of the log.
    prefix, prefix_out, _ = replay(log[:cut], follow_derived=False)
    restored = {k: decode_memory(encode_memory(v)) for k, v in prefix.items()}
    assert restored == prefix
    memories = dict(restored)
    suffix_out = []
    for event in log[cut:]:
        memory, out = evolve(memories.get(event.conversation_id), event, NOW)
        memories[event.conversation_id] = memory
        suffix_out.append(out)
    assert {k: v.state for k, v in memories.items()} == {k: v.state for k, v in whole.items()}
    assert [t for o in prefix_out + suffix_out for t in o.timeline] == [
        t for o in whole_out for t in o.timeline
    ]


@FAST
@given(histories())
def test_invariants_hold(events: list[m.ConversationEvent]) -> None:
    memories: dict[str, Memory] = {}
    for event in events:
        before = memories.get(event.conversation_id)
        memory, out = evolve(before, event, NOW)
        memories[event.conversation_id] = memory
        was_merged = before is not None and before.state is not None and before.state.merged_into
        if was_merged and event.type not in ("MESSAGE_SENT", "MESSAGE_DELIVERED", "MESSAGE_VIEWED",
                                             "DELIVERY_FAILED", "BOUNCE_DETECTED",
                                             "CUSTOMER_MARKED_SPAM", "CSAT_SURVEY_SENT",
                                             "ATTACHMENT_DELETED"):  # fmt: skip
            assert out.applied == 0 and (out.rejections or out.duplicates)
        if out.state is not None:
            assert (
                before is None or before.state is None or out.state.version > before.state.version
            )
            assert [t.sequence for t in out.timeline] == sorted({t.sequence for t in out.timeline})
            assert out.state.tags == tuple(sorted(set(out.state.tags)))
        assert out.applied + out.noops + out.duplicates + len(out.rejections) >= 1
        if memory.state is not None:
            assert memory.state.conversation_id == event.conversation_id


def test_a_delay_warning_is_narrated_as_a_delay_not_a_bounce() -> None:
    s = Script()

    def bounce(delayed: bool) -> m.BounceDetected:
        return m.BounceDetected(
            message_id="msg-1", recipient="jo@example.org", provider="dsn",
            bounce_class=m.BounceClass.SOFT, smtp_status="4.4.1", delayed=delayed,
        )  # fmt: skip

    _, outputs = run([s.created(), s(bounce(delayed=True)), s(bounce(delayed=False))])
    assert texts(outputs)[1:] == [
        "Delivery to jo@example.org delayed, still retrying: 4.4.1",
        "Bounce detected for jo@example.org (soft: 4.4.1)",
    ]
