"""Demo traffic anchored to the present: generated history that ends now.

The validator refuses events more than a day in the future, and a demo should
look recent, so the generated stream is placed to end at `now` unless the user
pins `start` (then the output is fully reproducible by seed and start).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from connectors.traffic import TrafficProfile, generate
from schemas.model import ConversationEvent

_PROBE_START = datetime(2026, 1, 1).astimezone()


def recent_history(
    seed: int,
    conversations: int,
    now: datetime,
    start: datetime | None = None,
    profile: TrafficProfile | None = None,
) -> list[ConversationEvent]:
    """`conversations` conversations of traffic; the last event at `now` unless `start` is set."""
    if start is not None:
        return generate(seed, conversations, start, profile)
    probe = generate(seed, conversations, _PROBE_START, profile)
    if not probe:
        return probe
    span: timedelta = probe[-1].occurred_at - probe[0].occurred_at
    return generate(seed, conversations, now - span, profile)
