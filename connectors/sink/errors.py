"""Errors of the SQL sink. Each message names the database, topic or record concerned.

`SinkError` derives from `ConvotrailError`, so the CLI prints it on one line and
exits non-zero. `RefusedRecord` is different: it never escapes the sink loop, it
is the reason a single record went to a dead-letter topic.
"""

from __future__ import annotations

from convotrail.errors import ConvotrailError


class SinkError(ConvotrailError):
    """The sink cannot go on: database unreachable or unsupported, topics missing, DLQ down."""


class UnsupportedDatabase(SinkError):
    """The database URL names a dialect the sink does not speak (SQLite and PostgreSQL only)."""


class SchemaOutOfDate(SinkError):
    """A reader opened a database whose schema is not at the revision this code expects."""


class ConversationNotFound(SinkError):
    """The sink database holds nothing for a conversation the user asked about."""


class AmbiguousId(SinkError):
    """A lookup without an account names an id that several accounts use."""


class DeadLetterFailed(SinkError):
    """A refused record could not be written to its DLQ topic, so its offset is not recorded."""


class SnapshotError(SinkError):
    """A stored state snapshot does not fit the current ConversationState schema."""


class RefusedRecord(Exception):
    """One record the sink cannot store (it goes to the DLQ); `reason` is the short tag."""

    reason = "refused-record"


class UnkeyedTombstone(RefusedRecord):
    """A tombstone on conversation-state whose key is missing or not UTF-8 text."""

    reason = "unkeyed-tombstone"


class MessageNotFound(SinkError):
    """The sink database holds no receipts or delivery status for a message the user asked about."""


class DatabaseUnavailable(SinkError):
    """The database is not there right now (connection refused or lost, locked): wait, retry."""


class DatabaseMisconfigured(SinkError):
    """The database URL cannot work (unopenable path, wrong credentials, no such database)."""
