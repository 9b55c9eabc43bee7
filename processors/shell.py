"""What every faust shell of convotrail builds the same way: the app with the shared
settings and its own store, raw-bytes topics and tables, header lookup.

Shells exchange bytes with Kafka and decode with the project's codecs themselves
(Confluent framing, registry ids), so faust's own serializers are all "raw".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import faust

from convotrail.settings import Settings
from processors.conversation.worker import WorkerOptions, app_settings, install_logging_fix

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
