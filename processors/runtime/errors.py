"""What can go wrong in the stream runtime, as types the loop can act on."""

from __future__ import annotations

from convotrail.errors import ConvotrailError


class RuntimeFailure(ConvotrailError):
    """The runtime cannot go on; the message is one line naming the cause and the fix."""


class FatalKafkaError(RuntimeFailure):
    """A client error no retry can fix (fenced, not authorized, misconfigured)."""


class TopologyError(RuntimeFailure):
    """The topics do not fit the processor (missing, or partition counts differ)."""


class StateDirLocked(RuntimeFailure):
    """Another process works on the same state directory."""


class AbortableError(Exception):
    """The open transaction must be aborted; the loop rewinds to the committed positions."""
