"""The SQL sink process: timeline, state, read receipts and delivery status into SQL.

    stats = run_sink(settings, "sqlite:///var/convotrail.db", max_idle_seconds=5)
    python -m connectors.sink --database-url postgresql+psycopg://...

Start-up (topics, registry, database), the consume loop and the waits of a
database outage; `SinkLoop` (loop.py) decodes, batches and writes, `Store`
(store.py) holds rows and positions in one transaction. The sink never gives
up on the database: opening it, reading positions and writing batches are
retried with capped, jittered backoff (one log line per retry, metrics
`convotrail_sink_database_up` and `convotrail_sink_caught_up` at 0), while the
consumer stays in its group with its partitions paused; the batch waiting for
the database is written as soon as it answers again.

Dead letters are at least once: a refused record is on `<topic>.dlq` before its
position is committed, so after a crash between the two it may be dead-lettered
twice (same source headers), never lost; retries within one process never send
one twice.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from confluent_kafka.schema_registry.error import SchemaRegistryError

from connectors.sink import metrics
from connectors.sink.backoff import Backoff
from connectors.sink.dead_letters import dlq_topic
from connectors.sink.errors import DatabaseUnavailable, SinkError
from connectors.sink.health import SinkHealth
from connectors.sink.loop import CONSUMER_DEFAULTS, CONSUMER_GUARANTEES, SinkLoop
from connectors.sink.stats import SinkStats
from connectors.sink.store import Store, default_database_url, open_store
from convotrail import clients, health, logs
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings
from convotrail.topics import TopicSpec, ensure_topics, topic_specs
from convotrail.topics import connect as connect_to_kafka

log = logging.getLogger(__name__)

__all__ = [
    "CONSUMER_DEFAULTS",
    "CONSUMER_GUARANTEES",
    "DEFAULT_GROUP",
    "SinkStats",
    "dlq_topic",
    "main",
    "run_sink",
    "run_until_signalled",
]

DEFAULT_GROUP = "convotrail-sink"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often convotrail_consumer_lag is refreshed (from cached fetch responses).
LAG_INTERVAL = 2.0


def sink_sources(settings: Settings) -> list[str]:
    """What the sink reads: timeline, state, read receipts, delivery status."""
    names = settings.topics
    return [
        names.conversation_timeline,
        names.conversation_state,
        names.read_receipts,
        names.delivery_status,
    ]


def dlq_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The sink's dead-letter topics (created on start when missing), as in topic_specs."""
    wanted = {dlq_topic(topic) for topic in sink_sources(settings)}
    return [spec for spec in topic_specs(settings) if spec.name in wanted]


def _check_topics(settings: Settings, sources: list[str]) -> None:
    # A bounded wait, then one line naming KAFKA_BOOTSTRAP_SERVERS (or the credentials).
    admin, metadata = connect_to_kafka(settings, settings.connect_timeout)
    existing = metadata.topics
    missing = [topic for topic in sources if topic not in existing]
    if missing:
        raise SinkError(
            f"topics {', '.join(missing)} do not exist: run `convotrail topics create` first"
        )
    # Only the missing ones: a DLQ is not co-partitioned with anything, so an
    # existing one with another partition count is fine.
    specs = [spec for spec in dlq_topic_specs(settings) if spec.name not in existing]
    for outcome in ensure_topics(admin, specs):
        if outcome.created:
            log.info("created dead-letter topic %s", outcome.name)


def _open_store(database_url: str, stop: threading.Event, status: SinkHealth) -> Store | None:
    """The store, waiting out an unreachable database; None when stopped meanwhile."""
    backoff = Backoff()
    while True:
        status.beat()
        try:
            store = open_store(database_url)
            status.database(True)
            metrics.CAUGHT_UP.set(1)
            return store
        except DatabaseUnavailable as exc:
            status.database(False)
            metrics.CAUGHT_UP.set(0)
            metrics.RETRIES.inc()
            delay = backoff.next()
            # One line per retry, no traceback: the same words as a write's retry.
            log.warning(
                "database unavailable while opening it (%s); retry %d in %.1fs",
                exc,
                backoff.attempts,
                delay,
            )
            if stop.wait(delay):
                return None


