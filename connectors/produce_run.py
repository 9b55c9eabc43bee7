"""`convotrail produce` as a process: the file, Kafka, the registry, the progress bar.

Everything that can fail before the first line (the file, the broker, the topic,
the registry) is one line naming the fix (ConvotrailError, exit 1); the lines
themselves are connectors/produce_file.py's.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from connectors.produce_file import ProduceSummary, produce_lines, read_lines
from connectors.publisher import EventPublisher
from convotrail.errors import ConvotrailError, TopicError
from convotrail.settings import Settings
from convotrail.terminal import escape
from convotrail.topics import KafkaUnreachable, connect


def open_input(path: str) -> Any:
    """The file as bytes (lines are decoded one by one), or one line naming the problem."""
    if path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")  # closed by the caller's with
    except OSError as exc:
        raise ConvotrailError(
            f"cannot read {escape(path)}: {exc.strerror or exc}: give an existing JSON-lines "
            "file, or - for standard input"
        ) from None


def publish_file(
    settings: Settings, stream: IO[bytes], path: str, quiet: bool, timeout: float
) -> ProduceSummary:
    """Check Kafka, the topic and the registry (one line each when they fail), then
    publish every line of `stream` with a progress bar on stderr."""
    # Refused credentials or a missing topic: one line now, not events waiting in
    # librdkafka's queue until their delivery times out.
    topic = settings.topics.conversation_events
    try:
        metadata = connect(settings)[1]
    except KafkaUnreachable as exc:
        if "did not answer" not in str(exc):
            raise
        raise KafkaUnreachable(
            f"{exc}: is it running? (`convotrail stack status`, or set KAFKA_BOOTSTRAP_SERVERS)"
        ) from None
    if topic not in metadata.topics:
        raise TopicError(f"topic {topic} does not exist: run `convotrail topics create`")
    try:
        publisher = EventPublisher(
            settings, producer_config={"message.timeout.ms": int(timeout * 1000)}
        )
    except ConvotrailError:
        raise
    except Exception as exc:  # the registry client raises its own types (requests, ...)
        raise ConvotrailError(
            f"schema registry at {settings.registry_url} did not take the schema: "
            f"{type(exc).__name__}: {escape(str(exc))[:200]}: is it running? (`convotrail "
            "stack status`, or set SCHEMA_REGISTRY_URL)"
        ) from None
    err = Console(stderr=True)
    total = None if path == "-" else os.fstat(stream.fileno()).st_size
    columns = [TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TextColumn("bytes")]
    try:
        with Progress(*columns, console=err, disable=quiet or total is None) as progress:
            task = progress.add_task("publish", total=total)
            return produce_lines(
                read_lines(stream),
                publisher,
                on_line=lambda size: progress.advance(task, size),
                on_refusal=lambda refusal: err.print(
                    f"refused {escape(str(refusal))}", markup=False, highlight=False,
                    soft_wrap=True,
                ),
                flush_timeout=timeout,
            )  # fmt: skip
    finally:
        # What is still in flight was waited for already (flush_timeout): counted, not
        # waited for again.
        publisher.close(timeout=0.5)
