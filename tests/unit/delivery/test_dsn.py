"""Raw bounce emails (processors/delivery/providers/dsn.py), against a corpus of real
bounces from many mail servers (tests/fixtures/bounces, see its README) and modern
ones constructed from documented formats."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.delivery.notification import (
    MESSAGE_ID_HEADER,
    Notification,
    NotificationError,
    NotificationKind,
)
from processors.delivery.providers import detectors, dsn
from schemas.model import BounceClass

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bounces"

BOUNCED = NotificationKind.BOUNCED
DEFERRED = NotificationKind.DEFERRED
HARD, SOFT, POLICY = BounceClass.HARD, BounceClass.SOFT, BounceClass.POLICY
UNKNOWN = BounceClass.UNKNOWN


def _raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _message(name: str) -> Message:
    return email.message_from_bytes(_raw(name), policy=email.policy.compat32)


class Expected(NamedTuple):
    recipients: tuple[str, ...]  # flufl.bounce's expected addresses, lower-cased
    kind: NotificationKind
    # One class for every recipient, or one per recipient (sorted like `recipients`).
    bounce_class: BounceClass | tuple[BounceClass, ...]
    smtp_status: str | None

    def class_of(self, recipient: str) -> BounceClass:
        if isinstance(self.bounce_class, BounceClass):
            return self.bounce_class
        return self.bounce_class[self.recipients.index(recipient)]


# Recipients: upstream's tests/test_detectors.py (simple_42: upstream lists it only
# as a negative case of its SimpleMatch detector; its DSN names the Gmail address).
# Kind, class and status: what the rules in docs/delivery.md ("Classifying a bounce")
# derive (see the notes). A failure the report gives no reason for is UNKNOWN: a
# detector finding a permanent failure is not evidence that the address is bad.
CORPUS: dict[str, Expected | str] = {
    # "... not accepting mail from <the sender>": the recipient blocks the sender.
    "aol_01.txt": Expected(("screenname@aol.com",), BOUNCED, POLICY, None),
    "bounce_01.txt": "no-recipient",  # Jetmail names a bare 'dylan'
    # RFC 5321's generic 550 text, "mailbox unavailable": no cause named.
    "bounce_02.txt": Expected(("userx@example.com",), BOUNCED, UNKNOWN, None),
    "bounce_03.txt": Expected(("userx@example.uk",), BOUNCED, UNKNOWN, None),  # not collected
    "caiwireless_01.txt": Expected(("userx@example.com",), BOUNCED, UNKNOWN, None),
    # 'Status: 5.0.0' with 'recipient reached disk quota': mailbox full is transient.
    "dsn_01.txt": Expected(("userx@example.com",), BOUNCED, SOFT, "5.0.0"),
    # Failed after the queue lifetime (4.4.7): given up, but the address is fine.
    "dsn_02.txt": Expected(("zzzzz@example.uk",), BOUNCED, SOFT, "4.4.7"),
    # 'Status: 553 Exceeded maximum inbound message size': a reply, not a status.
    "dsn_03.txt": Expected(("userx@example.be",), BOUNCED, SOFT, None),  # the message's size
    "dsn_05.txt": Expected(("userx@example.cz",), DEFERRED, SOFT, "4.4.1"),
    "dsn_06.txt": Expected(("userx@example.com",), DEFERRED, SOFT, "4.4.0"),
    # 5.0.0, and the report says why: "5.7.1 Unable to relay".
    "dsn_09.txt": Expected(("userx@example.com",), BOUNCED, POLICY, "5.0.0"),
    "dsn_10.txt": Expected(("anne.person@dom.ain",), BOUNCED, HARD, "5.0.0"),
    "dsn_11.txt": Expected(("joem@example.com",), BOUNCED, HARD, "5.1.1"),
    "dsn_12.txt": Expected(("userx@example.jp",), BOUNCED, HARD, "5.1.1"),
    "dsn_13.txt": Expected(("userx@example.com",), BOUNCED, HARD, "5.1.1"),
    "dsn_14.txt": Expected(("userx@example.com.dk",), BOUNCED, HARD, "5.1.1"),
    "dsn_15.txt": Expected(("userx@example.com",), BOUNCED, HARD, "5.1.1"),
    "dsn_17.txt": Expected(("userx@example.fi",), DEFERRED, SOFT, "4.3.0"),
    "dsn_18.txt": Expected(("email@replaced.net",), BOUNCED, HARD, "5.0.0"),
    "dumbass_01.txt": "no-recipient",  # InterScan: 'could not be delivered', to whom not said
    "exim_01.txt": Expected(("userx@its.example.nl",), BOUNCED, HARD, "5.1.1"),
    "groupwise_01.txt": Expected(("userx@example.edu",), BOUNCED, HARD, None),
    # "The recipient name is not recognized" (Exchange 5.5, in the HTML part).
    "groupwise_02.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "groupwise_03.txt": "not-a-bounce",  # a person's reply
    # The reason is in the paragraph after the address: over disk quota.
    "hotpop_01.txt": Expected(("userx@example.com",), BOUNCED, SOFT, None),
    "llnl_01.txt": Expected(("user1@example.gov",), BOUNCED, UNKNOWN, None),
    "microsoft_01.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "microsoft_02.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "microsoft_03.txt": Expected(("userx@example.com",), BOUNCED, UNKNOWN, None),
    "microsoft_04.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "netscape_01.txt": Expected(("aaaaa@corel.com", "bbbbb@corel.com"), BOUNCED, UNKNOWN, None),
    "newmailru_01.txt": Expected(("zzzzz@newmail.ru",), BOUNCED, SOFT, None),  # quota
    "postfix_01.txt": Expected(("xxxxx@local.ie",), BOUNCED, HARD, "5.1.1"),
    "postfix_02.txt": Expected(("yyyyy@digicool.com",), BOUNCED, HARD, None),
    "postfix_03.txt": Expected(("ttttt@ggggg.com",), BOUNCED, SOFT, None),  # a filter command died
    "postfix_04.txt": Expected(("userx@mail1.example.com",), BOUNCED, SOFT, None),  # quota
    "postfix_05.txt": Expected(("userx@example.net",), BOUNCED, UNKNOWN, None),
    "qmail_01.txt": Expected(("userx@example.de",), BOUNCED, UNKNOWN, None),  # no reason given
    "qmail_02.txt": Expected(("userx@example.com",), BOUNCED, SOFT, None),  # folder full
    "qmail_03.txt": Expected(("userx@example.jp",), BOUNCED, HARD, "5.1.1"),
    "qmail_05.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "qmail_06.txt": Expected(("ntl@xxx.com",), BOUNCED, SOFT, None),  # disk quota
    "qmail_07.txt": Expected(("user@example.net",), BOUNCED, SOFT, None),  # folder full
    "qmail_08.txt": "auto-reply",  # Precedence: auto_reply (ignored, not dead-lettered)
    # "554 Too many hops": a forwarding loop, not the address.
    "sendmail_01.txt": Expected(("zzzzz@nfg.nl", "zzzzz@shaft.coal.nl"), BOUNCED, SOFT, None),
    "simple_01.txt": Expected(("bbbsss@example.com",), BOUNCED, SOFT, None),  # mailbox quota
    "simple_03.txt": Expected(("userx@example.za",), DEFERRED, SOFT, None),
    "simple_04.txt": Expected(("userx@example.com",), BOUNCED, HARD, None),
    "simple_07.txt": Expected(("userx@example.net",), BOUNCED, SOFT, None),  # mailbox full
    "simple_09.txt": Expected(("userx@example.de",), BOUNCED, SOFT, None),  # quota
    "simple_13.txt": Expected(("userx@example.fr",), BOUNCED, UNKNOWN, None),  # in French
    "simple_14.txt": Expected(("userx@example.com", "usery@example.com"), BOUNCED, SOFT, None),
    "simple_15.txt": Expected(("userx@example.be",), BOUNCED, HARD, "5.1.1"),
    "simple_19.txt": Expected(("userx@example.com.ar",), BOUNCED, HARD, "5.1.1"),
    "simple_21.txt": Expected(("userx@example.com",), DEFERRED, SOFT, None),
    "simple_22.txt": Expected(("user@example.org",), DEFERRED, SOFT, None),
    "simple_34.txt": Expected(("roland@example.com",), BOUNCED, HARD, "5.1.1"),
    "simple_40.txt": Expected(("user@example.com",), DEFERRED, SOFT, None),
    # Exim's generic 'Status: 5.0.0' over Gmail's '550 5.7.1 ... unsolicited mail'.
    "simple_42.txt": Expected(("david...@gmail.com",), BOUNCED, POLICY, "5.7.1"),
    "simple_45.txt": Expected(("subscriber@earthlink.net",), BOUNCED, SOFT, None),  # quota
    "sina_01.txt": Expected(("userx@sina.com", "usery@sina.com"), BOUNCED, UNKNOWN, None),
    "smtp32_01.txt": Expected(("userx@example.ph",), BOUNCED, SOFT, None),  # 20 attempts
    "smtp32_04.txt": Expected(
        ("after_another@example.net", "one_bad_address@example.net"), BOUNCED, HARD, "5.3.0"
    ),
    "smtp32_06.txt": Expected(("absolute_garbage_addr@example.net",), BOUNCED, HARD, "5.3.0"),
    # qmail's '(#4.4.1) I'm not going to try again': given up on a transient failure.
    "yahoo_01.txt": Expected(("userx@example.com",), BOUNCED, SOFT, "4.4.1"),
    "yahoo_04.txt": Expected(("userx@example.es", "usery@example.uk"), BOUNCED, SOFT, None),
    # "This account has been disabled or discontinued": it may come back.
    "yahoo_06.txt": Expected(
        ("usera@example.com", "userx@example.com", "usery@example.com", "userz@example.com"),
        BOUNCED,
        SOFT,
        None,
    ),
    "yahoo_10.txt": Expected(
        ("userx@example.com", "usery@example.com", "userz@example.com"),
        BOUNCED,
        (HARD, SOFT, HARD),  # usery's account is disabled, the others unknown
        None,
    ),
    "yahoo_11.txt": Expected(("bad_user@aol.com",), BOUNCED, HARD, "5.1.1"),
    "yahoo_12.txt": Expected(("user@yahoo.com",), BOUNCED, UNKNOWN, None),  # HTML only
    "yahoo_13.txt": Expected(("bogus-address@example.net",), BOUNCED, HARD, "5.1.1"),
    "yale_01.txt": Expected(("userx@cs.yale.edu", "userx@yale.edu"), BOUNCED, UNKNOWN, None),
}

# Corpus files whose returned original (or the bounce's threading) names the message;
# upstream replaced the others' originals with 'Message removed'.
CORPUS_REFS = {
    "bounce_02.txt": ("mailman.0.1037840296.16399.macarthur1975@example.org",),
    # A returned digest: both quoted Message-IDs, in order.
    "bounce_03.txt": (
        "20021027170004.27298.9909.Mailman@mail.python.org",
        "15802.52753.139705.927733@gargle.gargle.HOWL",
    ),
    "dsn_01.txt": ("F1218V8zDv60gxapzha000001ae@hotmail.com",),
    "dsn_02.txt": ("LNBBLJKPBEHFEDALKOLCMEEDIFAA.tim.one@home.com",),
    "dsn_03.txt": ("31575A892FF6D1118F5800600846864D5B17D1@intrepid",),
    "dsn_05.txt": ("pfchbtkf3j0p7prf0sp45vi21fro3bs7ad@4ax.com",),
    "dsn_06.txt": ("j4d77kvs79.fsf@informatik.hu-berlin.de",),
    "dsn_09.txt": ("3BE4F1EC.8306C281@nleaudio.com",),
    "dsn_10.txt": ("200210211625.12753.b.a.dude@example.com",),
    "dsn_11.txt": ("mailman.0.1035637201.19036.mailman-developers@python.org",),
    "dsn_12.txt": ("mailman.6301.1139723231.1568.wed_ride@grizz.org",),  # References
    "dsn_13.txt": ("mailman.8262.1143060203.1568.wed_ride@grizz.org",),
    "dsn_14.txt": ("mailman.2721.1143482819.1567.gpc-talk@grizz.org",),
    "dsn_15.txt": ("mailman.4360.1149475419.1567.gpc-talk@grizz.org",),
    "dsn_17.txt": ("mailman.150418.1209869464.31038.pray4-team@strategicnetwork.org",),
    "exim_01.txt": ("19990920022322.A19735@stereo.rotzorg.org",),  # quoted inline
    "groupwise_01.txt": ("20010720085308.H17468@magic.example.org",),
    "postfix_02.txt": ("14915.64162.965657.699956@anthem.concentric.net",),
    "simple_45.txt": ("message-id@example.com",),  # the bounce's In-Reply-To
    "yahoo_13.txt": ("130907fb-848c-d154-8e59-ed1e08319fcf@yahoo.com",),
}


def test_corpus_covers_the_fixture_directory() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.txt") if not p.name.startswith("modern_")}
    assert on_disk == set(CORPUS)
    assert len(on_disk) >= 30
    families = {name.rsplit("_", 1)[0] for name in on_disk}
    assert len(families) >= 12


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_recipients_and_classes(name: str) -> None:
    expected = CORPUS[name]
    if isinstance(expected, str):
        with pytest.raises(NotificationError) as caught:
            dsn.read_bounce(_message(name))
        assert caught.value.reason == expected
        return
    outcomes = dsn.read_bounce(_message(name))
    assert tuple(sorted(o.recipient for o in outcomes)) == expected.recipients
    for outcome in outcomes:
        assert outcome.kind is expected.kind
        assert outcome.bounce_class is expected.class_of(outcome.recipient)
        assert outcome.smtp_status == expected.smtp_status
        assert outcome.diagnostic is None or outcome.diagnostic.strip() == outcome.diagnostic


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_parse_agrees_with_read_bounce(name: str) -> None:
    expected = CORPUS[name]
    if isinstance(expected, str):
        with pytest.raises(NotificationError) as caught:
            dsn.parse(_raw(name))
        assert caught.value.reason == expected
        return
    notifications = dsn.parse(_raw(name))
    assert tuple(sorted(n.recipient for n in notifications)) == expected.recipients
    for n in notifications:
        assert n.provider == "dsn"
        # No ref at all when the original is not named: routed by recipient.
        assert n.message_refs == CORPUS_REFS.get(name, ())
        assert n.provider_event_id not in n.message_refs
        assert n.provider_message_id is None


# -- modern bounces -------------------------------------------------------------------


def _only(name: str) -> Notification:
    [notification] = dsn.parse(_raw(name))
    return notification


def test_gmail_address_not_found() -> None:
    n = _only("modern_gmail_nosuchuser.txt")
    assert n.kind is BOUNCED
    assert n.recipient == "no.such.user@gmail.com"
    assert n.bounce_class is HARD
    assert n.smtp_status == "5.1.1"
    assert n.diagnostic is not None
    assert n.diagnostic.startswith("550-5.1.1 The email account that you tried to reach")
    # The multi-line reply's repeated '550-5.1.1' prefixes are framing, dropped.
    assert n.diagnostic.count("5.1.1") == 1
    assert "smtp;" not in n.diagnostic
    assert n.message_refs == (
        "msg_01HRX7Q2M4ZC8B0W3N5V6K9PDA",
        "ct.01HRX7Q2M4ZC8B0W3N5V6K9PDA@acme-help.example",
    )
    # Last-Attempt-Date (01:47:31 PDT) over the bounce's Date (01:47:32).
    assert n.occurred_at == datetime(2024, 3, 12, 8, 47, 31, tzinfo=UTC)
    assert n.provider_event_id == "65f01714.050a0220.9f1d1.7b42.GMR@mx.google.com"
    assert n.provider_message_id is None


def test_microsoft_365_recipient_not_found() -> None:
    n = _only("modern_m365_recipientnotfound.txt")
    assert n.kind is BOUNCED
    assert n.recipient == "j.doe@contoso.com"
    assert n.bounce_class is HARD
    assert n.smtp_status == "5.1.10"
    assert n.diagnostic == (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient j.doe@contoso.com not found "
        "by SMTP address lookup"
    )
    assert n.message_refs == (
        "msg_01HRZB3T8W6F2QJ1V7M0C4X9EK",
        "ct.01HRZB3T8W6F2QJ1V7M0C4X9EK@acme-help.example",
    )
    assert n.occurred_at == datetime(2024, 3, 13, 9, 12, 5, tzinfo=UTC)
    assert n.provider_event_id == (
        "6b0c7c3e-91d4-4f0e-a1a6-2d4c3b1f7e55@DB9PR01MB7345.eurprd01.prod.exchangelabs.com"
    )


def test_yahoo_policy_refusal_through_exim() -> None:
    n = _only("modern_exim_yahoo_policy.txt")
    assert n.kind is BOUNCED
    assert n.recipient == "customer.one@yahoo.com"
    assert n.bounce_class is POLICY
    # Exim's generic 'Status: 5.0.0' gives way to Yahoo's precise code.
    assert n.smtp_status == "5.7.9"
    assert n.diagnostic is not None
    assert "Message not accepted for policy reasons" in n.diagnostic
    assert n.message_refs == ("ct.01HS0K9D2C7B5N8R4T6W1Y3ZQF@acme-help.example",)
    # No DSN dates in Exim's report: the bounce's Date.
    assert n.occurred_at == datetime(2024, 3, 13, 12, 40, 3, tzinfo=UTC)
    assert n.provider_event_id == "E1rkQ2x-000Abc-7Y@relay1.acme-help.example"


def test_postfix_mailbox_full_delay_warning() -> None:
    n = _only("modern_postfix_mailbox_full_delayed.txt")
    assert n.kind is DEFERRED
    assert n.recipient == "full.box@example.org"
    assert n.bounce_class is SOFT
    assert n.smtp_status == "4.2.2"
    assert n.diagnostic == (
        "452 4.2.2 <full.box@example.org>: Recipient address rejected: Mailbox full"
    )
    assert n.message_refs == (
        "msg_01HRZ1F6G3H9J2K5M8N0P4Q7RS",
        "ct.01HRZ1F6G3H9J2K5M8N0P4Q7RS@acme-help.example",
    )
    # The bounce's Date (13:00:34 CET), not the original's Arrival-Date four hours before.
    assert n.occurred_at == datetime(2024, 3, 13, 12, 0, 34, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("modern_*.txt")))
def test_crlf_line_endings_read_the_same(name: str) -> None:
    lf = dsn.parse(_raw(name))
    crlf = dsn.parse(_raw(name).replace(b"\n", b"\r\n"))
    assert crlf == lf


# -- specific rules, on the corpus ------------------------------------------------------


def test_last_attempt_date_is_the_time_of_the_failure() -> None:
    [n] = dsn.parse(_raw("dsn_14.txt"))
    assert n.occurred_at == datetime(2006, 3, 27, 18, 6, 53, tzinfo=UTC)


def test_a_forwarded_dsn_is_read_inside_its_wrapper() -> None:
    # dsn_15: a filter wrapped the DSN in a message/rfc822; the status and the
    # original's Message-ID are in the inner report.
    [outcome] = dsn.read_bounce(_message("dsn_15.txt"))
    assert outcome.smtp_status == "5.1.1"
    assert dsn.message_refs(_message("dsn_15.txt")) == (
        "mailman.4360.1149475419.1567.gpc-talk@grizz.org",
    )


def test_status_holding_a_reply_becomes_the_diagnostic() -> None:
    [outcome] = dsn.read_bounce(_message("dsn_03.txt"))
    assert outcome.diagnostic == "553 Exceeded maximum inbound message size"


def test_heuristic_diagnostic_comes_from_the_address_paragraph() -> None:
    [outcome] = dsn.read_bounce(_message("postfix_01.txt"))
    assert outcome.diagnostic == (
        "<xxxxx@local.ie>: host mail.local.ie[195.7.46.14] said: 550 5.1.1 "
        "<xxxxx@local.ie>... User unknown"
    )
    [outcome] = dsn.read_bounce(_message("exim_01.txt"))
    assert outcome.diagnostic is not None
    assert "553 5.1.1 unknown or illegal user" in outcome.diagnostic
    # Nothing below the returned-message marker (the quoted original's headers).
    assert "Return-path" not in outcome.diagnostic


# -- constructed edge cases -------------------------------------------------------------


def _report(*blocks: str, returned: str = "Message-ID: <orig-1@acme-help.example>\n") -> bytes:
    status = "\n".join(blocks)
    return (
        "From: MAILER-DAEMON@mx.example.net\n"
        "Message-ID: <bounce-1@mx.example.net>\n"
        "Date: Fri, 01 Mar 2024 10:00:00 -0000\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n"
        "\n"
        "--BB\nContent-Type: text/plain\n\nDelivery report.\n"
        "--BB\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        f"{status}\n"
        "--BB\nContent-Type: text/rfc822-headers\n\n"
        f"{returned}\n"
        "--BB--\n"
    ).encode()


def test_success_actions_are_deliveries() -> None:
    body = _report(
        "Final-Recipient: rfc822; a@example.org\nAction: delivered\nStatus: 2.0.0\n",
        "Final-Recipient: rfc822; b@example.org\nAction: relayed\nStatus: 2.0.0\n",
        "Final-Recipient: rfc822; c@example.org\nAction: expanded\nStatus: 2.0.0\n",
    )
    notifications = dsn.parse(body)
    assert [(n.recipient, n.kind, n.bounce_class) for n in notifications] == [
        ("a@example.org", NotificationKind.DELIVERED, None),
        ("b@example.org", NotificationKind.DELIVERED, None),
        ("c@example.org", NotificationKind.DELIVERED, None),
    ]
    # '-0000' is UTC of unknown origin: still an aware UTC time.
    assert notifications[0].occurred_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_original_recipient_wins_and_missing_action_follows_the_status() -> None:
    body = _report(
        "Original-Recipient: rfc822;Jo <JO@Example.org>\n"
        "Final-Recipient: rfc822;jo.forwarded@elsewhere.example\nStatus: 5.1.1\n",
        "Final-Recipient: rfc822; late@example.org\nStatus: 4.4.1\n",
    )
    notifications = dsn.parse(body)
    assert [(n.recipient, n.kind, n.bounce_class, n.smtp_status) for n in notifications] == [
        ("jo@example.org", BOUNCED, HARD, "5.1.1"),
        ("late@example.org", DEFERRED, SOFT, "4.4.1"),
    ]


def test_status_classes() -> None:
    body = _report(
        "Final-Recipient: rfc822; spam@example.org\nAction: failed\nStatus: 5.7.1\n"
        "Diagnostic-Code: smtp; 550 5.7.1 Rejected by policy\n",
        "Final-Recipient: rfc822; full@example.org\nAction: failed\nStatus: 5.2.2\n"
        "Diagnostic-Code: X-Postfix; mailbox full\n",
        "Final-Recipient: rfc822; shady@example.org\nAction: failed\nStatus: 5.0.0\n"
        "Diagnostic-Code: smtp; 554 listed on a blocklist\n",
        "Final-Recipient: rfc822; odd@example.org\nAction: error\nStatus: 5.1.2\n",
    )
    notifications = dsn.parse(body)
    assert [(n.recipient, n.bounce_class, n.diagnostic) for n in notifications] == [
        ("spam@example.org", POLICY, "550 5.7.1 Rejected by policy"),
        ("full@example.org", SOFT, "mailbox full"),
        ("shady@example.org", POLICY, "554 listed on a blocklist"),
        ("odd@example.org", HARD, None),
    ]


def test_stamp_comes_first_and_the_bounce_own_id_is_never_a_ref() -> None:
    body = _report(
        "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n",
        returned=(
            "Message-ID: <orig-2@acme-help.example>\n"
            f"{MESSAGE_ID_HEADER}: msg_42\n"
            "References: <bounce-1@mx.example.net>\n"
        ),
    )
    [n] = dsn.parse(body)
    assert n.message_refs == ("msg_42", "orig-2@acme-help.example")
    assert n.provider_event_id == "bounce-1@mx.example.net"


def test_message_id_lines_in_a_plain_text_bounce() -> None:
    body = (
        b"From: MAILER-DAEMON@mx.example.net\n"
        b"Subject: failure notice\n"
        b"Message-ID: <bounce-9@mx.example.net>\n"
        b"\n"
        b"Hi. This is the qmail-send program at mx.example.net.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        b"\n"
        b"<gone@example.org>:\n"
        b"Sorry, no mailbox here by that name. (#5.1.1)\n"
        b"\n"
        b"--- Below this line is a copy of the message.\n"
        b"\n"
        b"To: gone@example.org\n"
        b"Message-ID:\n <orig-3@acme-help.example>\n"
        b"Subject: hello\n"
    )
    [n] = dsn.parse(body)
    assert (n.recipient, n.kind, n.bounce_class, n.smtp_status) == (
        "gone@example.org",
        BOUNCED,
        HARD,
        "5.1.1",
    )
    assert n.diagnostic == "<gone@example.org>: Sorry, no mailbox here by that name. (#5.1.1)"
    assert n.message_refs == ("orig-3@acme-help.example",)


def test_in_reply_to_only_when_nothing_else_names_the_original() -> None:
    body = _report(
        "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n",
        returned="Subject: no id here\n",
    ).replace(
        b"Message-ID: <bounce-1@mx.example.net>\n",
        b"Message-ID: <bounce-1@mx.example.net>\n"
        b"In-Reply-To: <orig-4@acme-help.example>\n"
        b"References: <older@acme-help.example> <orig-4@acme-help.example>\n",
    )
    [n] = dsn.parse(body)
    assert n.message_refs == ("orig-4@acme-help.example", "older@acme-help.example")


def test_global_delivery_status_with_utf8_recipient() -> None:
    body = (
        "From: MAILER-DAEMON@mx.example.net\n"
        "Content-Type: multipart/report; report-type=global-delivery-status; boundary=BB\n"
        "\n"
        "--BB\nContent-Type: message/global-delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: utf-8; jürgen@bücher.example\nAction: failed\nStatus: 5.1.1\n"
        "\n--BB\nContent-Type: message/global-headers\n\n"
        "Message-ID: <orig-5@acme-help.example>\n"
        "\n--BB--\n"
    ).encode()
    [n] = dsn.parse(body)
    assert n.recipient == "jürgen@bücher.example"
    assert n.message_refs == ("orig-5@acme-help.example",)


def test_split_is_one_unit() -> None:
    assert dsn.split(b"anything") == [b"anything"]


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not-a-bounce"),
        (b"From: jo@example.org\nSubject: thanks!\n\nAll sorted, thank you.\n", "not-a-bounce"),
        (b"Return-Path: <>\nSubject: Mail Error\n\nSomething went wrong.\n", "no-recipient"),
        (
            b"From: postmaster@mx.example.net\nSubject: Undeliverable\n\nNo luck.\n",
            "no-recipient",
        ),
    ],
)
def test_error_reasons(body: bytes, reason: str) -> None:
    with pytest.raises(NotificationError) as caught:
        dsn.parse(body)
    assert caught.value.reason == reason


def test_a_report_without_recipient_blocks_names_no_recipient() -> None:
    body = _report("Final-Recipient: LOCAL;nobody\nAction: failed\nStatus: 5.1.1\n")
    with pytest.raises(NotificationError) as caught:
        dsn.parse(body)
    assert caught.value.reason == "no-recipient"


def test_a_bounce_that_names_no_original_has_no_refs() -> None:
    [n] = dsn.parse(_raw("postfix_01.txt"))
    assert n.message_refs == ()  # routed by recipient (processors/delivery/by_recipient.py)
    assert (n.recipient, n.kind) == ("xxxxx@local.ie", BOUNCED)


def test_a_bounce_whose_only_id_is_its_own_is_not_refused_nor_routed_by_it() -> None:
    # The returned headers (and the threading) repeat the bounce's own Message-ID:
    # that names the bounce, never the original.
    body = _report(
        "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n",
        returned="Message-ID: <bounce-1@mx.example.net>\n",
    ).replace(b"Date:", b"In-Reply-To: <bounce-1@mx.example.net>\nDate:", 1)
    [n] = dsn.parse(body)
    assert n.message_refs == ()
    assert n.provider_event_id == "bounce-1@mx.example.net"
    assert (n.recipient, n.smtp_status) == ("a@example.org", "5.1.1")


def test_a_detector_crash_is_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(msg: Message) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(detectors.flufl.bounce, "all_failures", explode)
    with pytest.raises(NotificationError) as caught:
        dsn.parse(_raw("qmail_01.txt"))
    assert caught.value.reason == "unparseable"


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        # A raw 8-bit display name: compat32 gives the detectors a Header, not a str,
        # and Sina's detector (which runs before qmail's and Postfix's) called .lower().
        (
            "qmail_01.txt",
            b"From: MAILER-DAEMON@gate0.n-h.net",
            b"From: \xd0\xc5\xcf\xa2 <MAILER-DAEMON@gate0.n-h.net>",
        ),
        (
            "postfix_01.txt",
            b"From: MAILER-DAEMON@python.org (Mail Delivery System)",
            b"From: MAILER-DAEMON@python.org (Syst\xe8me de messagerie)",
        ),
        ("qmail_01.txt", b"Subject: failure notice", b"Subject: \xc9chec de remise"),
        ("qmail_01.txt", b"From: MAILER-DAEMON@gate0.n-h.net\n", b""),  # no From at all
    ],
)
def test_detectors_survive_raw_8bit_headers_and_a_missing_from(
    name: str, old: bytes, new: bytes
) -> None:
    raw = _raw(name)
    assert old in raw
    mangled = email.message_from_bytes(raw.replace(old, new), policy=email.policy.compat32)
    outcomes = dsn.read_bounce(mangled)
    expected = CORPUS[name]
    assert isinstance(expected, Expected)
    assert tuple(sorted(o.recipient for o in outcomes)) == expected.recipients


# -- robustness -----------------------------------------------------------------------


def _check(body: bytes) -> None:
    """parse either gives well-formed notifications or raises NotificationError."""
    try:
        notifications = dsn.parse(body)
    except NotificationError as exc:
        # unknown-message is gone (routed by recipient); NotificationIgnored is a
        # NotificationError too (auto-reply, not-spam).
        assert exc.reason in {
            "not-a-bounce",
            "no-recipient",
            "unparseable",
            "auto-reply",
            "not-spam",
        }
        return
    assert notifications
    for n in notifications:
        assert n.provider == "dsn"
        assert "@" in n.recipient or (n.kind is NotificationKind.COMPLAINED and not n.recipient)
        assert n.recipient == n.recipient.lower()
        assert n.provider_event_id is None or n.provider_event_id not in n.message_refs
        assert all(ref and ref.strip() == ref for ref in n.message_refs)
        assert n.kind in {
            BOUNCED,
            DEFERRED,
            NotificationKind.DELIVERED,
            NotificationKind.COMPLAINED,
        }
        assert (n.bounce_class is None) == (n.kind not in {BOUNCED, DEFERRED})
        assert n.occurred_at is None or n.occurred_at.utcoffset() is not None
        for text in (n.recipient, n.diagnostic or "", n.smtp_status or "", *n.message_refs):
            text.encode("utf-8")  # no surrogates from undecodable bytes


_FRAGMENTS = st.sampled_from(
    [
        "",
        "--BB",
        "--BB--",
        "Content-Type: message/delivery-status",
        "Content-Type: message/global-delivery-status",
        "Content-Type: text/rfc822-headers",
        "Content-Type: message/rfc822",
        "Content-Transfer-Encoding: base64",
        "Final-Recipient: rfc822; a@example.org",
        "Original-Recipient: rfc822;<B@Example.org>",
        "Final-Recipient: utf-8; \u00fc@example.org",
        "Action: failed",
        "Action: delayed",
        "Action: delivered",
        "Status: 5.1.1",
        "Status: 4.2.2",
        "Status: 553 nope",
        "Diagnostic-Code: smtp; 550-5.1.1 no such user",
        "Last-Attempt-Date: Tue, 12 Mar 2024 01:47:31 -0700",
        "Arrival-Date: not a date",
        "Message-ID: <orig@acme-help.example>",
        f"{MESSAGE_ID_HEADER}: msg_1",
        "<a@example.org>:",
        "550 5.1.1 <a@example.org>... User unknown",
        "--- Below this line is a copy of the message.",
    ]
)
_HEADERS = st.sampled_from(
    [
        "From: MAILER-DAEMON@mx.example.net",
        "Return-Path: <>",
        "Subject: Undelivered Mail Returned to Sender",
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB",
        "Content-Type: multipart/mixed; boundary=BB",
        "Content-Type: text/plain; charset=bogus-8",
        "Message-ID: <bounce@mx.example.net>",
        "In-Reply-To: <orig@acme-help.example>",
        "Date: Tue, 12 Mar 2024 01:47:32 -0700",
        "Date: 32 Foo 99999 99:99:99 +9999",
        "X-Failed-Recipients: a@example.org",
    ]
)
_LINES = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=60)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_escape_as_other_errors(body: bytes) -> None:
    _check(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.one_of(_HEADERS, st.text(max_size=60)), max_size=12),
    lines=_LINES,
    binary_tail=st.binary(max_size=200),
    crlf=st.booleans(),
)
def test_arbitrary_text_with_headers(
    headers: list[str], lines: list[str], binary_tail: bytes, crlf: bool
) -> None:
    text = "\n".join(headers) + "\n\n" + "\n".join(lines)
    if crlf:
        text = text.replace("\n", "\r\n")
    _check(text.encode("utf-8", "surrogatepass") + binary_tail)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(CORPUS)))
def test_mangled_real_bounces(data: st.DataObject, name: str) -> None:
    raw = bytearray(_raw(name))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)), label="cut")
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=20),
        label="flips",
    )
    for index, value in flips:
        raw[index] = value
    _check(bytes(raw[:cut]) if data.draw(st.booleans(), label="truncate") else bytes(raw))
