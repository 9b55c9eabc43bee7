"""One realistic example per event type, in the JSON shape `convotrail produce` reads.

The event catalogue (docs/events.md) shows them, and the tests publish every one
through the real broker and read it back. Timestamps are ISO-8601 with an offset
(epoch milliseconds are accepted too).
"""

# ruff: noqa: E501  (example data reads best one event per line)
from __future__ import annotations

from typing import Any

ACCOUNT = "acct-acme"
CONVERSATION = "cnv-1042"
DANA = {"kind": "STAFF", "id": "stf-dana", "name": "Dana"}
LEE = {"id": "stf-lee", "name": "Lee"}
SAM = {"id": "stf-sam", "name": "Sam"}
CUSTOMER = {"kind": "CUSTOMER", "id": "cus-jo", "name": "Jo Park"}
SYSTEM = {"kind": "SYSTEM"}
ASSISTANT = {"kind": "ASSISTANT", "name": "Assistant"}
SUPPORT = {"id": "inb-support", "name": "Support"}
BILLING = {"id": "inb-billing", "name": "Billing"}


def _event(
    number: int,
    event_type: str,
    actor: dict[str, Any],
    payload: dict[str, Any],
    minute: int,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_id": f"evt-{number:04d}",
        "conversation_id": extra.pop("conversation_id", CONVERSATION),
        "account_id": ACCOUNT,
        "type": event_type,
        "occurred_at": f"2026-11-25T09:{minute:02d}:00Z",
        "actor": actor,
        **extra,
        "payload": payload,
    }


