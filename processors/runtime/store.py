"""A processor's keyed state for one partition: RocksDB holding what the changelog holds.

Each store of a processor has a compacted changelog topic, co-partitioned with the
inputs; partition N of the store lives in RocksDB at `<state dir>/<changelog>/<N>`.
Three rules make a crash at any instant cheap and harmless:

1. The open transaction's writes stay in memory (`put`, `delete`); `prepare` encodes
   them for the changelog, and only after the Kafka transaction has committed does
   `commit` write them to RocksDB, in one atomic WriteBatch together with the
   changelog offset they reach (the checkpoint). RocksDB never holds a value the
   changelog does not.
2. So RocksDB always equals the changelog up to its checkpoint, and a restart,
   clean or not, restores only the changelog records from the checkpoint on
   (`restore`), never the whole table.
3. An optional *schedule* (due time, tag) per value (a conversation's timers, a
   notification's expiry) is kept as an index in the same WriteBatch as the value
   it derives from, so it is exactly as durable, and `due` finds what is due
   without reading values. A schedule function that changes meaning (a new timer
   policy) changes its `schedule_version`, and the index is rebuilt on open.

Keys in RocksDB: b"v"+key (value), b"s"+due+len+key+tag (index), b"k"+key (the
key's index entries, to remove them on change), b"\\x00..." (metadata).
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

log = logging.getLogger(__name__)

V = TypeVar("V")

_VALUE, _INDEX, _KEY_INDEX = b"v", b"s", b"k"
_CHECKPOINT = b"\x00checkpoint"
_META = b"\x00meta"
_FORMAT = 1
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_I64 = struct.Struct(">q")
_MAX_DUE = (1 << 64) - 1

Schedule = list[tuple[int, str]]  # (due, epoch ms; tag)


class ValueCodec(Protocol[V]):
    def encode(self, value: V) -> bytes: ...

    def decode(self, data: bytes) -> V: ...


@dataclass(frozen=True)
class StoreSpec(Generic[V]):
    name: str
    codec: ValueCodec[V]
    schedule: Callable[[V], Schedule] | None = None
    # Bump when the schedule function's meaning changes (e.g. a hash of the policy):
    # the persisted index is then rebuilt from the values on open.
    schedule_version: str = ""
    # Decoded values kept in memory (committed ones; the open transaction's are
    # always in memory). The rest are read from RocksDB and decoded on demand.
    # Per store partition: a conversation's memory is a few KB decoded.
    cache_size: int = 10_000
    # A gauge (no labels) the runtime sets to the scheduled entries of this store on
    # this process, after each commit (e.g. convotrail_timers_pending).
    scheduled_gauge: Any = None
    # Count only the entries with this tag (`scheduled`, the gauge): a store that
    # schedules housekeeping next to what its gauge is about. None: every entry.
    # Changing it needs a new schedule_version, which recounts.
    gauge_tag: str | None = None

    def counted(self, entries: Schedule) -> int:
        if self.gauge_tag is None:
            return len(entries)
        return sum(1 for _, tag in entries if tag == self.gauge_tag)


@dataclass(frozen=True, slots=True)
class Due:
    key: bytes
    tag: str
    due: int  # epoch ms


def _index_key(due: int, key: bytes, tag: str) -> bytes:
    return _INDEX + _U64.pack(min(max(due, 0), _MAX_DUE)) + _U16.pack(len(key)) + key + tag.encode()


def _pack_schedule(entries: Schedule) -> bytes:
    out = bytearray()
    for due, tag in entries:
        raw = tag.encode()
        out += _U64.pack(min(max(due, 0), _MAX_DUE)) + _U16.pack(len(raw)) + raw
    return bytes(out)


def _unpack_schedule(data: bytes) -> Iterator[tuple[int, str]]:
    pos = 0
    while pos < len(data):
        (due,) = _U64.unpack_from(data, pos)
        (size,) = _U16.unpack_from(data, pos + 8)
        yield due, data[pos + 10 : pos + 10 + size].decode()
        pos += 10 + size


@cache
def _block_cache() -> Cache:
    # One block cache for every store of the process.
    return Cache(64 * 1024 * 1024)


def _options() -> Options:
    """RocksDB for point lookups: small memtables (a process holds a store per
    partition, and RocksDB's 64 MB default took a 1,000,000-conversation restore to
    574 MB RSS), bloom filters (most lookups of a new message or recipient miss, and
    without a filter each miss read blocks: 6% of the bounce worker), one shared
    block cache."""
    options = Options(raw_mode=True)
    options.set_write_buffer_size(8 * 1024 * 1024)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(_block_cache())
    options.set_block_based_table_factory(table)
    return options


class PartitionStore(Generic[V]):
    """One store, one partition: see the module docstring for the rules."""

    def __init__(self, spec: StoreSpec[V], directory: Path, partition: int) -> None:
        self.spec = spec
        self.partition = partition
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(directory), options=_options())
        self._dirty: dict[bytes, V | None] = {}
        self._encoded: dict[bytes, bytes] = {}
        self._cache: dict[bytes, V] = {}
        self._dirty_schedules: dict[bytes, tuple[V, Schedule]] = {}
        meta = self._db.get(_META)
        self.meta = json.loads(meta) if meta else {}
        self.scheduled = int(self.meta.get("scheduled", 0))
        raw = self._db.get(_CHECKPOINT)
        self.checkpoint: int | None = _I64.unpack(raw)[0] if raw else None
        if meta and self.meta.get("format") != _FORMAT:
            log.warning("store %s has format %s, not %s: rebuilding it from the changelog",
                        directory, self.meta.get("format"), _FORMAT)  # fmt: skip
            self.reset()
        elif spec.schedule and self.meta.get("schedule_version", "") != spec.schedule_version:
            self._rebuild_schedule()

    # -- reads and writes of the open transaction ------------------------------------

    def get(self, key: bytes) -> V | None:
        if key in self._dirty:
            return self._dirty[key]
        value = self._cache.get(key)
        if value is not None:
            return value
        raw = self._db.get(_VALUE + key)
        if raw is None:
            return None
        value = self.spec.codec.decode(raw)
        self._remember(key, value)
        return value

    def put(self, key: bytes, value: V, encoded: bytes | None = None) -> None:
        """Set `key` in the open transaction; `encoded` saves encoding it again when the
        caller has the changelog bytes already."""
        self._dirty[key] = value
        if encoded is None:
            self._encoded.pop(key, None)
        else:
            self._encoded[key] = encoded

    def delete(self, key: bytes) -> None:
        self._dirty[key] = None
        self._encoded.pop(key, None)

    def dirty_items(self) -> list[tuple[bytes, V | None]]:
        return list(self._dirty.items())

    @property
    def changed(self) -> bool:
        return bool(self._dirty)

    def _remember(self, key: bytes, value: V) -> None:
        cache = self._cache
        if len(cache) >= self.spec.cache_size:
            # Oldest first (dicts keep insertion order); a tenth at a time.
            for old in list(cache)[: max(1, self.spec.cache_size // 10)]:
                del cache[old]
        cache[key] = value

    # -- the transaction's end ----------------------------------------------------------

    def prepare(self) -> list[tuple[bytes, bytes | None]]:
        """The changelog records of the open transaction: one per changed key."""
        encode = self.spec.codec.encode
        return [
            (key, None if value is None else self._encoded.get(key) or encode(value))
            for key, value in self._dirty.items()
        ]

    def commit(self, records: list[tuple[bytes, bytes | None]], next_offset: int | None) -> None:
        """The transaction that carried `records` committed: write them (and the index
        they imply) to RocksDB with the checkpoint `next_offset`, in one batch."""
        batch = WriteBatch(raw_mode=True)
        for key, raw in records:
            value = self._dirty.get(key)
            schedule = (
                self._schedule_of(key, value) if value is not None and self.spec.schedule else []
            )
            self._write(batch, key, raw, schedule)
            if value is not None:
                self._remember(key, value)
            else:
                self._cache.pop(key, None)
        self._finish(batch, next_offset)
        self.abort()

    def abort(self) -> None:
        """The transaction aborted (or `commit` is done): forget its writes."""
        self._dirty.clear()
        self._encoded.clear()
        self._dirty_schedules.clear()

    def _write(self, batch: WriteBatch, key: bytes, raw: bytes | None, new: Schedule) -> None:
        if raw is None:
            batch.delete(_VALUE + key)
        else:
            batch.put(_VALUE + key, raw)
        if self.spec.schedule is None:
            return
        old_raw = self._db.get(_KEY_INDEX + key)
        old = list(_unpack_schedule(old_raw)) if old_raw else []
        if old == new:
            return
        for due, tag in old:
            batch.delete(_index_key(due, key, tag))
        for due, tag in new:
            batch.put(_index_key(due, key, tag), b"")
        if new:
            batch.put(_KEY_INDEX + key, _pack_schedule(new))
        else:
            batch.delete(_KEY_INDEX + key)
        self.scheduled += self.spec.counted(new) - self.spec.counted(old)

    def _finish(self, batch: WriteBatch, next_offset: int | None) -> None:
        if next_offset is not None:
            self.checkpoint = next_offset
            batch.put(_CHECKPOINT, _I64.pack(next_offset))
        self.meta = {"format": _FORMAT, "scheduled": self.scheduled,
                     "schedule_version": self.spec.schedule_version}  # fmt: skip
        batch.put(_META, json.dumps(self.meta).encode())
        self._db.write(batch)

    # -- restoring from the changelog -----------------------------------------------------

    def restore(self, records: Iterable[tuple[bytes, bytes | None]], next_offset: int) -> None:
        """Changelog records from the checkpoint on, in offset order, up to `next_offset`."""
        batch = WriteBatch(raw_mode=True)
        decode = self.spec.codec.decode
        schedule = self.spec.schedule
        for key, raw in records:
            new = schedule(decode(raw)) if raw is not None and schedule is not None else []
            self._write(batch, key, raw, new)
            self._cache.pop(key, None)
        self._finish(batch, next_offset)

    def reset(self) -> None:
        """Forget everything (the changelog no longer holds what the checkpoint says)."""
        self._db.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.directory), options=_options())
        self._cache.clear()
        self.abort()
        self.checkpoint = None
        self.scheduled = 0
        self.meta = {}

    def _keys_from(self, prefix: bytes) -> list[bytes]:
        keys: list[bytes] = []
        for key in self._db.keys(from_key=prefix):
            assert isinstance(key, bytes)
            if not key.startswith(prefix):
                break
            keys.append(key)
        return keys

    def _rebuild_schedule(self) -> None:
        assert self.spec.schedule is not None
        log.info("store %s: schedule version changed, rebuilding its index", self.directory)
        batch = WriteBatch(raw_mode=True)
        for prefix in (_INDEX, _KEY_INDEX):
            for key in self._keys_from(prefix):
                batch.delete(key)
        self._db.write(batch)
        self.scheduled = 0
        batch = WriteBatch(raw_mode=True)
        for key in self._keys_from(_VALUE):
            raw = self._db.get(key)
            assert isinstance(raw, bytes)
            entries = self.spec.schedule(self.spec.codec.decode(raw))
            for due, tag in entries:
                batch.put(_index_key(due, key[1:], tag), b"")
            self.scheduled += self.spec.counted(entries)
            if entries:
                batch.put(_KEY_INDEX + key[1:], _pack_schedule(entries))
        self._finish(batch, self.checkpoint)

    # -- the schedule ------------------------------------------------------------------------

    def due(self, now: int, limit: int = 1000) -> list[Due]:
        """Scheduled entries due at `now` (epoch ms), earliest first, as the open
        transaction sees them: a key changed in it counts with its new schedule."""
        if self.spec.schedule is None:
            return []
        found: list[Due] = []
        bound = _INDEX + _U64.pack(min(max(now, 0) + 1, _MAX_DUE))
        iterator = self._db.iter()
        iterator.seek(_INDEX)
        while iterator.valid() and len(found) < limit:
            raw = iterator.key()
            if raw >= bound:
                break
            (due,) = _U64.unpack_from(raw, 1)
            (size,) = _U16.unpack_from(raw, 9)
            key = raw[11 : 11 + size]
            if key not in self._dirty:
                found.append(Due(key, raw[11 + size :].decode(), due))
            iterator.next()
        del iterator
        for key, value in self._dirty.items():
            if value is not None:
                found += [Due(key, tag, due) for due, tag in self._schedule_of(key, value)
                          if due <= now]  # fmt: skip
        found.sort(key=lambda entry: entry.due)
        return found[:limit]

    def _schedule_of(self, key: bytes, value: V) -> Schedule:
        # Each timer tick asks for every changed key's schedule; compute it once per value.
        assert self.spec.schedule is not None
        known = self._dirty_schedules.get(key)
        if known is not None and known[0] is value:
            return known[1]
        entries = self.spec.schedule(value)
        self._dirty_schedules[key] = (value, entries)
        return entries

    def close(self) -> None:
        self._dirty.clear()
        self._cache.clear()
        self._db.close()
