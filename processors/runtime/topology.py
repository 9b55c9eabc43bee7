"""What a processor declares to the runtime: its inputs, handlers, stores and timers.

A processor module builds one `Topology` in a function of its settings; the
handlers are top-level functions of that module taking (task, record). Nothing
here touches Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from processors.runtime.store import Due, StoreSpec
from processors.runtime.task import Record, Task

A = TypeVar("A")

Handler = Callable[[Task[A], Record], None]
DueHandler = Callable[[Task[A], str, Due], None]  # task, store name, entry
TaskHook = Callable[[Task[A]], None]


@dataclass(frozen=True)
class Topology(Generic[A]):
    # The consumer group, the transactional.id's prefix and the changelogs' prefix.
    app_id: str
    # The processor's own context, handed to handlers as `task.app`.
    app: A
    # Input topic -> handler of its records.
    handlers: Mapping[str, Handler[A]]
    # Input topic -> its dead-letter topic.
    dead_letters: Mapping[str, str]
    stores: tuple[StoreSpec[Any], ...] = ()
    # Called with each scheduled store entry that is due (timers, expiries).
    on_due: DueHandler[A] | None = None
    # Called for every task before the transaction commits: deferred outputs.
    before_commit: TaskHook[A] | None = None
    # Epoch ms for a task (replay mode's event-time clock); None: the wall clock.
    clock: Callable[[Task[A]], int] | None = None
    # Several inputs meet by key (the same partition number of each must be on one
    # instance): the group then uses the range assignor, which guarantees that, at
    # the price of eager rebalances. librdkafka has no co-partitioning cooperative
    # assignor.
    co_partitioned: bool = False
    # Topics the processor writes to, checked to exist at start.
    outputs: tuple[str, ...] = field(default=())
    # Inputs whose bad records another processor dead-letters (conversation-events is
    # the conversation processor's): records of them on the wrong partition are
    # skipped and counted here, so one bad record makes one dead letter.
    observed: frozenset[str] = frozenset()

    @property
    def inputs(self) -> list[str]:
        return list(self.handlers)

    def changelog(self, store: str) -> str:
        """A store's changelog topic: `<app_id>-<store>-changelog`, as Kafka Streams and
        faust name them (app_id carries the topic prefix), so that the changelog a
        faust worker wrote is restored as it is."""
        return f"{self.app_id}-{store}-changelog"
