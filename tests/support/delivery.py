"""Helpers for the delivery tests: outbound messages, decoded topics, fixtures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from connectors.publisher import EventPublisher
from convotrail.settings import Settings
from schemas import model as m
from schemas.codecs import ModelCodec
from schemas.registration import register_contract
from schemas.registry import Registry
from schemas.serde import AvroSerde
from tests.support.kafka import consume

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DANA = m.Actor(kind=m.ActorKind.STAFF, id="stf-dana", name="Dana")
DELIVERY_TYPES = frozenset(
    {
        m.EventType.MESSAGE_SENT,
        m.EventType.MESSAGE_DELIVERED,
        m.EventType.BOUNCE_DETECTED,
        m.EventType.DELIVERY_FAILED,
        m.EventType.CUSTOMER_MARKED_SPAM,
    }
)


def outbound_email(
    conversation_id: str,
    message_id: str,
    email_message_id: str | None,
    recipients: tuple[str, ...] = ("jo@example.com",),
    account_id: str = "acct-1",
    at: datetime | None = None,
) -> m.ConversationEvent:
    """A staff reply by email: the event that teaches the bounce processor its route."""
    return m.ConversationEvent(
        event_id=f"evt-{message_id}",
        conversation_id=conversation_id,
        account_id=account_id,
        type=m.EventType.MESSAGE_ADDED,
        occurred_at=at or datetime.now(UTC),
        actor=DANA,
        payload=m.MessageAdded(
            message_id=message_id,
            direction=m.MessageDirection.OUTBOUND,
            visibility=m.MessageVisibility.REPLY,
            channel=m.Channel.EMAIL,
            recipients=recipients,
            email_message_id=email_message_id,
        ),
    )


def bounce_email(
    recipients: tuple[str, ...], at: datetime, bounce_id: str, status: str = "5.1.1"
) -> bytes:
    """A standard DSN (RFC 3464) that names no original message: no returned headers,
    as many servers send them (routed by recipient, processors/delivery/by_recipient.py)."""
    blocks = "\n".join(
        f"Final-Recipient: rfc822; {r}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} <{r}>: Recipient address rejected\n"
        for r in recipients
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        "To: support@acme.example\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: <{bounce_id}@mx.example.net>\n"
        f"Date: {format_datetime(at)}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\n"
        "\n"
        "--BB\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "--BB\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.example.net\n\n{blocks}"
        "--BB--\n"
    ).encode()


def publish(settings: Settings, events: list[m.ConversationEvent]) -> None:
    register_contract(Registry(settings.registry_url), settings.topics)
    with EventPublisher(settings) as publisher:
        futures = [publisher.publish(event) for event in events]
        for future in futures:
            future.result(timeout=30)


def decoder(settings: Settings, topic: str, model: type[Any]) -> Callable[[bytes], Any]:
    return ModelCodec(AvroSerde(Registry(settings.registry_url)), topic, model).decode


def delivery_events(settings: Settings) -> list[m.ConversationEvent]:
    """The delivery events on conversation-events (those the bounce processor appended)."""
    decode = decoder(settings, settings.topics.conversation_events, m.ConversationEvent)
    messages = consume(settings, settings.topics.conversation_events, 10**6, timeout=3)
    events = [decode(msg.value()) for msg in messages]
    return [e for e in events if e.type in DELIVERY_TYPES]


def records(settings: Settings, topic: str) -> list[Message]:
    return consume(settings, topic, 10**6, timeout=3)


def header(message: Message, name: str) -> str | None:
    for key, value in message.headers() or []:
        if key == name:
            return value.decode() if isinstance(value, bytes) else value
    return None
