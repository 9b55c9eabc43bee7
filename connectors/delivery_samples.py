"""Provider notifications in the providers' documented shapes, for a given message.

The demo, the benchmark and the resilience test need notifications about *their*
messages, not about the fixed ids of the documentation samples: these functions
build them (SES through SNS, SendGrid's event webhook, an RFC 3464 bounce email
as Postfix writes it). Pure: the caller passes every id and time.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import format_datetime


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def ses_via_sns(
    kind: str,
    *,
    email_message_id: str,
    ses_message_id: str,
    recipient: str,
    at: datetime,
    notification_id: str,
    bounce_type: str = "Permanent",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 user unknown",
) -> bytes:
    """An SES notification (`kind` Delivery, Bounce or Complaint) in its SNS envelope."""
    mail = {
        "timestamp": _iso(at),
        "source": "support@acme.example",
        "messageId": ses_message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": "Message-ID", "value": f"<{email_message_id}>"}],
        "commonHeaders": {"messageId": f"<{email_message_id}>", "to": [recipient]},
    }
    message: dict[str, object] = {"notificationType": kind, "mail": mail}
    if kind == "Delivery":
        message["delivery"] = {
            "timestamp": _iso(at),
            "processingTimeMillis": 546,
            "recipients": [recipient],
            "smtpResponse": "250 ok",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        }
    elif kind == "Bounce":
        message["bounce"] = {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": diagnostic,
                }
            ],
            "timestamp": _iso(at),
            "feedbackId": notification_id,
        }
    elif kind == "Complaint":
        message["complaint"] = {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": _iso(at),
            "feedbackId": notification_id,
            "complaintFeedbackType": "abuse",
        }
    else:
        raise ValueError(f"SES notification kind {kind!r}: Delivery, Bounce or Complaint")
    envelope = {
        "Type": "Notification",
        "MessageId": notification_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-notifications",
        "Message": json.dumps(message),
        "Timestamp": _iso(at),
        "SignatureVersion": "2",
    }
    return json.dumps(envelope).encode()


def sendgrid_event(
    event: str,
    *,
    email_message_id: str,
    recipient: str,
    at: datetime,
    event_id: str,
    **fields: object,
) -> dict[str, object]:
    """One SendGrid event-webhook event (post a list of them as the body)."""
    return {
        "email": recipient,
        "timestamp": int(at.timestamp()),
        "smtp-id": f"<{email_message_id}>",
        "event": event,
        "sg_event_id": event_id,
        "sg_message_id": f"{event_id[:22]}.filterdrecv-p3mlm1-1",
        **fields,
    }


def postfix_bounce_email(
    *,
    email_message_id: str,
    recipient: str,
    at: datetime,
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
    bounce_id: str = "20261125093012.4F2A81C0042@mx1.acme.example",
) -> bytes:
    """A multipart/report bounce (RFC 3464) as Postfix sends it, returning the headers."""
    date = format_datetime(at)
    detail = diagnostic.format(recipient=recipient)
    action = "failed" if status.startswith("5") else "delayed"
    return f"""Return-Path: <>
Date: {date}
From: MAILER-DAEMON@mx1.acme.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@acme.example
Message-Id: <{bounce_id}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F2A81C0042.1764063012/mx1.acme.example"

This is a MIME-encapsulated message.

--4F2A81C0042.1764063012/mx1.acme.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.acme.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.customer.example said: {detail}

--4F2A81C0042.1764063012/mx1.acme.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.acme.example
Arrival-Date: {date}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.customer.example
Diagnostic-Code: {detail}

--4F2A81C0042.1764063012/mx1.acme.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Support <support@acme.example>
To: <{recipient}>
Subject: Re: your question
Message-ID: <{email_message_id}>
Date: {date}

--4F2A81C0042.1764063012/mx1.acme.example--
""".replace("\n", "\r\n").encode()
