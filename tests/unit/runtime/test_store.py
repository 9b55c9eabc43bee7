"""The local store's rules (processors/runtime/store.py) on a real RocksDB."""

from __future__ import annotations

from pathlib import Path

from processors.runtime.store import PartitionStore, StoreSpec


class Text:
    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, data: bytes) -> str:
        return data.decode()


def due_of(value: str) -> list[tuple[int, str]]:
    # "name@100,200": due at 100 and 200 (tags t100, t200).
    _, _, times = value.partition("@")
    return [(int(t), f"t{t}") for t in times.split(",") if t]


def store(path: Path, **spec: object) -> PartitionStore[str]:
    options: dict[str, object] = {"schedule": due_of, "schedule_version": "1", **spec}
    return PartitionStore(StoreSpec("s", Text(), **options), path, 0)  # type: ignore[arg-type]


def test_writes_reach_rocksdb_only_with_the_commit_and_its_checkpoint(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.checkpoint is None
    s.put(b"a", "one")
    s.put(b"b", "two")
    s.delete(b"b")
    assert s.get(b"a") == "one" and s.get(b"b") is None
    records = s.prepare()
    assert records == [(b"a", b"one"), (b"b", None)]
    s.close()
    reopened = store(tmp_path)  # a crash before the commit: nothing was written
    assert reopened.get(b"a") is None and reopened.checkpoint is None
    reopened.put(b"a", "one")
    reopened.commit(reopened.prepare(), next_offset=7)
    reopened.close()
    again = store(tmp_path)
    assert again.get(b"a") == "one" and again.checkpoint == 7


def test_an_abort_forgets_the_open_writes(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.put(b"a", "one")
    s.commit(s.prepare(), 1)
    s.put(b"a", "changed")
    s.put(b"c", "new")
    s.abort()
    assert s.get(b"a") == "one" and s.get(b"c") is None and not s.changed


def test_restoring_applies_changelog_records_in_order_and_moves_the_checkpoint(
    tmp_path: Path,
) -> None:
    s = store(tmp_path)
    s.restore([(b"a", b"1"), (b"b", b"x@5"), (b"a", b"2"), (b"c", b"gone"), (b"c", None)], 10)
    assert (s.get(b"a"), s.get(b"b"), s.get(b"c")) == ("2", "x@5", None)
    assert s.checkpoint == 10 and s.scheduled == 1
    assert [(d.key, d.tag, d.due) for d in s.due(5)] == [(b"b", "t5", 5)]
    # Restoring the same records again (a checkpoint behind the store) changes nothing.
    s.restore([(b"a", b"1"), (b"b", b"x@5"), (b"a", b"2")], 10)
    assert s.get(b"a") == "2" and s.scheduled == 1


def test_the_schedule_follows_committed_values_and_the_open_transaction(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.put(b"a", "a@100,300")
    s.put(b"b", "b@200")
    assert [d.tag for d in s.due(250)] == ["t100", "t200"]  # open transaction's view
    s.commit(s.prepare(), 2)
    assert s.scheduled == 3
    assert [(d.key, d.due) for d in s.due(250)] == [(b"a", 100), (b"b", 200)]
    s.put(b"a", "a@300")  # the 100 ms timer fired: a changed value, not yet committed
    assert [(d.key, d.due) for d in s.due(250)] == [(b"b", 200)]
    s.commit(s.prepare(), 3)
    s.delete(b"b")
    s.commit(s.prepare(), 4)
    assert s.due(250) == [] and [d.due for d in s.due(10_000)] == [300] and s.scheduled == 1
    s.close()
    assert [d.due for d in store(tmp_path).due(10_000)] == [300]  # durable


def test_a_new_schedule_version_rebuilds_the_index_from_the_values(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.put(b"a", "a@100")
    s.commit(s.prepare(), 1)
    s.close()

    def later(value: str) -> list[tuple[int, str]]:  # a new policy: everything 1000 ms later
        return [(due + 1000, tag) for due, tag in due_of(value)]

    rebuilt = store(tmp_path, schedule=later, schedule_version="2")
    assert rebuilt.due(500) == [] and [d.due for d in rebuilt.due(2000)] == [1100]
    assert rebuilt.get(b"a") == "a@100" and rebuilt.checkpoint == 1


def test_the_cache_stays_bounded_and_reads_fall_back_to_rocksdb(tmp_path: Path) -> None:
    s = store(tmp_path, cache_size=10)
    for n in range(100):
        s.put(f"k{n}".encode(), f"v{n}")
    s.commit(s.prepare(), 1)
    assert len(s._cache) <= 10
    assert [s.get(f"k{n}".encode()) for n in range(100)] == [f"v{n}" for n in range(100)]


def test_reset_forgets_everything(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.put(b"a", "a@1")
    s.commit(s.prepare(), 5)
    s.reset()
    assert s.get(b"a") is None and s.checkpoint is None and s.due(10) == []
