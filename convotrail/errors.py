"""Errors raised by the process wiring. Each carries a one-line, actionable message."""

import errno


class ConvotrailError(Exception):
    """Base class: the CLI prints `str(error)` on one line and exits non-zero."""


class ConfigError(ConvotrailError):
    """A setting is missing or malformed; the message names the variable."""


class StackError(ConvotrailError):
    """The local Kafka/registry stack could not be fetched, started or stopped.

    The message names the problem and the fix; `log_path` points at the log
    that explains more, when there is one.
    """

    def __init__(self, message: str, log_path: str | None = None) -> None:
        full = f"{message} (log: {log_path})" if log_path else message
        super().__init__(full)
        self.log_path = log_path


class TopicError(ConvotrailError):
    """Topic administration failed (creation refused, partition mismatch)."""


class PortInUse(ConvotrailError):
    """A port a process was told to listen on cannot be bound."""


def metrics_port_error(host: str, port: int, error: OSError) -> PortInUse:
    """One line for a `--metrics-port` that cannot be bound, naming the setting to change."""
    in_use = error.errno == errno.EADDRINUSE
    why = "is already in use" if in_use else f"cannot be bound ({error.strerror})"
    return PortInUse(
        f"metrics port {host}:{port} {why}: choose another --metrics-port "
        "(CONVOTRAIL_METRICS_PORT) or stop the process holding it"
    )
