"""The record key of every topic, built here and nowhere else.

A key decides a record's partition (murmur2 of its bytes), so it is part of each
topic's contract (docs/asyncapi.yaml): every producer, processor and sink that
needs one calls these functions. Conversations are keyed by conversation_id;
messages' receipts and statuses by message plus viewer or recipient (keyed by
message alone, compaction would keep one viewer per message); recipients by
account and address.
"""

from __future__ import annotations

from schemas import model as m


def conversation(account_id: str, conversation_id: str) -> bytes:
    """conversation-events, -state, -timeline, and the conversation memory store."""
    return conversation_id.encode()


def of_event(event: m.ConversationEvent) -> bytes:
    return conversation(event.account_id, event.conversation_id)


def read_receipt(receipt: m.ReadReceipt) -> bytes:
    return f"{receipt.message_id}/{receipt.viewer_kind.value}/{receipt.viewer_id}".encode()


def delivery_status(status: m.DeliveryStatus) -> bytes:
    return f"{status.message_id}/{status.recipient}".encode()


def message_track(message_id: str) -> bytes:
    """The receipts processor's store key: everything about one message."""
    return message_id.encode()


def recipient(account_id: str, address: str) -> bytes:
    """delivery-facts, suppressed-recipients, and the recipient health store."""
    return f"{account_id}/{address}".encode()


def message_ref(ref: str) -> bytes:
    """delivery-notifications and message-routes: a provider's name for a message."""
    return ref.encode()


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
