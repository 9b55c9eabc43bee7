"""The classification rules of docs/delivery.md ("Classifying a bounce"), one by one
(processors/delivery/providers/bounce_class.py, bounce_phrases.py, bounce_stage.py),
on short diagnostics written for the rule, and through dsn.parse for the shapes of
real bounce emails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.delivery.notification import NotificationKind
from processors.delivery.providers import dsn
from processors.delivery.providers.bounce_class import (
    block_status,
    classify_bounce,
    is_warning,
    outcome_class,
    reply_code,
)
from processors.delivery.providers.bounce_stage import Stage, refusal_stage
from schemas.model import BounceClass

HARD, SOFT = BounceClass.HARD, BounceClass.SOFT
POLICY, UNKNOWN = BounceClass.POLICY, BounceClass.UNKNOWN
BOUNCED, DEFERRED = NotificationKind.BOUNCED, NotificationKind.DEFERRED


def _class(
    diagnostic: str | None, status_field: str | None = None, stage: Stage | None = None
) -> BounceClass:
    """What a DSN block with this Status and Diagnostic-Code is classified as."""
    status = block_status(status_field, diagnostic)
    return classify_bounce(status, reply_code(diagnostic), diagnostic, stage=stage)


# -- 1. the remote server's enhanced status code -------------------------------------


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [
        ("550 5.1.1 <jo@example.org>: Recipient address rejected: User unknown", HARD),
        ("550 5.1.2 Host unknown", HARD),  # the domain
        ("553 5.1.3 Bad recipient address syntax", HARD),
        ("550 5.1.6 Mailbox has moved", HARD),
        ("556 5.1.10 Recipient address has null MX", HARD),
        ("552 5.2.2 Mailbox full", SOFT),
        ("550 5.2.2 Rejected", SOFT),  # x.2.2 is full, whatever the words
        ("550 5.2.1 Mailbox disabled", SOFT),
        ("552 5.2.3 Message length exceeds administrative limit", SOFT),
        ("554 5.3.4 Message too big for system", SOFT),
        ("554 5.4.6 Routing loop detected", SOFT),
        ("554 5.5.0 No recipients have been specified", SOFT),
        ("554 5.6.0 Message content rejected", POLICY),
        ("550 5.7.1 Delivery not authorized, message refused", POLICY),
        ("550 5.7.26 Multiple authentication checks failed", POLICY),
        ("451 4.3.0 Temporary system failure", SOFT),
        ("421 4.7.0 Try again later, closing connection", POLICY),  # x.7 even when transient
    ],
)
def test_the_enhanced_code_decides(diagnostic: str, expected: BounceClass) -> None:
    assert _class(diagnostic) is expected


def test_sender_side_codes_are_not_the_recipients_fault() -> None:
    # x.1.7 and x.1.8 are about the SENDER's address and domain.
    assert _class("553 5.1.8 Domain of sender address does not exist") is POLICY
    assert _class("501 5.1.7 Bad sender address syntax") is POLICY
    assert _class("450 4.1.8 <x@y>: Sender address rejected: Domain not found") is POLICY
    # ... and so are their words, without a code.
    assert _class("553 Sender address rejected: Domain not found") is POLICY
    assert (
        _class("550 5.2.0 <me@x> From: Domain is invalid. Please provide a valid From:") is POLICY
    )


def test_the_remote_code_wins_over_a_relays_wrapper_code() -> None:
    # SES reports the remote's reply behind its own summary code.
    diagnostic = "5.1.0 - Unknown address error 550-'5.2.2 mailbox full' (delivery attempts: 0)"
    assert block_status("5.1.0", diagnostic) == "5.2.2"
    assert _class(diagnostic, "5.1.0") is SOFT


def test_the_remote_code_wins_over_the_status_field() -> None:
    assert block_status("5.0.0", "550 5.7.1 Blocked") == "5.7.1"
    assert block_status("4.4.7", "450 4.7.1 Client host rejected") == "4.7.1"
    # A specific code is better than a generic one, wherever it is.
    assert block_status("5.1.1", "550 5.0.0 User unknown") == "5.1.1"
    assert block_status("2.0.0", "250 2.0.0 Ok") == "2.0.0"
    assert block_status(None, None) is None


def test_words_that_contradict_a_hard_code_win() -> None:
    assert _class("552 sorry, mailbox is over quota temporarily (#5.1.1)") is SOFT
    assert _class("550 5.1.1 <jo@x>: user temporarily locked, try later") is SOFT
    # A disabled account under x.7 (RFC 3463's x.7.13, or the words) is the
    # mailbox's state, which may change.
    assert _class("525 5.7.13 Disabled recipient address") is SOFT
    assert _class("550 5.7.1 Recipient account is suspended") is SOFT


# -- 2. the reply code, for generic codes and none -----------------------------------


@pytest.mark.parametrize(
    ("diagnostic", "status_field", "expected"),
    [
        ("550 5.0.0 Rejected", "5.0.0", UNKNOWN),  # x.0.0 with no cause: not HARD
        ("554 5.0.0", "5.0.0", UNKNOWN),
        ("550 Requested action not taken: mailbox unavailable", None, UNKNOWN),
        (None, None, UNKNOWN),  # no code, no words
        ("451 Temporary local problem", None, SOFT),
        ("Rejected", "4.0.0", SOFT),
        ("552 Requested mail action aborted", None, SOFT),
        ("504 Command parameter not implemented", None, SOFT),
    ],
)
def test_generic_codes_and_no_code_are_never_hard(
    diagnostic: str | None, status_field: str | None, expected: BounceClass
) -> None:
    assert _class(diagnostic, status_field) is expected


# -- 3. phrases, behind a generic code or none ---------------------------------------


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [
        ("550 5.0.0 <jo@example.org>... User unknown", HARD),
        ("550 No such user here", HARD),
        ("554 delivery error: dd This user doesn't have a example.org account", HARD),
        ("Host or domain name not found. Name service error for name=x type=A", HARD),
        ("DNS lookup failure: host mx.example.org not found", HARD),
        ("Could not deliver for the last 432000 seconds. Giving up.", SOFT),
        ("554 Invalid IP for sending mail of domain example.net", POLICY),
        ("Mailbox quota exceeded", SOFT),
        ("550 Mailbox is frozen", SOFT),
        ("retry timeout exceeded", SOFT),
        ("connect to mx.example.org[192.0.2.1]:25: Connection timed out", SOFT),
        ("550 Connection frequency limited, blocked IP 192.0.2.1", SOFT),  # rate first
        ("450 Greylisted, see http://example.org/greylisting.html", SOFT),
        ("553 Exceeded maximum inbound message size", SOFT),
        ("554 Service currently unavailable", SOFT),
        ("550 Client host blocked using zen.spamhaus.org", POLICY),
        ("554 Message rejected as spam", POLICY),
        ("550 Unauthenticated senders not allowed", POLICY),
        ("550 Relay access denied", POLICY),
        ("550 domain [x.example] mismatches client ip 192.0.2.1", POLICY),
        ("500 Remote server does not support TLS", POLICY),
        ("550 Protocol violation", POLICY),
    ],
)
def test_phrases_decide_behind_a_generic_code(diagnostic: str, expected: BounceClass) -> None:
    assert _class(diagnostic, "5.0.0") is expected


def test_addresses_and_links_are_not_phrases() -> None:
    # A local part or a help link is not the server's words.
    assert _class("550 5.0.0 <mailbox-full@x.example>: rejected") is UNKNOWN
    assert _class("550 5.0.0 see https://help.example/reason#userunknown") is UNKNOWN


def test_context_may_name_a_soft_or_policy_cause_but_never_a_hard_one() -> None:
    assert classify_bounce(None, None, None, context="The recipient is over quota.") is SOFT
    assert classify_bounce(None, None, None, context="The user is unknown.") is UNKNOWN
    # Google Groups, in any language: its signature line.
    assert classify_bounce(None, None, "", context="Bonjour,\n...\n\nGoogle Groups\n") is POLICY


# -- the SMTP step of the refusal ----------------------------------------------------


def test_user_unknown_after_data_is_not_hard() -> None:
    text = "host mx.x[192.0.2.1] said: 550 Unknown user (in reply to end of DATA command)"
    assert refusal_stage("jo@x", (text,), "") is Stage.DATA
    assert _class(text, stage=Stage.DATA) is SOFT


def test_user_unknown_under_a_mailbox_code_is_hard_only_at_rcpt() -> None:
    text = "550 5.2.1 <jo@x>... User Unknown"
    assert _class(text) is SOFT  # the code says the mailbox exists
    said = f"{text} (in reply to RCPT TO command)"
    assert refusal_stage("jo@x", (said,), "") is Stage.RCPT
    assert _class(said, stage=Stage.RCPT) is HARD


def test_refusals_before_rcpt_are_the_senders() -> None:
    text = "SMTP error from remote mail server after MAIL FROM:<me@x>: 553 x does not exist"
    assert refusal_stage("jo@y", (text,), "") is Stage.SENDER
    assert _class(text, stage=Stage.SENDER) is POLICY
    qmail = "Connected to 192.0.2.1 but my name was rejected. Remote host said: 501 5.0.0"
    assert refusal_stage("jo@y", (qmail,), "") is Stage.SENDER
    # ... but a busy or full server is not refusing the sender.
    busy = "452 4.3.1 Insufficient system storage (in reply to MAIL FROM command)"
    assert _class(busy, stage=refusal_stage("jo@y", (busy,), "")) is SOFT


def test_transcripts_tell_the_step() -> None:
    rcpt = ">>> RCPT To:<jo@x>\n<<< 550 5.1.1 Requested action not taken: mailbox unavailable\n"
    assert refusal_stage("jo@x", (), rcpt) is Stage.RCPT
    data = ">>> DATA\n<<< 550 Unknown user jo@x\n"
    assert refusal_stage("jo@x", (), data) is Stage.DATA
    # Pipelining: the RCPT replies print after '>>> DATA', and DATA's own reply says
    # no recipient was taken.
    piped = ">>> DATA\n<<< 550 5.1.1 <jo@x>... User unknown\n<<< 503 5.0.0 Need RCPT\n"
    assert refusal_stage("jo@x", (), piped) is None


# -- kinds: delays and warnings ------------------------------------------------------


def test_a_delay_is_never_hard() -> None:
    assert outcome_class(DEFERRED, "5.1.1", 550, "550 5.1.1 User unknown") is SOFT
    assert outcome_class(DEFERRED, "4.4.7", None, "retry timeout exceeded") is SOFT
    # ... but a delay caused by a policy refusal says so.
    assert outcome_class(DEFERRED, "4.7.0", 421, "421 4.7.0 deferred, user complaints") is POLICY
    assert outcome_class(NotificationKind.DELIVERED, "2.0.0", None, None) is None


def test_warning_reports() -> None:
    assert is_warning("Delayed Mail (still being retried)", "")
    assert is_warning(None, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND #")
    assert is_warning("Warning: could not send message for past 4 hours", "")
    assert not is_warning("Undelivered Mail Returned to Sender", "User unknown")
    assert not is_warning(None, "This is a permanent error. Delivery will be retried? no.")


_POSTFIX_WARNING = b"""\
From: MAILER-DAEMON@mx.acme-help.example (Mail Delivery System)
To: help@acme-help.example
Subject: Delayed Mail (still being retried)
Message-ID: <warn-1@mx.acme-help.example>
Date: Wed, 13 Mar 2024 13:00:00 +0100
In-Reply-To: <ct.01HS-delay@acme-help.example>

