"""The provider webhook parsers, fed the providers' documented sample payloads
(tests/fixtures/delivery, sources in its README) and broken variants of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from processors.delivery.notification import (
    MESSAGE_ID_ARG,
    Notification,
    NotificationError,
    normalize_address,
)
from processors.delivery.notification import NotificationKind as K
from processors.delivery.providers import mailgun, postmark, sendgrid, ses
from schemas.model import BounceClass as C

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "delivery"
PARSERS: dict[str, ModuleType] = {
    "ses": ses,
    "sendgrid": sendgrid,
    "mailgun": mailgun,
    "postmark": postmark,
}
# Fixture units that are samples of events the parsers must refuse.
REFUSED = {("mailgun", "opened.json", 0), ("sendgrid", "events.json", 8)}

SES_BOUNCED_ID = "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
SES_EXAMPLE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def document(provider: str, name: str) -> Any:
    return json.loads(fixture(provider, name))


def encode(value: object) -> bytes:
    return json.dumps(value).encode()


def parse_one(module: ModuleType, unit: bytes) -> Notification:
    notifications: list[Notification] = module.parse(unit)
    assert len(notifications) == 1
    return notifications[0]


def utc(
    year: int, month: int, day: int, hour: int, minute: int, second: int, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def refusal(module: ModuleType, unit: bytes) -> NotificationError:
    with pytest.raises(NotificationError) as caught:
        module.parse(unit)
    return caught.value


def all_units() -> list[tuple[str, str, int, bytes]]:
    units = []
    for provider, module in PARSERS.items():
        for path in sorted((FIXTURES / provider).glob("*.json")):
            for index, unit in enumerate(module.split(path.read_bytes())):
                units.append((provider, path.name, index, unit))
    return units


ALL_UNITS = all_units()


def test_every_provider_has_fixtures() -> None:
    counts = {provider: sum(u[0] == provider for u in ALL_UNITS) for provider in PARSERS}
    assert counts == {"ses": 10, "sendgrid": 9, "mailgun": 7, "postmark": 7}


@pytest.mark.parametrize(
    ("provider", "name", "index", "unit"),
    ALL_UNITS,
    ids=[f"{p}/{n}#{i}" for p, n, i, _ in ALL_UNITS],
)
def test_every_fixture_parses_into_well_formed_notifications(
    provider: str, name: str, index: int, unit: bytes
) -> None:
    module = PARSERS[provider]
    if (provider, name, index) in REFUSED:
        assert refusal(module, unit).reason == "unsupported-type"
        return
    notifications = module.parse(unit)
    assert notifications
    for notification in notifications:
        assert notification.provider == provider
        assert notification.recipient == normalize_address(notification.recipient) != ""
        assert notification.message_refs
        assert len(set(notification.message_refs)) == len(notification.message_refs)
        assert notification.occurred_at is not None
        assert notification.occurred_at.tzinfo is UTC
        has_class = notification.kind in {K.BOUNCED, K.DEFERRED}
        assert (notification.bounce_class is not None) == has_class


# --- Amazon SES -----------------------------------------------------------------------


def test_ses_permanent_bounce_with_dsn() -> None:
    assert ses.parse(fixture("ses", "bounce_permanent.json")) == [
        Notification(
            provider="ses",
            kind=K.BOUNCED,
            recipient="jane@example.com",
            message_refs=("custom-message-ID", SES_BOUNCED_ID),
            occurred_at=utc(2016, 1, 27, 14, 59, 38, 237000),
            provider_event_id="00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            provider_message_id=SES_BOUNCED_ID,
            bounce_class=C.HARD,
            smtp_status="5.1.1",
            diagnostic="smtp; 550 5.1.1 <jane@example.com>... User",
        )
    ]


def test_ses_bounce_without_dsn_gives_one_notification_per_recipient() -> None:
    notifications = ses.parse(fixture("ses", "bounce_permanent_no_dsn.json"))
    assert [n.recipient for n in notifications] == ["jane@example.com", "richard@example.com"]
    assert {n.bounce_class for n in notifications} == {C.HARD}
    assert {n.smtp_status for n in notifications} == {None}
    assert {n.diagnostic for n in notifications} == {None}
    assert {n.provider_event_id for n in notifications} == {
        "00000137860315fd-869464a4-8680-4114-98d3-716fe35851f9-000000"
    }


def test_ses_transient_bounce_is_soft_even_with_a_5xx_status() -> None:
    notification = parse_one(ses, fixture("ses", "bounce_transient.json"))
    assert (notification.kind, notification.bounce_class) == (K.BOUNCED, C.SOFT)
    assert notification.recipient == "mary@example.com"
    assert notification.smtp_status == "5.2.2"
    assert notification.occurred_at == utc(2016, 1, 27, 15, 12, 4, 101000)
    # No headers in this notification: SES's own id is the only ref.
    assert notification.message_refs == (SES_BOUNCED_ID,)


@pytest.mark.parametrize(
    ("bounce_type", "sub_type", "expected"),
    [
        ("Transient", "ContentRejected", C.POLICY),
        ("Transient", "AttachmentRejected", C.POLICY),
        ("Transient", "MessageTooLarge", C.SOFT),
        ("Transient", "General", C.SOFT),
        ("Permanent", "NoEmail", C.HARD),
        ("Permanent", "OnAccountSuppressionList", C.HARD),
        ("Undetermined", "Undetermined", C.UNKNOWN),
        ("SomethingNew", "General", C.SOFT),  # undocumented: the 5.2.2 status decides
    ],
)
def test_ses_bounce_classes(bounce_type: str, sub_type: str, expected: C) -> None:
    body = document("ses", "bounce_transient.json")
    body["bounce"]["bounceType"], body["bounce"]["bounceSubType"] = bounce_type, sub_type
    assert parse_one(ses, encode(body)).bounce_class is expected


def test_ses_complaint() -> None:
    notification = parse_one(ses, fixture("ses", "complaint.json"))
    assert notification.kind is K.COMPLAINED
    assert notification.recipient == "richard@example.com"
    assert notification.bounce_class is None
    assert notification.diagnostic == "abuse"
    assert notification.provider_event_id == (
        "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"
    )
    assert notification.message_refs == (
        "custom-message-ID",
        "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
    )


def test_ses_delivery_has_no_event_id_without_sns() -> None:
    notification = parse_one(ses, fixture("ses", "delivery.json"))
    assert notification.kind is K.DELIVERED
    assert notification.recipient == "jane@example.com"
    assert notification.provider_event_id is None
    assert notification.diagnostic == "250 ok:  Message 64111812 accepted"
    assert notification.occurred_at == utc(2016, 1, 27, 14, 59, 38, 237000)


def test_ses_event_publishing_send_takes_the_message_id_tag_first() -> None:
    notification = parse_one(ses, fixture("ses", "event_send.json"))
    assert notification.kind is K.SENT
    assert notification.recipient == "recipient@example.com"
    # commonHeaders.messageId repeats SES's id here: it appears once.
    assert notification.message_refs == ("msg-7f3a2c", SES_EXAMPLE_ID)
    assert notification.occurred_at == utc(2016, 10, 14, 5, 2, 16, 645000)  # mail.timestamp


def test_ses_event_publishing_delivery_delay_is_a_soft_deferral() -> None:
    notification = parse_one(ses, fixture("ses", "event_delivery_delay.json"))
    assert (notification.kind, notification.bounce_class) == (K.DEFERRED, C.SOFT)
    assert notification.smtp_status == "4.4.1"
    assert notification.diagnostic == "smtp; 421 4.4.1 Unable to connect to remote host"
    assert notification.occurred_at == utc(2020, 6, 16, 0, 25, 40, 95000)


def test_ses_event_publishing_reject_fails_every_destination() -> None:
    notification = parse_one(ses, fixture("ses", "event_reject.json"))
    assert (notification.kind, notification.recipient) == (K.FAILED, "sender@example.com")
    assert notification.diagnostic == "Bad content"
    assert notification.bounce_class is None


def test_ses_event_publishing_bounce() -> None:
    notification = parse_one(ses, fixture("ses", "event_bounce.json"))
    assert (notification.kind, notification.bounce_class) == (K.BOUNCED, C.HARD)
    assert notification.smtp_status == "5.1.1"
    assert notification.message_refs == (SES_EXAMPLE_ID,)
    assert notification.provider_event_id == (
        "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000"
    )


def test_ses_event_publishing_rendering_failure_is_a_failure() -> None:
    body = document("ses", "event_send.json")
    del body["send"]
    body["eventType"] = "Rendering Failure"
    body["failure"] = {
        "errorMessage": "Attribute 'attributeName' is not present in the rendering data.",
        "templateName": "MyTemplate",
    }
    notification = parse_one(ses, encode(body))
    assert notification.kind is K.FAILED
    assert notification.diagnostic == (
        "Attribute 'attributeName' is not present in the rendering data."
    )


def test_ses_sns_envelope_is_unwrapped() -> None:
    notification = parse_one(ses, fixture("ses", "sns_bounce.json"))
    assert notification.recipient == "jane@example.com"
    assert notification.bounce_class is C.HARD
    # The X-header stamped by the platform comes first.
    assert notification.message_refs == ("msg-5b21e0", "custom-message-ID", SES_BOUNCED_ID)
    # feedbackId names the bounce itself; it wins over the SNS MessageId.
    assert notification.provider_event_id == (
        "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000"
    )


def test_ses_sns_message_id_names_a_delivery() -> None:
    envelope = document("ses", "sns_bounce.json")
    envelope["Message"] = fixture("ses", "delivery.json").decode()
    notification = parse_one(ses, encode(envelope))
    assert notification.kind is K.DELIVERED
    assert notification.provider_event_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"


def test_ses_unsupported_types_are_refused() -> None:
    body = document("ses", "event_send.json")
    body["eventType"] = "Open"
    error = refusal(ses, encode(body))
    assert error.reason == "unsupported-type"
    assert "Open" in str(error)

    envelope = document("ses", "sns_bounce.json")
    envelope["Type"] = "SubscriptionConfirmation"
    envelope["Message"] = "You have chosen to subscribe to the topic ..."
    error = refusal(ses, encode(envelope))
    assert error.reason == "unsupported-type"
    assert "SubscriptionConfirmation" in str(error)


def _ses_without_recipients() -> bytes:
    body = document("ses", "bounce_permanent.json")
    del body["bounce"]["bouncedRecipients"]
    return encode(body)


def _ses_without_type() -> bytes:
    body = document("ses", "delivery.json")
    del body["notificationType"]
    return encode(body)


def _ses_sns_with_text_message() -> bytes:
    envelope = document("ses", "sns_bounce.json")
    envelope["Message"] = "Successfully validated SNS topic for Amazon SES event publishing."
    return encode(envelope)


def _ses_with_bad_timestamp() -> bytes:
    body = document("ses", "delivery.json")
    body["delivery"]["timestamp"] = "yesterday"
    return encode(body)


# --- SendGrid -------------------------------------------------------------------------


def test_sendgrid_split_gives_one_compact_unit_per_event() -> None:
    batch = json.loads(fixture("sendgrid", "events.json"))
    units = sendgrid.split(fixture("sendgrid", "events.json"))
    assert len(units) == len(batch) == 9
    assert [json.loads(unit) for unit in units] == batch
    # Compact: no whitespace between tokens, unlike the pretty-printed fixture.
    assert units[0] == json.dumps(batch[0], separators=(",", ":")).encode()
    assert all(b"\n" not in unit for unit in units)


def test_sendgrid_split_of_an_empty_batch() -> None:
    assert sendgrid.split(b"[]") == []


SENDGRID_EXPECTED = [
    # kind, recipient, class, smtp status, diagnostic
    (K.SENT, "alex@example.com", None, None, None),
    (K.DEFERRED, "alex@example.com", C.SOFT, None, "400 try again later"),
    (K.DELIVERED, "alex@example.com", None, None, "250 OK"),
    (K.BOUNCED, "alex@example.com", C.HARD, "5.0.0", "500 unknown recipient"),
    (K.BOUNCED, "sam@example.org", C.POLICY, "5.7.1", None),
    (K.BOUNCED, "noemail@this.does.not.exist.tld", C.POLICY, None, None),
    (K.FAILED, "alex@example.com", None, "5.0.0", "Bounced Address"),
    (K.COMPLAINED, "alex@example.com", None, None, None),
]


@pytest.mark.parametrize(("index", "expected"), list(enumerate(SENDGRID_EXPECTED)))
def test_sendgrid_batch_events(index: int, expected: tuple[Any, ...]) -> None:
    unit = sendgrid.split(fixture("sendgrid", "events.json"))[index]
    notification = parse_one(sendgrid, unit)
    kind, recipient, bounce_class, smtp_status, diagnostic = expected
    assert notification.kind is kind
    assert notification.recipient == recipient
    assert notification.bounce_class is bounce_class
    assert notification.smtp_status == smtp_status
    if diagnostic is not None:
        assert notification.diagnostic == diagnostic
    assert notification.provider_event_id == json.loads(unit)["sg_event_id"]


def test_sendgrid_refs_and_ids() -> None:
    units = sendgrid.split(fixture("sendgrid", "events.json"))
    processed, blocked = parse_one(sendgrid, units[0]), parse_one(sendgrid, units[4])
    # Custom argument, then smtp-id without <>, then the sg_message_id without its
    # '.filter...' routing suffix.
    assert processed.message_refs == (
        "msg-7f3a2c",
        "14c5d75ce93.dfd.64b469@ismtpd-555",
        "14c5d75ce93",
    )
    assert processed.provider_message_id == "14c5d75ce93"
    assert processed.occurred_at == utc(2017, 12, 15, 0, 59, 29)
    assert blocked.message_refs == (
        "x2Lq9dGkR0mP3vN8aB1cZw@geopod-ismtpd-4",
        "x2Lq9dGkR0mP3vN8aB1cZw",
    )
    assert blocked.provider_message_id == "x2Lq9dGkR0mP3vN8aB1cZw"


def test_sendgrid_parse_accepts_a_whole_array() -> None:
    events = json.loads(fixture("sendgrid", "events.json"))[:3]
    kinds = [n.kind for n in sendgrid.parse(encode(events))]
    assert kinds == [K.SENT, K.DEFERRED, K.DELIVERED]


def _sendgrid_bounce(**changes: object) -> bytes:
    event = json.loads(fixture("sendgrid", "events.json"))[3]
    event.update(changes)
    return encode({key: value for key, value in event.items() if value is not None})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bounce_classification": "Mailbox Unavailable"}, C.HARD),
        (
            {
                "bounce_classification": "Mailbox Unavailable",
                "status": "5.2.2",
                "reason": "552 5.2.2 mailbox full",
            },
            C.SOFT,
        ),
        ({"bounce_classification": "Content"}, C.POLICY),
        ({"bounce_classification": "Reputation"}, C.POLICY),
        ({"bounce_classification": "Technical"}, C.SOFT),
        ({"bounce_classification": "Frequency or Volume Too High"}, C.SOFT),
        ({"bounce_classification": "Unclassified"}, C.HARD),  # type bounce, 5.0.0
        ({"bounce_classification": None, "status": "4.0.0"}, C.SOFT),
        ({"bounce_classification": None, "status": None, "reason": "mailbox gone"}, C.HARD),
        ({"bounce_classification": None, "type": "blocked"}, C.POLICY),
        (
            {
                "bounce_classification": None,
                "type": "blocked",
                "status": "4.7.0",
                "reason": "421 4.7.0 try again later",
            },
            C.SOFT,
        ),
    ],
)
def test_sendgrid_bounce_classes(changes: dict[str, object], expected: C) -> None:
    assert parse_one(sendgrid, _sendgrid_bounce(**changes)).bounce_class is expected


@pytest.mark.parametrize(
    "event", ["open", "click", "unsubscribe", "group_unsubscribe", "group_resubscribe"]
)
def test_sendgrid_engagement_events_are_refused(event: str) -> None:
    error = refusal(sendgrid, _sendgrid_bounce(event=event))
    assert error.reason == "unsupported-type"
    assert repr(event) in str(error)


def _sendgrid_without(key: str) -> bytes:
    event = json.loads(fixture("sendgrid", "events.json"))[2]
    del event[key]
    return encode(event)


# --- Mailgun --------------------------------------------------------------------------


def test_mailgun_accepted_sample_without_the_wrapper() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "accepted.json"))
    message_id = "20260203192638.000be97f99f8cea1@sample.mailgun.com"
    assert notification == Notification(
        provider="mailgun",
        kind=K.SENT,
        recipient="recipient@sample.mailgun.com",
        message_refs=(message_id,),  # user-variables is [] in this sample
        occurred_at=datetime.fromtimestamp(1770146798.372891, UTC),
        provider_event_id="CCXMjJ7nQi2N3BPigGOdgQ",
        provider_message_id=message_id,
    )


def test_mailgun_delivered() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "delivered.json"))
    message_id = "20130503182626.18666.16540@sandbox22aee81b13674403a5335202df94f7e7.mailgun.org"
    assert notification.kind is K.DELIVERED
    assert notification.recipient == "alice@example.com"
    assert notification.message_refs == ("msg-7f3a2c", message_id)
    assert notification.provider_message_id == message_id
    assert notification.provider_event_id == "CPgfbmQMTCKtHW6uIWtuVe"
    assert notification.occurred_at == utc(2018, 3, 19, 15, 11, 2, 908181)
    assert notification.diagnostic == "OK"


def test_mailgun_permanent_failure_is_a_hard_bounce() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "failed_permanent.json"))
    assert (notification.kind, notification.bounce_class) == (K.BOUNCED, C.HARD)
    assert notification.recipient == "invalid@example.com"
    assert notification.smtp_status == "5.1.1"  # found in the message: no enhanced-code
    assert notification.diagnostic is not None
    assert notification.diagnostic.startswith("5.1.1 The email account that you tried")
    assert notification.message_refs == (
        "msg-90d1e4",
        "20180812214658.1.0DF563D0B3597700@example.org",
    )


def test_mailgun_suppressed_address_is_a_failure_not_a_bounce() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "failed_permanent_suppress_bounce.json"))
    assert (notification.kind, notification.bounce_class) == (K.FAILED, None)
    assert notification.smtp_status is None  # enhanced-code is "" and 605 is Mailgun's own
    assert notification.diagnostic == "Not delivering to previously bounced address"
    assert notification.provider_event_id == "G9Bn5sl1TC6nu79C8C0bwg"


@pytest.mark.parametrize(
    ("reason", "code", "enhanced", "message", "kind", "expected"),
    [
        ("suppress-unsubscribe", 606, "", "", K.FAILED, None),
        ("suppress-complaint", 607, "", "", K.FAILED, None),
        ("old", 0, "", "Too old", K.FAILED, None),
        ("bounce", 550, "5.7.1", "5.7.1 blocked for spam", K.BOUNCED, C.POLICY),
        ("bounce", 552, "5.2.2", "mailbox full", K.BOUNCED, C.SOFT),
        ("generic", 554, None, "no enhanced code here", K.BOUNCED, C.HARD),
        ("generic", None, None, None, K.BOUNCED, C.HARD),  # nothing to go on: permanent
    ],
)
def test_mailgun_permanent_failures(
    reason: str,
    code: int | None,
    enhanced: str | None,
    message: str | None,
    kind: K,
    expected: C | None,
) -> None:
    body = document("mailgun", "failed_permanent_suppress_bounce.json")
    body["event-data"]["reason"] = reason
    body["event-data"]["delivery-status"].update(
        {"code": code, "enhanced-code": enhanced, "message": message}
    )
    notification = parse_one(mailgun, encode(body))
    assert (notification.kind, notification.bounce_class) == (kind, expected)


def test_mailgun_temporary_failure_is_a_soft_deferral() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "failed_temporary.json"))
    assert (notification.kind, notification.bounce_class) == (K.DEFERRED, C.SOFT)
    assert notification.smtp_status == "4.2.2"  # from enhanced-code
    assert notification.provider_event_id == "Fs7-5t81S2ispqxqDw2U4Q"


def test_mailgun_complained() -> None:
    notification = parse_one(mailgun, fixture("mailgun", "complained.json"))
    assert notification.kind is K.COMPLAINED
    assert notification.recipient == "alice@example.com"
    assert notification.occurred_at == utc(2018, 3, 16, 20, 45, 23, 501324)


def test_mailgun_rejected_is_a_failure() -> None:
    body = document("mailgun", "accepted.json")
    body["event"] = "rejected"
    body["reject"] = {"reason": "suppressed", "description": "Sending to this address is blocked"}
    notification = parse_one(mailgun, encode(body))
    assert notification.kind is K.FAILED
    assert notification.diagnostic == "Sending to this address is blocked"


@pytest.mark.parametrize("event", ["opened", "clicked", "unsubscribed"])
def test_mailgun_engagement_events_are_refused(event: str) -> None:
    body = document("mailgun", "opened.json")
    body["event-data"]["event"] = event
    error = refusal(mailgun, encode(body))
    assert error.reason == "unsupported-type"
    assert repr(event) in str(error)


def _mailgun_without(key: str) -> bytes:
    body = document("mailgun", "failed_temporary.json")  # no MESSAGE_ID_ARG in it
    del body["event-data"][key]
    return encode(body)


# --- Postmark -------------------------------------------------------------------------


def test_postmark_delivery() -> None:
    assert parse_one(postmark, fixture("postmark", "delivery.json")) == Notification(
        provider="postmark",
        kind=K.DELIVERED,
        recipient="john@example.com",
        message_refs=("msg-7f3a2c", "883953f4-6105-42a2-a16a-77a8eac79483"),
        occurred_at=utc(2014, 8, 1, 17, 28, 10, 273539),  # -04:00 brought to UTC
        provider_event_id=None,
        provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483",
        diagnostic="Test delivery webhook details",
    )


POSTMARK_EXPECTED = {
    # file: kind, recipient, class, smtp status, event id
    "bounce_hard.json": (K.BOUNCED, "john@example.com", C.HARD, None, "42"),
    "bounce_legacy.json": (K.BOUNCED, "john@example.com", C.HARD, None, "42"),
    "bounce_soft.json": (K.BOUNCED, "mary@example.com", C.SOFT, "4.2.2", "43"),
    "bounce_transient.json": (K.BOUNCED, "richard@example.com", C.SOFT, "4.4.2", "44"),
    "bounce_blocked.json": (K.BOUNCED, "jane@example.com", C.POLICY, "5.7.1", "45"),
    "spam_complaint.json": (K.COMPLAINED, "john@example.com", None, None, "42"),
}


@pytest.mark.parametrize(("name", "expected"), POSTMARK_EXPECTED.items())
def test_postmark_bounces_and_complaints(name: str, expected: tuple[Any, ...]) -> None:
    notification = parse_one(postmark, fixture("postmark", name))
    kind, recipient, bounce_class, smtp_status, event_id = expected
    assert notification.kind is kind
    assert notification.recipient == recipient
    assert notification.bounce_class is bounce_class
    assert notification.smtp_status == smtp_status
    assert notification.provider_event_id == event_id
    assert notification.diagnostic == json.loads(fixture("postmark", name))["Details"]


def test_postmark_bounce_refs_and_time() -> None:
    notification = parse_one(postmark, fixture("postmark", "bounce_hard.json"))
    assert notification.message_refs == ("msg-7f3a2c", "883953f4-6105-42a2-a16a-77a8eac79483")
    assert notification.occurred_at == utc(2019, 11, 5, 16, 33, 54, 907025)
    legacy = parse_one(postmark, fixture("postmark", "bounce_legacy.json"))
    assert legacy.occurred_at == utc(2014, 8, 1, 17, 28, 10, 273539)


@pytest.mark.parametrize(
    ("bounce_type", "kind", "expected"),
    [
        ("HardBounce", K.BOUNCED, C.HARD),
        ("BadEmailAddress", K.BOUNCED, C.HARD),
        ("ManuallyDeactivated", K.BOUNCED, C.HARD),
        ("Transient", K.BOUNCED, C.SOFT),
        ("SoftBounce", K.BOUNCED, C.SOFT),
        ("DnsError", K.BOUNCED, C.SOFT),
        ("SpamNotification", K.BOUNCED, C.POLICY),
        ("Blocked", K.BOUNCED, C.POLICY),
        ("DMARCPolicy", K.BOUNCED, C.POLICY),
        ("VirusNotification", K.BOUNCED, C.POLICY),
        ("ChallengeVerification", K.BOUNCED, C.POLICY),
        ("Unknown", K.BOUNCED, C.UNKNOWN),  # "Test bounce details" says nothing
        ("Unconfirmed", K.BOUNCED, C.UNKNOWN),
        ("SomethingNew", K.BOUNCED, C.UNKNOWN),
        ("SMTPApiError", K.FAILED, None),
        ("TemplateRenderingFailed", K.FAILED, None),
        ("SpamComplaint", K.COMPLAINED, None),
    ],
)
def test_postmark_bounce_types(bounce_type: str, kind: K, expected: C | None) -> None:
    body = document("postmark", "bounce_hard.json")
    body["Type"] = bounce_type
    notification = parse_one(postmark, encode(body))
    assert (notification.kind, notification.bounce_class) == (kind, expected)


def test_postmark_unknown_type_is_classified_from_details() -> None:
    body = document("postmark", "bounce_hard.json")
    body["Type"], body["Details"] = "Unknown", "smtp;550 5.1.1 <john@example.com>: no such user"
    notification = parse_one(postmark, encode(body))
    assert (notification.bounce_class, notification.smtp_status) == (C.HARD, "5.1.1")


def test_postmark_documents_every_bounce_type() -> None:
    # The bounce types of https://postmarkapp.com/developer/api/bounce-api#bounce-types
    documented = {
        "HardBounce", "Transient", "Unsubscribe", "Subscribe", "AutoResponder",
        "AddressChange", "DnsError", "SpamNotification", "OpenRelayTest", "Unknown",
        "SoftBounce", "VirusNotification", "ChallengeVerification", "BadEmailAddress",
        "SpamComplaint", "ManuallyDeactivated", "Unconfirmed", "Blocked", "SMTPApiError",
        "InboundError", "DMARCPolicy", "TemplateRenderingFailed",
    }  # fmt: skip
    mapped = set(postmark.BOUNCE_TYPES) | postmark.NOT_DELIVERY_FAILURES | {"SpamComplaint"}
    assert mapped == documented


@pytest.mark.parametrize(
    "bounce_type",
    ["AutoResponder", "AddressChange", "Subscribe", "Unsubscribe", "OpenRelayTest", "InboundError"],
)
def test_postmark_bounce_types_that_are_not_failures_are_refused(bounce_type: str) -> None:
    body = document("postmark", "bounce_hard.json")
    body["Type"] = bounce_type
    error = refusal(postmark, encode(body))
    assert error.reason == "unsupported-type"
    assert repr(bounce_type) in str(error)


@pytest.mark.parametrize("record_type", ["Open", "Click", "SubscriptionChange", "Inbound"])
def test_postmark_other_records_are_refused(record_type: str) -> None:
    body = document("postmark", "delivery.json")
    body["RecordType"] = record_type
    error = refusal(postmark, encode(body))
    assert error.reason == "unsupported-type"
    assert repr(record_type) in str(error)


def _postmark_without(name: str, key: str) -> bytes:
    body = document("postmark", name)
    del body[key]
    return encode(body)


# --- Malformed bodies, every provider -------------------------------------------------

MALFORMED = [
    # parser, body, reason, text the message must contain
    (ses, b"<html>not json</html>", "unparseable", "not JSON"),
    (ses, b"[1, 2]", "unparseable", "not a JSON object"),
    (ses, _ses_without_type(), "no-type", "'notificationType'"),
    (ses, _ses_without_recipients(), "no-recipient", "'bounce.bouncedRecipients'"),
    (ses, encode({"notificationType": "Bounce"}), "unparseable", "'mail'"),
    (ses, _ses_sns_with_text_message(), "unparseable", "'Message'"),
    (ses, _ses_with_bad_timestamp(), "unparseable", "'delivery.timestamp'"),
    (sendgrid, b"not json", "unparseable", "not JSON"),
    (sendgrid, b'"a string"', "unparseable", "not a JSON object"),
    (sendgrid, _sendgrid_without("email"), "no-recipient", "'email'"),
    (sendgrid, _sendgrid_without("event"), "no-type", "'event'"),
    (sendgrid, _sendgrid_bounce(timestamp="soon"), "unparseable", "'timestamp'"),
    (
        sendgrid,
        _sendgrid_bounce(**{"smtp-id": None, "sg_message_id": None, MESSAGE_ID_ARG: None}),
        "no-message-ref",
        "'sg_message_id'",
    ),
    (mailgun, b"\xff\xfe", "unparseable", "not JSON"),
    (mailgun, encode({"signature": {}}), "unparseable", "'event-data'"),
    (mailgun, _mailgun_without("recipient"), "no-recipient", "'recipient'"),
    (mailgun, _mailgun_without("event"), "no-type", "'event'"),
    (mailgun, _mailgun_without("message"), "no-message-ref", "'message.headers.message-id'"),
    (postmark, b"", "unparseable", "not JSON"),
    (postmark, _postmark_without("delivery.json", "Recipient"), "no-recipient", "'Recipient'"),
    (postmark, _postmark_without("bounce_hard.json", "Email"), "no-recipient", "'Email'"),
    (postmark, _postmark_without("delivery.json", "RecordType"), "no-type", "'RecordType'"),
    (postmark, _postmark_without("bounce_soft.json", "MessageID"), "no-message-ref", "'MessageID'"),
]


@pytest.mark.parametrize(
    ("module", "body", "reason", "names"),
    MALFORMED,
    ids=[
        f"{m.__name__.rsplit('.', 1)[-1]}-{reason}-{i}"
        for i, (m, _, reason, _) in enumerate(MALFORMED)
    ],
)
def test_malformed_bodies_are_refused_naming_the_problem(
    module: ModuleType, body: bytes, reason: str, names: str
) -> None:
    error = refusal(module, body)
    assert error.reason == reason
    assert names in str(error)


def test_sendgrid_split_refuses_a_body_that_is_not_json() -> None:
    with pytest.raises(NotificationError, match="not JSON") as caught:
        sendgrid.split(b"event=processed&email=a@b")
    assert caught.value.reason == "unparseable"


@pytest.mark.parametrize("module", [ses, mailgun, postmark])
def test_single_notification_providers_split_into_the_body_itself(module: ModuleType) -> None:
    assert module.split(b'{"any": "body"}') == [b'{"any": "body"}']
