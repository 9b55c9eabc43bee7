"""Kafka record header names that are part of the contract (docs/asyncapi.yaml shows them).

Producers and processors import these names; the AsyncAPI generator documents
them, so what is written and what is documented cannot drift. Values are UTF-8.
"""

# Every record on conversation-events: the event type, so consumers can filter
# without decoding Avro.
EVENT_TYPE = "event_type"

# delivery-notifications: which provider's format the raw body is in.
PROVIDER = "provider"
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "dsn")
# delivery-notifications: the same for every retry of one notification (the provider's
# own id, or a digest of the body), so the bounce processor can ignore a repeat.
IDEMPOTENCY_KEY = "idempotency_key"

# *.dlq: why a record was refused and where it came from.
DLQ_ERROR = "dlq.error"
DLQ_ERROR_CLASS = "dlq.error.class"
DLQ_SOURCE_TOPIC = "dlq.source.topic"
DLQ_SOURCE_PARTITION = "dlq.source.partition"
DLQ_SOURCE_OFFSET = "dlq.source.offset"
# Set on records dead-lettered as `wrong-partition`: the partition their key hashes to.
DLQ_EXPECTED_PARTITION = "dlq.expected.partition"
# Set when a dead letter could not carry its whole record (near the broker's size
# limit): what was cut; the record stays readable at its source offset.
DLQ_TRUNCATED = "dlq.truncated"
