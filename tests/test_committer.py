"""Group commit and the projector: writes are answered once durable, the projector applies them on
its own thread in groups, reads behind the barrier see every write answered before they arrived,
writers are held back when the projections fall too far behind, and failures lose nothing."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry.committer import Committer
from registry.projections import Projector
from registry.store import Batch, Change, Record, Store, open_store
from tests.conftest import new_ctid


class Counting:
    """A projection that records what it applied; optionally slow or failing at first."""

    name = "counting"

    def __init__(self, delay: float = 0.0, failures: int = 0) -> None:
        self.seq = 0
        self.calls = 0
        self.delay = delay
        self.failures = failures

    def position(self) -> int:
        return self.seq

    def apply(self, changes: list[Change], store: Store) -> None:
        self.calls += 1
        time.sleep(self.delay)
        if self.failures > 0:  # the test may set it to 0 while this runs
            self.failures -= 1
            raise RuntimeError("index unavailable")
        self.seq = changes[-1].seq

    def reset(self) -> None:
        self.seq = 0


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'registry.db'}", durable=False)
    store.upgrade()
    yield store
    store.close()


def _writer(store: Store) -> Callable[[Batch], int]:
    """A committer work item that writes one new record through the real store."""
    def work(batch: Batch) -> int:
        ctid = new_ctid()
        record = Record(ctid=ctid, version=1, etag=ctid, body=b"{}", ntriples="", type="ceterms:Certification",
                        owners=(), publisher=None, created="2026-01-01T00:00:00Z",
                        modified="2026-01-01T00:00:00Z")
        return batch.write(record, "create")
    return work


def _pipeline(store: Store, projection: Counting, max_lag: int = 1000) -> tuple[Committer, Projector]:
    projector = Projector(store, [projection], max_lag=max_lag)  # type: ignore[list-item]
    projector.start()
    return Committer(store, projector.notify, before_commit=projector.throttle), projector


def test_reads_behind_the_barrier_see_every_answered_write(store: Store) -> None:
    projection = Counting(delay=0.01)
    committer, projector = _pipeline(store, projection)
    work = _writer(store)
    stale: list[tuple[int, int]] = []

    def publish_then_read(_: int) -> None:
        seq = committer.run(work)
        asyncio.run(projector.barrier())
        if projection.position() < seq:
            stale.append((seq, projection.position()))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(publish_then_read, range(300)))
    committer.close()
    projector.stop()
    assert stale == []
    assert projection.position() == 300
    assert projection.calls < 300  # writes shared catch-ups


def test_writers_are_held_back_while_the_projection_is_far_behind(store: Store) -> None:
    projection = Counting(delay=0.05)
    committer, projector = _pipeline(store, projection, max_lag=5)
    work = _writer(store)
    lags: list[int] = []

    def publish(_: int) -> None:
        committer.run(work)
        lags.append(store.last_seq() - projection.position())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(publish, range(120)))
    committer.close()
    projector.stop()
    # a group may add up to 8 writes on top of the allowed lag, and one more group may be in flight
    assert max(lags) <= 5 + 2 * 8
    assert projection.position() == 120


def test_a_failing_projection_loses_no_write_and_catches_up_later(store: Store) -> None:
    projection = Counting(failures=2)
    committer, projector = _pipeline(store, projection)
    work = _writer(store)
    assert [committer.run(work) for _ in range(3)] == [1, 2, 3]
    assert projector.wait_for(timeout=10)
    assert projection.position() == 3
    committer.close()
    projector.stop()


def test_an_engine_that_is_down_does_not_hold_writers_back(store: Store) -> None:
    projection = Counting(failures=10_000)
    committer, projector = _pipeline(store, projection, max_lag=2)
    work = _writer(store)
    begin = time.perf_counter()
    assert [committer.run(work) for _ in range(20)] == list(range(1, 21))
    assert time.perf_counter() - begin < 4  # one 5 s throttle wait would already exceed this
    assert projection.position() == 0
    committer.close()
    projection.failures = 0  # the engine is back: the next attempt (woken now, not after backoff) applies all
    projector.notify()
    assert projector.wait_for(timeout=10)
    projector.stop()
    assert projection.position() == 20


def test_a_failing_item_fails_alone(store: Store) -> None:
    committer = Committer(store)
    work = _writer(store)

    def bad(batch: Batch) -> int:
        raise ValueError("bad item")

    futures = [committer.submit(work), committer.submit(bad), committer.submit(work)]
    assert futures[0].result(timeout=10) == 1
    with pytest.raises(ValueError, match="bad item"):
        futures[1].result(timeout=10)
    assert futures[2].result(timeout=10) == 2
    committer.close()


def test_stop_applies_everything_committed(store: Store) -> None:
    projection = Counting(delay=0.01)
    committer, projector = _pipeline(store, projection)
    work = _writer(store)
    futures = [committer.submit(work) for _ in range(50)]
    committer.close()
    assert sorted(f.result(timeout=0) for f in futures) == list(range(1, 51))
    projector.stop()
    assert projection.position() == 50


def test_the_barrier_does_not_wait_when_nothing_is_pending(store: Store) -> None:
    projection = Counting()
    projector = Projector(store, [projection])  # type: ignore[list-item]
    started = threading.Event()

    async def read() -> None:
        started.set()
        await projector.barrier(timeout=5)

    begin = time.perf_counter()
    asyncio.run(read())
    assert started.is_set() and time.perf_counter() - begin < 0.5
