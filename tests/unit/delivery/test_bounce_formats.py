"""Who a bounce email names as failed, and what kind of email it is: one short
synthetic email per shape the readers in processors/delivery/providers recognize
(plaintext.py, report.py, feedback.py, autoreply.py, relayed.py), written from the
shapes' descriptions, not copied from the corpus; and the addresses that must never
be reported (the quoted original's headers, the sender's own address, Message-ID
tokens, an example address in help text)."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime

import pytest

from connectors.delivery_samples import ses_via_sns
from processors.delivery.notification import (
    Notification,
    NotificationError,
    NotificationIgnored,
    NotificationKind,
)
from processors.delivery.providers import dsn
from schemas.model import BounceClass

BOUNCED, DEFERRED = NotificationKind.BOUNCED, NotificationKind.DEFERRED
COMPLAINED, DELIVERED = NotificationKind.COMPLAINED, NotificationKind.DELIVERED
HARD, SOFT, POLICY = BounceClass.HARD, BounceClass.SOFT, BounceClass.POLICY

DAEMON = (
    "From: MAILER-DAEMON <>\n"
    "To: agent@acme-help.example\n"
    "Subject: Mail delivery failed\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\n"
    "Message-ID: <bounce-1@mx.acme-help.example>\n"
)
# The returned original, quoted inline the way plain-text bounces do.
ORIGINAL = (
    "Received: from app.acme-help.example\n"
    "\tby mx.acme-help.example; Mon, 02 Mar 2026 09:59:59 +0000\n"
    "From: Agent <agent@acme-help.example>\n"
    "To: <gone@example.org>\n"
    "Message-ID: <reply-1@acme-help.example>\n"
    "Subject: About your ticket\n"
)


def _parse(text: str) -> list[Notification]:
    return dsn.parse(text.encode())


def _read(text: str) -> list[tuple[str, NotificationKind, BounceClass | None, str | None]]:
    """Who the email names and how, whether or not it names the original message."""
    msg = email.message_from_bytes(text.encode(), policy=email.policy.compat32)
    return [(o.recipient, o.kind, o.bounce_class, o.smtp_status) for o in dsn.read_bounce(msg)]


# -- plain-text shapes --------------------------------------------------------------------


def test_address_in_the_failure_sentence_and_the_reason_in_the_next_paragraph() -> None:
    # DragonFly's shape: the sentence names the recipient, the next paragraph why.
    [n] = _parse(
        DAEMON + "\nThis is the mail agent at mx.acme-help.example.\n\n"
        "There was an error delivering your mail to <gone@example.org>.\n\n"
        "mx.example.org [192.0.2.25] did not like our RCPT TO:\n"
        "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown\n\n"
        "Original message follows.\n\n" + ORIGINAL
    )
    assert (n.recipient, n.kind, n.bounce_class, n.smtp_status) == (
        "gone@example.org",
        BOUNCED,
        HARD,
        "5.1.1",
    )
    assert n.diagnostic is not None and "User unknown" in n.diagnostic
    assert n.message_refs == ("reply-1@acme-help.example",)


def test_a_list_of_recipients_each_with_its_reply_on_its_line() -> None:
    # OpenSMTPD's shape: 'address: reply', one line per recipient.
    assert _read(
        DAEMON + "\n    An error has occurred while attempting to deliver a message for\n"
        "    the following list of recipients:\n\n"
        "full@example.org: 552 5.2.2 <full@example.org>... Mailbox full\n"
        "gone@example.org: 550 5.1.1 <gone@example.org>... User unknown\n\n"
        "    Below is a copy of the original message:\n\n" + ORIGINAL
    ) == [
        ("full@example.org", BOUNCED, SOFT, "5.2.2"),
        ("gone@example.org", BOUNCED, HARD, "5.1.1"),
    ]


def test_an_address_line_then_what_the_remote_host_said() -> None:
    # qmail / Yahoo: '<address>:' alone, the remote reply under it.
    assert _read(
        DAEMON + "\nSorry, we were unable to deliver your message to the following address.\n\n"
        "<gone@example.org>:\nRemote host said: 550 5.1.1 <gone@example.org>... "
        "No such user [RCPT_TO]\n\n--- Below this line is a copy of the message.\n\n" + ORIGINAL
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_a_sendmail_transcript_line_that_leads_with_the_reply_code() -> None:
    # sendmail V5: no status fields, the transcript names the recipient after a code.
    assert _read(
        DAEMON + "\n   ----- Transcript of session follows -----\n"
        "550 nowhere.example (smtp)... 550 Host unknown\n"
        "554 <someone@nowhere.example>... 550 Host unknown (Authoritative answer)\n\n"
        "   ----- Unsent message follows -----\n" + ORIGINAL
    ) == [("someone@nowhere.example", BOUNCED, HARD, None)]


def test_an_address_alone_under_a_heading_and_the_server_message_below() -> None:
    # m-FILTER / Lotus Notes: the address alone on its line (after text in any
    # language), the server's reply in the next paragraph.
    assert _read(
        DAEMON + "\n以下のメールアドレスへの送信に失敗しました。\ngone@example.org\n\n\n"
        "-------server message\n550 5.1.1 <gone@example.org>: User unknown\n\n"
        "-------original message\n" + ORIGINAL
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_an_indented_address_with_a_date_then_the_reason() -> None:
    # Exchange 2003: 'address on date', the reason indented under it.
    assert _read(
        DAEMON + "\nYour message did not reach some or all of the intended recipients.\n\n"
        "The following recipient(s) could not be reached:\n\n"
        "      gone@example.org on 3/2/26 10:00 AM\n"
        "            The e-mail account does not exist at the organization.\n"
    ) == [("gone@example.org", BOUNCED, HARD, None)]


def test_recipient_and_address_fields_and_a_delay_warning() -> None:
    # 'Recipient: <a>' (EZweb) and 'Address: <a>' (Zoho, in a warning: DEFERRED).
    assert _read(
        DAEMON + "\nEach of the following recipients was rejected by a remote mail server.\n\n"
        "    Recipient: <gone@example.org>\n    >>> RCPT TO:<gone@example.org>\n"
        "    <<< 550 <gone@example.org>: User unknown\n"
    ) == [("gone@example.org", BOUNCED, HARD, None)]
    assert _read(
        DAEMON + "\nTHIS IS A WARNING MESSAGE ONLY.\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n"
        "[Status: Error, Address: <slow@example.org>, ResponseCode 421, Host not reachable.]\n\n"
        "Message will be retried for 4 more day(s)\n"
    ) == [("slow@example.org", DEFERRED, SOFT, None)]


def test_the_rcpt_to_of_a_failed_smtp_session() -> None:
    assert _read(
        DAEMON + "\nTranscript of session follows.\n\n"
        " In:  MAIL FROM:<agent@acme-help.example>\n Out: 250 2.1.0 Ok\n"
        " In:  RCPT TO:<gone@example.org>\n Out: 250 2.1.5 Ok\n In:  DATA\n"
        " Out: 451 4.3.0 Error: queue file write error\n"
    ) == [("gone@example.org", BOUNCED, SOFT, "4.3.0")]


def test_report_fields_written_in_an_encoded_text_part() -> None:
    # Amazon WorkMail: the DSN fields inside a quoted-printable text/plain part.
    [n] = _parse(
        DAEMON + 'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
        "Content-Type: text/plain; charset=iso-8859-15\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "An error occurred while trying to deliver the mail to the following recip=\nients:\n"
        "full@example.org\n\nTechnical report:\n\nReporting-MTA: dsn; mx.example.net\n\n"
        "Action: failed\nFinal-Recipie=\nnt: rfc822; full@example.org\n"
        "Diagnostic-Code: smtp; 550 5.2.=\n2 <full@example.org>... Mailbox Full\n"
        "Status: 5.2.2\n\n--B\nContent-Type: message/rfc822\n\n" + ORIGINAL + "\nHello\n--B--\n"
    )
    assert (n.recipient, n.kind, n.bounce_class, n.smtp_status) == (
        "full@example.org",
        BOUNCED,
        SOFT,
        "5.2.2",
    )
    assert n.diagnostic == "550 5.2.2 <full@example.org>... Mailbox Full"


def test_a_bounce_forwarded_inline_with_quote_marks() -> None:
    assert _read(
        "From: Agent <agent@acme-help.example>\nTo: Lead <lead@acme-help.example>\n"
        "Subject: Fwd: Returned mail: see transcript for details\n\n"
        "Forwarding this one.\n\nBegin forwarded message:\n\n"
        "> From: Mail Delivery Subsystem <MAILER-DAEMON@mx.acme-help.example>\n"
        "> Subject: Returned mail: see transcript for details\n>\n"
        ">    ----- The following addresses had permanent fatal errors -----\n"
        "> <gone@example.org>\n>     (reason: 550 5.1.1 <gone@example.org>... User unknown)\n>\n"
        "> Message-ID: <reply-1@acme-help.example>\n"
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_a_bounce_pasted_whole_into_a_relays_text() -> None:
    inner = (
        "From MAILER-DAEMON  Mon Mar  2 10:00:00 2026\nReturn-Path: <>\n"
        "From: MAILER-DAEMON@relay.example.net\nSubject: Undelivered Mail Returned to Sender\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\n\n'
        "--R\nContent-Type: text/plain\n\nThe mail system\n\n"
        "--R\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.net\n\n"
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\n\n"
        "--R\nContent-Type: message/rfc822\n\n" + ORIGINAL + "\nHello\n--R--\n"
    )
    assert _read(
        DAEMON + "\nI'm sorry to have to inform you that the message returned\n"
        "below could not be delivered to one or more destinations.\n\n"
        "---------------------------------\n" + inner
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


# -- what is never a failed recipient ---------------------------------------------------


def test_quoted_headers_ids_and_the_sender_are_not_recipients() -> None:
    # The original quoted right after the report (no marker), a folded Message-ID whose
    # continuation line reads like an address line, and the sender's own address in a
    # reply indented under the recipient.
    assert _read(
        DAEMON + "\nA message that you sent could not be delivered to one or more of its "
        "recipients.\n\n"
        "  gone@example.org\n    host mx.example.org [192.0.2.1]\n"
        "    550 5.1.1 <agent@acme-help.example> From: sender rejected\n\n"
        "Message-ID:\n <reply-1@acme-help.example>\n"
        "From: Agent <agent@acme-help.example>\n"
        "To: gone@example.org, other@example.org\n"
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_an_example_address_in_help_text_is_not_a_recipient() -> None:
    with pytest.raises(NotificationError) as caught:
        _parse(
            DAEMON + "\nThe address could not be found. Check the spelling, e.g., if\n"
            "jo@example.org fails, try joanne@example.org instead.\n"
        )
    assert caught.value.reason == "no-recipient"


def test_original_recipient_wins_unless_only_the_final_one_was_written_to() -> None:
    def report(to: str) -> str:
        return (
            DAEMON + 'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
            "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
            "Final-Recipient: rfc822; jo@elsewhere.example\n"
            "Original-Recipient: rfc822; jo@alias.example\nAction: failed\nStatus: 5.1.1\n\n"
            f"--B\nContent-Type: text/rfc822-headers\n\nTo: {to}\n"
            "Message-ID: <reply-1@acme-help.example>\n\n--B--\n"
        )

    assert [n.recipient for n in _parse(report("jo@alias.example"))] == ["jo@alias.example"]
    # The alias is the receiving side's: the sender wrote to the final address.
    assert [n.recipient for n in _parse(report("jo@elsewhere.example"))] == ["jo@elsewhere.example"]


# -- the envelope of the email ------------------------------------------------------------


def test_a_rewritten_mime_boundary_is_mended() -> None:
    # The declared boundary never occurs; the body uses another one.
    assert _read(
        DAEMON + 'Content-Type: multipart/report; report-type=delivery-status; boundary="OLD"\n\n'
        "--NEW\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\n\n"
        "--NEW\nContent-Type: text/rfc822-headers\n\n" + ORIGINAL + "\n--NEW--\n"
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_a_mailbox_export_is_one_unit_per_email() -> None:
    one = "From MAILER-DAEMON  Mon Mar  2 10:00:00 2026\n" + DAEMON + "\nfirst\n"
    two = "From MAILER-DAEMON  Mon Mar  2 11:00:00 2026\n" + DAEMON + "\nsecond\n"
    body = (one + "\n" + two).encode()
    assert dsn.split(body) == [one.encode(), two.encode()]
    # A body line starting 'From ' inside a single email does not split it.
    single = (DAEMON + "\nFrom here on\n\nFrom me Mon Mar  2 10:00:00 2026 ok\n").encode()
    assert dsn.split(single) == [single]


# -- feedback, auto-replies, SES by email -------------------------------------------------


def _arf(fields: str, to: str = "jo@example.org", feedback_type: str = "abuse") -> str:
    return (
        "From: fbl@isp.example\nTo: abuse@acme-help.example\nSubject: Abuse report\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nA complaint.\n"
        "--F\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: {feedback_type}\nUser-Agent: FBL/1.0\nVersion: 1\n{fields}"
        "--F\nContent-Type: message/rfc822\n\n"
        f"From: agent@acme-help.example\nTo: {to}\n"
        "Message-ID: <reply-1@acme-help.example>\n\nHello\n--F--\n"
    )


def test_an_abuse_report_names_each_original_recipient_as_complained() -> None:
    notifications = _parse(
        _arf("Original-Rcpt-To: jo@example.org\nOriginal-Rcpt-To: sam@example.net\n")
    )
    assert [(n.recipient, n.kind, n.bounce_class, n.diagnostic) for n in notifications] == [
        ("jo@example.org", COMPLAINED, None, "abuse"),
        ("sam@example.net", COMPLAINED, None, "abuse"),
    ]
    assert notifications[0].message_refs == ("reply-1@acme-help.example",)


def test_a_redacted_abuse_report_names_the_original_recipient_only_when_alone() -> None:
    [n] = _parse(_arf(""))
    assert (n.recipient, n.kind) == ("jo@example.org", COMPLAINED)
    # Never a guess among several: the complaint names nobody, the route decides.
    for to in ("jo@example.org, sam@example.net", '"undisclosed recipients"'):
        [n] = _parse(_arf("", to=to))
        assert (n.recipient, n.kind, n.message_refs) == (
            "",
            COMPLAINED,
            ("reply-1@acme-help.example",),
        )


def test_a_not_spam_report_and_auto_replies_are_ignored() -> None:
    with pytest.raises(NotificationIgnored) as caught:
        _parse(_arf("Original-Rcpt-To: jo@example.org\n", feedback_type="not-spam"))
    assert caught.value.reason == "not-spam"
    # RFC 6591: about the sender's SPF/DKIM/DMARC, not the recipient's wish.
    with pytest.raises(NotificationIgnored) as caught:
        _parse(_arf("Original-Rcpt-To: jo@example.org\n", feedback_type="auth-failure"))
    assert caught.value.reason == "auth-failure-report"
    person = "From: Jo <jo@example.org>\nTo: agent@acme-help.example\n"
    away = "\nI am away. Write to sam@example.org\n\nsam@example.org: urgent matters\n"
    for marks in (
        "Subject: Re: ticket\nAuto-Submitted: auto-replied\n",
        "Subject: Automatic reply: ticket\n",
        "Subject: Out of Office\n",
        "Subject: Re: ticket\nX-Autoreply: yes\n",
        "Subject: Re: ticket\nPrecedence: auto_reply\n",
    ):
        with pytest.raises(NotificationIgnored) as caught:
            _parse(person + marks + away)
        assert caught.value.reason == "auto-reply"


def test_a_bounce_marked_auto_replied_is_still_a_bounce() -> None:
    # Postfix marks its bounces Auto-Submitted: auto-replied; a mail system sent it.
    assert _read(
        DAEMON + "Auto-Submitted: auto-replied\n\nThe mail system\n\n"
        "<gone@example.org>: host mx.example.org said: 550 5.1.1 User unknown\n"
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_an_automatic_unsubscribe_is_a_complaint_of_its_sender() -> None:
    [n] = _parse(
        "From: jo@example.org\nTo: unsubscribe-7@acme-help.example\nSubject: unsubscribe\n"
        "In-Reply-To: <reply-1@acme-help.example>\n"
        "Auto-Submitted: auto-replied\nX-Apple-Unsubscribe: true\n\nUnsubscribe me.\n"
    )
    assert (n.recipient, n.kind, n.diagnostic) == ("jo@example.org", COMPLAINED, "opt-out")


def test_an_ses_notification_by_email_even_when_sendmail_split_its_long_line() -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    envelope = ses_via_sns("Delivery", email_message_id="reply-1@acme-help.example",
                           ses_message_id="ses-1", recipient="jo@example.org", at=at,
                           notification_id="n-1").decode()  # fmt: skip
    document = json.loads(envelope)["Message"]
    cut = len(document) // 2  # sendmail's '!' + newline + space inside a JSON string
    split = document[:cut] + "!\n " + document[cut:]
    head = (
        "From: SES <no-reply@sns.amazonaws.com>\nTo: bounces@acme-help.example\n"
        "Subject: AWS Notification Message\nContent-Type: text/plain; charset=UTF-8\n\n"
    )
    for body in (split, envelope):  # the SES document, or its SNS envelope (email-json)
        [n] = _parse(head + body + "\n\n--\nIf you wish to stop receiving notifications...\n")
        assert (n.provider, n.kind, n.recipient) == ("ses", DELIVERED, "jo@example.org")
        assert "reply-1@acme-help.example" in n.message_refs


def test_flufl_bounces_detectors_never_name_the_sender_or_a_message_id() -> None:
    # flufl.bounce's SimpleMatch takes every <...> after 'here is your list of failed
    # recipients' up to its end marker, which this bounce never writes: the quoted
    # original's Message-ID token and sender come along, and are dropped.
    named = _read(
        DAEMON + "\nHere is your list of failed recipients:\n\n<gone@example.org>\n\n"
        "Subject: About your ticket\nMessage-ID: <1a2b3c.998877@mail.example>\n"
        "Reply-To: Agent <agent@mail.example>\n"
    )
    assert [recipient for recipient, *_ in named] == ["gone@example.org"]


def test_in_a_transcript_only_the_refused_rcpt_to_failed() -> None:
    assert _read(
        DAEMON + "\n   ----- Transcript of session follows -----\n"
        ">>> RCPT To:<here@example.org>\n<<< 250 2.1.5 Ok\n"
        ">>> RCPT To:<gone@example.org>\n<<< 550 5.1.1 No such user\n"
    ) == [("gone@example.org", BOUNCED, HARD, "5.1.1")]


def test_a_success_sentence_names_no_failed_recipient() -> None:
    with pytest.raises(NotificationError) as caught:
        _parse(DAEMON + "\nYour message was delivered to jo@example.org at 10:00.\n")
    assert caught.value.reason == "no-recipient"
