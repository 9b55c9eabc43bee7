"""The record key of every topic, built here and nowhere else.

A key decides a record's partition (murmur2 of its bytes), so it is part of each
topic's contract (docs/asyncapi.yaml): every producer, processor and sink that
needs one calls these functions.

Every identity is scoped by account (ids are unique per account only, see
docs/events.md): a key is its components joined by `|`, account first. Ids match
schemas/field_rules.py's ID_PATTERN, which has no `|` (it does allow `/`, so the
keys before this version, `msg-1/CUSTOMER/cus-9`, were ambiguous), so no two
distinct component tuples give equal keys; only the LAST component may be free
text (an email address, a provider's message ref), because everything after the
last separator belongs to it.

| key | components | topics and stores |
|---|---|---|
| `conversation` | account, conversation_id | conversation-events, -state, -timeline, memory |
| `read_receipt` | account, message_id, viewer kind, viewer_id | read-receipts |
| `delivery_status` | account, message_id, recipient | delivery-status |
| `message_track` | account, message_id | the receipts processor's store |
| `recipient` | account, address | delivery-facts, suppressed-recipients, recipient health |
| `message_ref` | ref | delivery-notifications, message-routes, the delivery ledger |
| `recipient_route` | `recipient <address>` | the same three, for what names no message |

`message_ref` alone has no account: a provider's notification names its message
by a ref and usually cannot say the account, and the route must meet it on the
partition of that ref. The ledger stores one route per account under the ref
(processors/delivery/ledger.py) and refuses to guess between owners.

`recipient_route` files what a notification naming no message is routed by (the
recipient index, processors/delivery/by_recipient.py) in the same key space. The
space and angle brackets keep it apart from every message ref: platform ids match
ID_PATTERN (neither character), RFC 5322 Message-IDs are stored without their `<>`
and hold no space, and providers' ids have neither.

`legacy_*` give the keys of the versions before account scoping, to read state
those versions wrote (docs/ARCHITECTURE.md, "Account scoping and the upgrade").
"""

from __future__ import annotations

from schemas import model as m

SEPARATOR = "|"


def _join(*parts: str) -> bytes:
    return SEPARATOR.join(parts).encode()


def split(key: bytes, parts: int) -> tuple[str, ...]:
    """The components of a key made here (the last one may hold anything)."""
    return tuple(key.decode().split(SEPARATOR, parts - 1))


def conversation(account_id: str, conversation_id: str) -> bytes:
    """conversation-events, -state, -timeline, and the conversation memory store."""
    return _join(account_id, conversation_id)


def of_event(event: m.ConversationEvent) -> bytes:
    return conversation(event.account_id, event.conversation_id)


def read_receipt(receipt: m.ReadReceipt) -> bytes:
    return _join(
        receipt.account_id, receipt.message_id, receipt.viewer_kind.value, receipt.viewer_id
    )


def delivery_status(status: m.DeliveryStatus) -> bytes:
    return _join(status.account_id, status.message_id, status.recipient)


def message_track(account_id: str, message_id: str) -> bytes:
    """The receipts processor's store key: everything about one message."""
    return _join(account_id, message_id)


def recipient(account_id: str, address: str) -> bytes:
    """delivery-facts, suppressed-recipients, and the recipient health store."""
    return _join(account_id, address)


def message_ref(ref: str) -> bytes:
    """delivery-notifications and message-routes: a provider's name for a message."""
    return ref.encode()


RECIPIENT_ROUTE_PREFIX = "recipient <"


def recipient_route(address: str) -> bytes:
    """delivery-notifications and message-routes: a notification that names no message,
    and the recipient index entry it is routed by, filed under its (normalized) address."""
    return f"{RECIPIENT_ROUTE_PREFIX}{address}>".encode()


def recipient_of_route(ref: str) -> str | None:
    """The address of a `recipient_route` ref; None for a message ref."""
    if ref.startswith(RECIPIENT_ROUTE_PREFIX) and ref.endswith(">"):
        return ref[len(RECIPIENT_ROUTE_PREFIX) : -1]
    return None


def legacy_conversation(conversation_id: str) -> bytes:
    """The conversation key before account scoping (bare conversation_id)."""
    return conversation_id.encode()


def legacy_message_track(message_id: str) -> bytes:
    """The receipts store key before account scoping (bare message_id)."""
    return message_id.encode()


def legacy_recipient(account_id: str, address: str) -> bytes:
    """The recipient key before account scoping was unambiguous (`account/address`)."""
    return f"{account_id}/{address}".encode()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a key lands on: Java's murmur2, which every producer of the project
    uses (convotrail/clients.py, `murmur2_random`), as Kafka's Java clients do."""
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


def _murmur2(data: bytes) -> int:
    # org.apache.kafka.common.utils.Utils.murmur2, on unsigned 32-bit arithmetic.
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length & ~3
    extra = length % 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h