def run_sink(
    settings: Settings,
    database_url: str,
    *,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = 500,
    batch_timeout: float = 0.1,
    stop: threading.Event | None = None,
    max_idle_seconds: float | None = None,
    http: tuple[str, int] | None = None,
) -> SinkStats:
    """Sink the topics into the database until `stop` is set or it has been idle long enough.

    Idle means: partitions assigned, nothing pending, and no record for
    `max_idle_seconds` (None: run until stopped). A database outage is waited
    out, however long; it does not count as idle. `http` (host, port): serve
    /metrics, /healthz and /readyz there (connectors/sink/health.py says what they mean)
    from the moment Kafka and the registry have answered, the database wait included.
    """
    if batch_size < 1:
        raise SinkError(f"batch_size={batch_size}: must be at least 1")
    stop = stop or threading.Event()
    sources = sink_sources(settings)
    _check_topics(settings, sources)
    clients.checked_registry(settings)
    status = SinkHealth(stop)
    server = health.serve(http[0], http[1], status.probe()) if http is not None else None
    try:
        return _run(settings, database_url, group_id, sources, batch_size, batch_timeout,
                    stop, max_idle_seconds, status)  # fmt: skip
    finally:
        status.stopping = True
        if server is not None:
            server.shutdown()
            server.server_close()


def _run(
    settings: Settings,
    database_url: str,
    group_id: str,
    sources: list[str],
    batch_size: int,
    batch_timeout: float,
    stop: threading.Event,
    max_idle_seconds: float | None,
    status: SinkHealth,
) -> SinkStats:
    store = _open_store(database_url, stop, status)
    if store is None:
        return SinkStats()
    try:

        def wait(seconds: float) -> bool:
            status.beat()
            return not stop.wait(seconds)

        try:
            loop = SinkLoop(settings, store, group_id, sources, wait, status)
        except SchemaRegistryError as exc:
            raise SinkError(f"schema registry at {settings.registry_url}: {exc}") from exc
        log.info(
            "sink %s -> %s (group %s, batches of %d or %.2fs)",
            ", ".join(loop.topics), store.url, group_id, batch_size, batch_timeout,
        )  # fmt: skip
        loop.consumer.subscribe(
            loop.topics, on_assign=loop.on_assign, on_revoke=loop.on_revoke, on_lost=loop.on_lost
        )
        clean = False
        try:
            _consume(loop, stop, batch_size, batch_timeout, max_idle_seconds)
            try:
                loop.flush()
            except DatabaseUnavailable as exc:
                loop.discard(f"stopping while the database is unavailable ({exc})")
            clean = True
        finally:
            loop.close(flush=clean)
        log.info("sink stopped: %s", loop.stats.describe())
        return loop.stats
    finally:
        store.close()


def _consume(
    loop: SinkLoop,
    stop: threading.Event,
    batch_size: int,
    batch_timeout: float,
    max_idle_seconds: float | None,
) -> None:
    # consume() waits its whole timeout unless the batch fills: short waits, and never
    # past the open batch's deadline, so a row is written about batch_timeout after
    # its record arrived, not twice that.
    poll_timeout = max(0.005, min(batch_timeout / 4, 0.1))
    next_lag = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_lag:
            next_lag = time.monotonic() + LAG_INTERVAL
            loop.report_lag()
        wanted = max(1, batch_size - len(loop.batch))
        wait = poll_timeout
        if loop.batch:
            wait = max(0.0, min(wait, loop.batch_started + batch_timeout - time.monotonic()))
        _poll(loop, wanted, wait)
        if loop.due(batch_size, batch_timeout):
            _write(loop, stop, poll_timeout)
        if (
            max_idle_seconds is not None
            and loop.assigned
            and not loop.batch
            and time.monotonic() - loop.activity >= max_idle_seconds
        ):
            log.info("no record for %.1fs: stopping", max_idle_seconds)
            return


