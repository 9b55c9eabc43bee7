"""Typed serde errors: a processor catches `SerdeError` and sends the record to its DLQ."""


class SerdeError(Exception):
    """A record could not be encoded or decoded; the message says why."""

    reason = "serde-error"


class BadMagicByte(SerdeError):
    reason = "bad-magic-byte"


class TruncatedRecord(SerdeError):
    reason = "truncated-record"


class UnknownSchemaId(SerdeError):
    reason = "unknown-schema-id"


class UndecodableBody(SerdeError):
    reason = "undecodable-body"
