"""What every faust shell of convotrail builds the same way: the app with the shared
settings and its own store, raw-bytes topics and tables, header lookup.

Shells exchange bytes with Kafka and decode with the project's codecs themselves
(Confluent framing, registry ids), so faust's own serializers are all "raw".
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import faust

from convotrail.settings import Settings
from processors.conversation.worker import WorkerOptions, app_settings, install_logging_fix
from processors.stall import StallDetector, Verdict

log = logging.getLogger(__name__)

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def new_app(settings: Settings, options: WorkerOptions, data_dir: Path) -> faust.App:
    """A faust app named `<prefix><app_id>`; its tables live in `data_dir` unless the
    options name one (never another processor's store: the crash guard wipes it)."""
    if options.data_dir is None:
        options = replace(options, data_dir=str(data_dir))
    app = faust.App(f"{settings.topics.prefix}{options.app_id}", **app_settings(settings, options))
    install_logging_fix(app)
    return app


def raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, **RAW)


def bytes_table(app: faust.App, name: str, settings: Settings) -> Any:
    """A changelog-backed table of bytes, co-partitioned with the input topics."""
    return app.Table(
        name, default=None, partitions=settings.partitions, key_type=bytes, value_type=bytes
    )


def header(event: Any, name: str) -> bytes | None:
    """A record header's value (faust gives headers as a list of pairs or a dict)."""
    headers = event.message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return cast(bytes, value)
    return None


def install_stall_guard(
    app: faust.App, topics: set[str], interval: float = 5.0, stall_after: float = 30.0
) -> StallDetector:
    """Watch the app's input partitions (processors/stall.py); the agents call
    `detector.processed` for what they finish. Returns the detector."""
    detector = StallDetector(stall_after=stall_after)

    def quiet() -> bool:
        # Not while partitions move or tables recover: faust pauses the input
        # partitions on purpose then, and resuming them early would process events
        # against half-restored tables.
        busy = app.rebalancing or getattr(app, "in_recovery", False)
        return bool(busy or not app.consumer or not getattr(app.consumer, "flow_active", True))

    async def check() -> None:
        if quiet():
            detector.reset()
            return
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in topics]
        if not assigned:
            return
        ends = await app.consumer.highwaters(*assigned)
        now = time.monotonic()
        for tp in assigned:
            end = ends.get(tp)
            position = await app.consumer.position(tp)
            if end is None or position is None or quiet():
                continue
            verdict = detector.observe((tp.topic, tp.partition), position, end, now)
            mark = detector.mark((tp.topic, tp.partition))
            if verdict is Verdict.RESEEK and mark is not None:
                log.warning("%s[%d] lags (end %d, at %s) and has not moved for %.0f s: "
                            "seeking it to %s again", tp.topic, tp.partition, end, mark,
                            stall_after, mark)  # fmt: skip
                app.consumer.resume_partitions({tp})
                await app.consumer.seek(tp, mark)
            elif verdict is Verdict.GIVE_UP:
                log.error("%s[%d] is still stalled after a seek: exiting so that the "
                          "worker is restarted", tp.topic, tp.partition)  # fmt: skip
                os._exit(75)  # EX_TEMPFAIL: a supervisor restarts it; nothing is lost

    @app.timer(interval=interval)  # type: ignore[untyped-decorator]
    async def guard_against_stalls() -> None:
        # The guard must never be what stops a worker: a rebalance can begin between
        # two of its awaits (aiokafka then says a partition "is not assigned"), and
        # an exception escaping a faust timer crashes the app. Start over next time.
        try:
            await check()
        except Exception:
            detector.reset()
            log.debug("stall guard: check abandoned", exc_info=True)

    return detector


def note_progress(detector: StallDetector, events: Iterable[Any]) -> None:
    """Tell the detector how far a batch got, per partition."""
    now = time.monotonic()
    for event in events:
        message = event.message
        detector.processed((message.topic, message.partition), message.offset + 1, now)
