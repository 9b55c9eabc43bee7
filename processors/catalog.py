"""The processors a worker process can run, by name (`convotrail worker --processor`)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry.error import SchemaRegistryError

from convotrail import clients
from convotrail.errors import ConfigError
from convotrail.settings import Settings
from processors.runtime.errors import RuntimeFailure
from processors.runtime.topology import Topology

NAMES = ("conversation", "bounces", "receipts")


def build(
    name: str,
    settings: Settings,
    *,
    timers: bool = True,
    policy_path: str | None = None,
    replay: bool = False,
    bounce_wait: float = 600.0,
    recipient_window_days: float = 7.0,
) -> Topology[Any]:
    """The topology of processor `name`; a registry that cannot be reached or refuses
    the schemas is one line, like every start-up failure."""
    clients.checked_registry(settings)
    try:
        if name == "conversation":
            from processors.conversation.shell import ConversationOptions, topology
            from processors.conversation.timers import TimerPolicy, policy_from_json

            policy = TimerPolicy()
            if policy_path is not None:
                try:
                    policy = policy_from_json(json.loads(Path(policy_path).read_text()))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"timer policy {policy_path}: {exc}") from None
            options = ConversationOptions(timers=timers, timer_policy=policy, replay=replay)
            return topology(settings, options)
        if name == "bounces":
            from processors.delivery.shell import BounceOptions
            from processors.delivery.shell import topology as bounce_topology

            return bounce_topology(
                settings,
                BounceOptions(
                    wait=timedelta(seconds=bounce_wait),
                    recipient_window=timedelta(days=recipient_window_days),
                ),
            )
        if name == "receipts":
            from processors.receipts.shell import topology as receipts_topology

            return receipts_topology(settings)
    except (SchemaRegistryError, OSError) as exc:
        raise RuntimeFailure(
            f"schema registry at {settings.registry_url}: {type(exc).__name__}: {exc}: "
            "check SCHEMA_REGISTRY_URL"
        ) from exc
    raise ConfigError(f"unknown processor {name!r} (one of {', '.join(NAMES)})")
