"""Group commit: every write is answered only after the projections have caught up past it, a
failing item or projection loses no other write, and the pipeline drains on close."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry.committer import Committer
from registry.store import Batch, open_store


class Recorder:
    """Stands in for the projector: remembers how many writes it had seen at each catch-up."""

    def __init__(self, delay: float = 0.0, fail_first: bool = False) -> None:
        self.written = 0
        self.seen = 0
        self.calls = 0
        self.delay = delay
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def work(self, batch: Batch) -> int:
        with self.lock:
            self.written += 1
            return self.written

    def catch_up(self) -> None:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail_first and self.calls == 1:
            raise RuntimeError("index unavailable")
        with self.lock:
            self.seen = self.written


@pytest.fixture
def store(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path / 'registry.db'}")
    yield store
    store.close()


def test_a_write_returns_only_after_the_projections_have_seen_it(store) -> None:
    recorder = Recorder(delay=0.005)
    committer = Committer(store, recorder.catch_up)
    stale: list[tuple[int, int]] = []

    def publish(_: int) -> None:
        n = committer.run(recorder.work)
        if recorder.seen < n:
            stale.append((n, recorder.seen))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(publish, range(400)))
    committer.close()
    assert stale == []
    assert recorder.written == 400
    # Busy publishers share catch-ups: far fewer than one per write.
    assert recorder.calls < 400


def test_a_failing_item_fails_alone(store) -> None:
    recorder = Recorder()
    committer = Committer(store, recorder.catch_up)

    def bad(batch: Batch) -> int:
        raise ValueError("bad item")

    futures = [committer.submit(recorder.work), committer.submit(bad), committer.submit(recorder.work)]
    assert futures[0].result(timeout=10) == 1
    with pytest.raises(ValueError, match="bad item"):
        futures[1].result(timeout=10)
    assert futures[2].result(timeout=10) == 2
    committer.close()


def test_a_failing_projection_keeps_the_write_and_answers(store) -> None:
    recorder = Recorder(fail_first=True)
    committer = Committer(store, recorder.catch_up)
    assert committer.run(recorder.work) == 1
    assert committer.run(recorder.work) == 2
    assert recorder.seen == 2  # the second catch-up covered both writes
    committer.close()


def test_close_answers_everything_queued(store) -> None:
    recorder = Recorder(delay=0.01)
    committer = Committer(store, recorder.catch_up)
    futures = [committer.submit(recorder.work) for _ in range(50)]
    committer.close()
    assert sorted(f.result(timeout=0) for f in futures) == list(range(1, 51))
    assert recorder.seen == 50