This is the mail system at host mx.acme-help.example.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

<slow@example.org>: connect to mx.example.org[192.0.2.1]:25: Connection timed out

Final-Recipient: rfc822; slow@example.org
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.org[192.0.2.1]:25: Connection
    timed out
"""


def test_a_postfix_delay_warning_is_deferred_not_hard() -> None:
    # The report's fields are plain text here (no multipart/report), as some relays
    # forward them: the warning wording says the server is still trying.
    [n] = dsn.parse(_POSTFIX_WARNING)
    assert (n.recipient, n.kind, n.bounce_class) == ("slow@example.org", DEFERRED, SOFT)


def _dsn_email(block: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.acme-help.example\n"
        "Message-ID: <bounce-2@mx.acme-help.example>\n"
        "Date: Fri, 01 Mar 2024 10:00:00 +0000\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n\n"
        "--BB\nContent-Type: text/plain\n\nDelivery report.\n"
        "--BB\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.acme-help.example\n\n{block}\n"
        "--BB\nContent-Type: text/rfc822-headers\n\n"
        "Message-ID: <ct.01HS-orig@acme-help.example>\n\n--BB--\n"
    ).encode()


def test_dsn_blocks_through_parse() -> None:
    expired = _dsn_email(
        "Final-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 4.4.7\n"
        "Diagnostic-Code: smtp; retry timeout exceeded\n"
    )
    [n] = dsn.parse(expired)
    assert (n.kind, n.bounce_class) == (BOUNCED, SOFT)  # given up: never shown bad
    ses = _dsn_email(
        "Final-Recipient: rfc822; full@example.org\nAction: failed\nStatus: 5.1.0\n"
        "Diagnostic-Code: smtp; 5.1.0 - Unknown address error 550-'5.2.2 Mailbox full'\n"
    )
    [n] = dsn.parse(ses)
    assert (n.bounce_class, n.smtp_status) == (SOFT, "5.2.2")
    delayed = _dsn_email(
        "Final-Recipient: rfc822; later@example.org\nAction: delayed\nStatus: 4.4.1\n"
    )
    [n] = dsn.parse(delayed)
    assert (n.kind, n.bounce_class) == (DEFERRED, SOFT)


_GMAIL = b"""\
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: help@acme-help.example
Subject: Delivery Status Notification (Failure)
Message-ID: <gm-1@mail.gmail.com>
Date: Wed, 13 Mar 2024 13:00:00 +0000
X-Failed-Recipients: full.box@example.org

