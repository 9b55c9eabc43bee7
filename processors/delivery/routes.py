"""Where a delivery notification belongs: message refs learned from outbound messages.

A provider names a message by the id it knows: the platform's id when the sender
stamped it as a custom argument, the RFC 5322 Message-ID, or the provider's own id.
The conversation events that introduce a message carry those ids, so each becomes a
route, filed under the ref (`message-routes`, keyed like `delivery-notifications`)
so that a notification and its route meet on the same partition.

Some bounces name no message at all (no returned headers, or only the bounce's own
Message-ID). For those, each recipient of an outbound message also gets a route
under `recipient <address>` (schemas/keys.py): the recipient index, where such a
bounce is keyed and matched to the most recent message sent to that address
(processors/delivery/by_recipient.py).

Pure: no I/O.
"""

from __future__ import annotations

from processors.delivery.notification import normalize_address, normalize_message_id
from schemas import keys
from schemas import model as m


def routes_of(event: m.ConversationEvent) -> list[m.MessageRoute]:
    """The routes an event teaches, its message refs' then its recipients'; [] for
    events that introduce no outbound message."""
    payload = event.payload
    if isinstance(payload, m.MessageAdded):
        if payload.direction is not m.MessageDirection.OUTBOUND:
            return []
        if payload.visibility is not m.MessageVisibility.REPLY:
            return []  # an internal note is never mailed
        refs = [payload.message_id]
        if payload.email_message_id:
            refs.append(normalize_message_id(payload.email_message_id))
        recipients = [normalize_address(r) for r in payload.recipients]
    elif isinstance(payload, m.MessageSent):
        refs = [payload.message_id]
        if payload.provider_message_id:
            refs.append(payload.provider_message_id.strip())
        recipients = [normalize_address(payload.recipient)]
    else:
        return []
    recipients = [r for r in dict.fromkeys(recipients) if r]
    refs += [keys.recipient_route(r).decode() for r in recipients]
    return [
        m.MessageRoute(
            message_ref=ref,
            message_id=payload.message_id,
            conversation_id=event.conversation_id,
            account_id=event.account_id,
            recipients=tuple(recipients),
            learned_from=event.event_id,
            sent_at=event.occurred_at,
        )
        for ref in dict.fromkeys(ref for ref in refs if ref)
    ]