def _poll(loop: SinkLoop, wanted: int, wait: float) -> None:
    loop.health.beat()
    for message in loop.consumer.consume(num_messages=wanted, timeout=wait):
        error = message.error()
        if error is not None:
            if error.fatal():
                raise SinkError(f"consumer failed: {error.str()}")
            log.warning("consumer error (librdkafka retries): %s", error.str())
            continue
        loop.handle(message)
        loop.activity = time.monotonic()


def _write(loop: SinkLoop, stop: threading.Event, poll_timeout: float) -> None:
    """Write the due batch, waiting out a database outage with backoff.

    While waiting, the partitions are paused and the consumer keeps polling: it
    stays in its group (rebalance callbacks run; a revocation drops the batch for
    the new owner) and reads nothing new, so memory does not grow with the outage.
    """
    backoff = Backoff()
    while True:
        try:
            loop.flush()
        except DatabaseUnavailable as exc:
            delay = backoff.next()
            loop.report_outage("writing a batch", exc, delay, backoff.attempts)
            loop.pause()
            deadline = time.monotonic() + delay
            while not stop.is_set() and time.monotonic() < deadline and loop.batch:
                _poll(loop, 1, min(poll_timeout, max(0.0, deadline - time.monotonic())))
            if stop.is_set() or not loop.batch:
                loop.resume()
                return
            continue
        if backoff.attempts:
            log.warning(
                "database available again after %d retries: batch written", backoff.attempts
            )
            loop.resume()
        loop.health.database(True)
        metrics.CAUGHT_UP.set(1)
        return


# -- process entry ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.sink",
        description=(
            "Sink conversation-timeline and conversation-state into SQLite or PostgreSQL, "
            "exactly once (positions are kept in the database). Kafka and the registry "
            "come from the environment like every convotrail process."
        ),
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: sqlite:///$CONVOTRAIL_HOME/convotrail.db); "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help="Consumer group id.")
    parser.add_argument("--batch-size", type=int, default=500, help="Records per transaction.")
    parser.add_argument(
        "--batch-timeout", type=float, default=0.1, help="Seconds before a partial batch commits."
    )
    parser.add_argument(
        "--max-idle-seconds", type=float, default=None, help="Exit after this long without records."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default=logs.TEXT, help="text or json lines."
    )
    return parser


def run_until_signalled(
    settings: Settings,
    database_url: str,
    *,
    group_id: str = DEFAULT_GROUP,
    batch_size: int = 500,
    batch_timeout: float = 0.1,
    max_idle_seconds: float | None = None,
    http: tuple[str, int] | None = None,
) -> SinkStats:
    """`run_sink` in the main thread of a process: SIGTERM or SIGINT stops it cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: writing the current batch and stopping", signum)
        stop.set()

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        return run_sink(
            settings,
            database_url,
            group_id=group_id,
            batch_size=batch_size,
            batch_timeout=batch_timeout,
            stop=stop,
            max_idle_seconds=max_idle_seconds,
            http=http,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM/SIGINT (or idle); 0 on a clean stop, 1 on an error."""
    args = _parser().parse_args(argv)
    logs.configure(verbose=True, log_format=args.log_format)
    logging.getLogger().setLevel(args.log_level.upper())
    try:
        settings = Settings.from_env()
        stats = run_until_signalled(
            settings,
            args.database_url or default_database_url(settings),
            group_id=args.group,
            batch_size=args.batch_size,
            batch_timeout=args.batch_timeout,
            max_idle_seconds=args.max_idle_seconds,
        )
    except ConvotrailError as exc:
        if not logs.fatal(f"error: {exc}"):
            print(f"error: {exc}", file=sys.stderr)
        return 1
    if not logs.announce(stats.describe()):
        print(stats.describe())
    return 0