Delivery to the following recipient failed permanently:

     full.box@example.org

Technical details of permanent failure:
Google tried to deliver your message, but it was rejected by the server for the
recipient domain example.org by mx.example.org. [192.0.2.2].

The error that the other server returned was:
550 5.2.2 <full.box@example.org>... Mailbox Full

----- Original message -----

Message-ID: <ct.01HS-gmail@acme-help.example>
To: full.box@example.org
"""


def test_gmail_mailbox_full_in_the_paragraph_after_the_address() -> None:
    [n] = dsn.parse(_GMAIL)
    assert (n.recipient, n.kind, n.bounce_class) == ("full.box@example.org", BOUNCED, SOFT)
    assert n.smtp_status == "5.2.2"


# -- robustness ----------------------------------------------------------------------

_TEXT = st.one_of(st.none(), st.text(max_size=300))
_CODE = st.one_of(st.none(), st.from_regex(r"\A[245]\.\d{1,3}\.\d{1,3}\Z"))


@settings(max_examples=300, deadline=None)
@given(
    status_field=_TEXT,
    diagnostic=_TEXT,
    context=_TEXT,
    report=st.text(max_size=300),
    code=_CODE,
    kind=st.sampled_from(list(NotificationKind)),
)
def test_classification_never_raises_and_is_deterministic(
    status_field: str | None,
    diagnostic: str | None,
    context: str | None,
    report: str,
    code: str | None,
    kind: NotificationKind,
) -> None:
    def once() -> tuple[object, ...]:
        status = block_status(status_field, diagnostic) or code
        stage = refusal_stage("jo@example.org", (diagnostic, context), report)
        return (
            status,
            stage,
            is_warning(status_field, report),
            outcome_class(
                kind, status, reply_code(diagnostic), diagnostic, context=context, stage=stage
            ),
        )

    first = once()
    assert once() == first
    assert first[3] is None or isinstance(first[3], BounceClass)