# fmt: off
EXAMPLES: dict[str, dict[str, Any]] = {
    "CONVERSATION_CREATED": _event(1, "CONVERSATION_CREATED", CUSTOMER, {
        "channel": "EMAIL", "inbox": SUPPORT, "brand": "Acme", "subject": "Invoice is wrong",
        "customer_id": "cus-jo", "customer_email": "jo@example.com"}, 0),
    "MESSAGE_ADDED": _event(2, "MESSAGE_ADDED", DANA, {
        "message_id": "msg-2", "direction": "OUTBOUND", "visibility": "REPLY", "channel": "EMAIL",
        "recipients": ["jo@example.com"], "email_message_id": "<msg-2@mail.acme.example>",
        "preview": "Hi Jo, sorry about that: a corrected invoice is attached."}, 1),
    "REASSIGNED": _event(3, "REASSIGNED", DANA, {"from_assignee": LEE, "to_assignee": SAM}, 2),
    "MOVED": _event(4, "MOVED", DANA, {"from_inbox": SUPPORT, "to_inbox": BILLING}, 3),
    "TAG_ADDED": _event(5, "TAG_ADDED", DANA, {"tag": "billing"}, 4),
    "TAG_REMOVED": _event(6, "TAG_REMOVED", DANA, {"tag": "billing"}, 5),
    "RESOLVED": _event(7, "RESOLVED", DANA, {"reason": "answered"}, 6),
    "REOPENED": _event(8, "REOPENED", DANA, {"reason": None}, 7),
    "ARCHIVED": _event(9, "ARCHIVED", DANA, {}, 8),
    "UNARCHIVED": _event(10, "UNARCHIVED", DANA, {}, 9),
    "MARKED_SPAM": _event(11, "MARKED_SPAM", DANA, {"reason": "phishing"}, 10),
    "UNMARKED_SPAM": _event(12, "UNMARKED_SPAM", DANA, {}, 11),
    "CHAT_ENDED": _event(13, "CHAT_ENDED", DANA, {}, 12, conversation_id="cnv-2001"),
    "REPLIED_AND_ARCHIVED": _event(14, "REPLIED_AND_ARCHIVED", DANA, {"message_id": "msg-14"}, 13,
                                   correlation_id="act-14"),
    "REPLIED_AND_REOPENED": _event(15, "REPLIED_AND_REOPENED", DANA, {"message_id": "msg-15"}, 14,
                                   correlation_id="act-15"),
    "WORKFLOW_RAN": _event(16, "WORKFLOW_RAN",
                           {"kind": "WORKFLOW", "id": "wf-vip", "name": "VIP routing", "rule_id": "rule-7"},
                           {"workflow_id": "wf-vip", "workflow_name": "VIP routing", "trigger": "AUTOMATED"}, 15),
    "PUT_ON_HOLD": _event(17, "PUT_ON_HOLD", DANA, {"until": "2026-11-26T09:00:00Z",
                                                    "reason": "waiting for finance"}, 16),
    "NOTE_PINNED": _event(18, "NOTE_PINNED", SAM | {"kind": "STAFF"}, {"note_id": "msg-note-3"}, 17),
    "NOTE_UNPINNED": _event(19, "NOTE_UNPINNED", SAM | {"kind": "STAFF"}, {"note_id": "msg-note-3"}, 18),
    "MERGED": _event(20, "MERGED", DANA, {"into_conversation_id": "cnv-0977"}, 19),
    "MERGE_RECEIVED": _event(21, "MERGE_RECEIVED", SYSTEM, {
        "from_conversation_id": CONVERSATION,
        "moved_reminders": [{"reminder_id": "rem-1", "due_at": "2026-11-25T15:00:00Z",
                             "for_staff": SAM, "note": "Check the refund"}]}, 19,
        conversation_id="cnv-0977", causation_id="evt-0020"),
    "AUTO_RESOLVED": _event(22, "AUTO_RESOLVED", ASSISTANT, {
        "idle_minutes": 30, "timer_id": "idle:cnv-2001:evt-0013"}, 42,
        conversation_id="cnv-2001", causation_id="evt-0013"),
    "ATTACHMENT_DELETED": _event(23, "ATTACHMENT_DELETED", DANA, {
        "attachment_id": "att-9", "file_name": "passport.jpg", "message_id": "msg-2"}, 21),
    "DELIVERY_FAILED": _event(24, "DELIVERY_FAILED", SYSTEM, {
        "message_id": "msg-2", "recipient": "jo@example.com", "provider": "sendgrid",
        "reason": "Bounced Address", "smtp_status": None,
        "matched_by": "MESSAGE_REF"}, 22),
    "BOUNCE_DETECTED": _event(25, "BOUNCE_DETECTED", SYSTEM, {
        "message_id": "msg-2", "recipient": "jo@example.com", "provider": "ses",
        "bounce_class": "HARD", "smtp_status": "5.1.1", "diagnostic": "user unknown",
        "matched_by": "MESSAGE_REF"}, 23),
    "CHATBOT_HANDED_OVER": _event(26, "CHATBOT_HANDED_OVER",
                                  {"kind": "BOT", "id": "bot-faq", "name": "FAQ bot"}, {
        "bot_id": "bot-faq", "bot_name": "FAQ bot", "to_inbox": SUPPORT,
        "reason": "customer asked for a human"}, 24, conversation_id="cnv-2001"),
    "CHATBOT_RESOLVED": _event(27, "CHATBOT_RESOLVED",
                               {"kind": "BOT", "id": "bot-faq", "name": "FAQ bot"},
                               {"bot_id": "bot-faq", "bot_name": "FAQ bot"}, 25, conversation_id="cnv-2002"),
    "SUBJECT_EDITED": _event(28, "SUBJECT_EDITED", DANA, {
        "from_subject": "Invoice is wrong", "to_subject": "Invoice #7781 has the wrong VAT rate"}, 26),
    "REMINDER_ADDED": _event(29, "REMINDER_ADDED", DANA, {
        "reminder_id": "rem-1", "due_at": "2026-11-25T15:00:00Z", "for_staff": SAM,
        "note": "Check the refund"}, 27),
    "REMINDER_CANCELLED": _event(30, "REMINDER_CANCELLED", DANA, {"reminder_id": "rem-1"}, 28),
    "REMINDER_TRIGGERED": _event(31, "REMINDER_TRIGGERED", SYSTEM, {
        "reminder_id": "rem-2", "due_at": "2026-11-25T09:29:00Z", "for_staff": SAM,
        "note": "Call back", "late": False}, 29, causation_id="evt-0029"),
    "CUSTOMER_MARKED_SPAM": _event(32, "CUSTOMER_MARKED_SPAM", SYSTEM, {
        "message_id": "msg-2", "recipient": "jo@example.com", "provider": "mailgun",
        "matched_by": "MESSAGE_REF"}, 30),
    "CSAT_SURVEY_SENT": _event(33, "CSAT_SURVEY_SENT", SYSTEM, {
        "survey_id": "csat-88", "message_id": "msg-33"}, 31),
    "MESSAGE_SENT": _event(34, "MESSAGE_SENT", SYSTEM, {
        "message_id": "msg-2", "recipient": "jo@example.com", "provider": "postmark",
        "provider_message_id": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
        "matched_by": "MESSAGE_REF"}, 32),
    "MESSAGE_DELIVERED": _event(35, "MESSAGE_DELIVERED", SYSTEM, {
        "message_id": "msg-2", "recipient": "jo@example.com", "provider": "postmark",
        "matched_by": "MESSAGE_REF"}, 33),
    "MESSAGE_VIEWED": _event(36, "MESSAGE_VIEWED", CUSTOMER, {
        "message_id": "msg-2", "viewer_kind": "CUSTOMER", "viewer_id": "cus-jo",
        "source": "TRACKING_PIXEL",
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"}, 34),
}
# fmt: on
