"""Log output of every long-running command: text for a terminal, JSON for a collector.

    configure(verbose=True, log_format="json")
    log.warning("... -> DLQ", extra=record_fields(topic, partition, offset, account))

`--log-format json` (CONVOTRAIL_LOG_FORMAT=json) writes one JSON object per line on
stderr: `ts` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`, the record
fields `account`, `conversation`, `topic`, `partition` and `offset` when the log call
carries them (`extra=record_fields(...)`, only on rare paths: dead letters, refusals,
processing errors, timers), and `exception` (the traceback as one string). Everything
a process would otherwise print raw on stderr goes through it too: librdkafka's logs
(convotrail/clients.py hands them to `logging`), Python warnings, an uncaught
exception, the one-line fatal error. A line never breaks: JSON escapes control
characters, and ASCII output escapes line separators and lone surrogates that text
taken from a record may hold.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

TEXT: Final = "text"
JSON: Final = "json"
FORMATS: Final = (TEXT, JSON)
# The record fields a log call may carry (`extra=`); nothing else from `extra` is output.
FIELDS: Final = ("account", "conversation", "topic", "partition", "offset")
TEXT_LAYOUT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# An id from a record is untrusted: a log field holds at most this many characters.
FIELD_CHARS: Final = 256

_current = TEXT


def record_fields(
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    account: str | None = None,
    conversation: str | None = None,
) -> dict[str, Any]:
    """The `extra=` of a log call about one record: the fields that are known."""
    found = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "account": account,
        "conversation": conversation,
    }
    return {name: value for name, value in found.items() if value is not None}


def _field(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    text = str(value)
    return text if len(text) <= FIELD_CHARS else text[:FIELD_CHARS] + "..."


class JsonFormatter(logging.Formatter):
    """One JSON object per log record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = _field(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII: U+2028, U+2029 and lone surrogates escaped, so the line stays one line
        # for every reader and is always encodable on stderr.
        return json.dumps(line, ensure_ascii=True, default=str)


def configure(verbose: bool, log_format: str = TEXT) -> None:
    """The root logger on stderr, INFO with `verbose` else WARNING, in `log_format`."""
    global _current
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: one of {', '.join(FORMATS)}")
    _current = log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == JSON else logging.Formatter(TEXT_LAYOUT))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True
    )
    # The registry client logs every HTTP request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if log_format == JSON:
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def current_format() -> str:
    return _current


def announce(message: str) -> bool:
    """A line the operator must see whatever the level (where a server listens, a
    summary): in JSON mode it is logged at INFO as a JSON line and True is returned;
    in text mode nothing happens and False is returned (the caller prints it)."""
    if _current != JSON:
        return False
    logger = logging.getLogger("convotrail")
    # handle(), not info(): shown even when the level is WARNING.
    logger.handle(logger.makeRecord(logger.name, logging.INFO, "(announce)", 0, message, (), None))
    return True


def fatal(message: str) -> bool:
    """The one-line error a command exits with, as a JSON line in JSON mode (True);
    False in text mode (the caller prints it)."""
    if _current != JSON:
        return False
    logging.getLogger("convotrail").error(message)
    return True


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    logging.getLogger("convotrail").critical("uncaught %s", kind.__name__,
                                             exc_info=(kind, error, traceback))  # fmt: skip


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("convotrail").critical(
        "uncaught %s in thread %s", args.exc_type.__name__, name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )  # fmt: skip
