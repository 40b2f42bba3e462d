"""Group commit: one writer thread gathers the writes queued while the previous commit was being
made durable and commits them in one transaction (a savepoint each); a second thread brings the
projections up to date and only then releases the waiting requests. One fsync serves many
publishers, and a publish that returns is already visible to every read path (read-your-writes).

The two stages overlap: while the projections index group N, the store commits group N+1, and a
projection catch-up covers every group committed since the last one, so its fixed cost (an index
commit, a triple-store transaction) is shared by more writes the busier the service is."""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from registry.store import Batch, Store

T = TypeVar("T")
log = logging.getLogger("credreg.committer")
_MAX_GROUP = 256


class Committer:
    def __init__(self, store: Store, after_commit: Callable[[], object] = lambda: None,
                 window_ms: float = 0.0) -> None:
        self.store = store
        self.after_commit = after_commit
        self.window = window_ms / 1000
        self._queue: queue.Queue[tuple[Callable[[Batch], Any], Future[Any]] | None] = queue.Queue()
        self._committed: queue.Queue[list[tuple[Future[Any], Any, BaseException | None]] | None] = \
            queue.Queue()
        self._thread = threading.Thread(target=self._run, name="credreg-committer", daemon=True)
        self._releaser = threading.Thread(target=self._release, name="credreg-projector", daemon=True)
        self._thread.start()
        self._releaser.start()

    def submit(self, work: Callable[[Batch], T]) -> Future[T]:
        """Run `work(batch)` inside the next group's transaction; its result or error in the future."""
        future: Future[T] = Future()
        self._queue.put((work, future))
        return future

    def run(self, work: Callable[[Batch], T]) -> T:
        return self.submit(work).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._releaser.join(timeout=30)

    def _gather(self, first: tuple[Callable[[Batch], Any], Future[Any]]
                ) -> tuple[list[tuple[Callable[[Batch], Any], Future[Any]]], bool]:
        group = [first]
        stop = False
        while len(group) < _MAX_GROUP:
            try:
                item = self._queue.get(timeout=self.window) if self.window else \
                    self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            group.append(item)
        return group, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            group, stop = self._gather(first)
            self._commit(group)
            if stop:
                break
        self._committed.put(None)

    def _release(self) -> None:
        """Project everything committed so far, then answer the requests those commits carried."""
        while True:
            first = self._committed.get()
            groups = [first]
            while True:
                try:
                    groups.append(self._committed.get_nowait())
                except queue.Empty:
                    break
            done = [g for g in groups if g is not None]
            if done:
                try:
                    self.after_commit()
                except Exception:  # projections are rebuilt from the change log; the writes stand
                    log.exception("projection catch-up failed; it will be retried")
                for results in done:
                    for future, result, error in results:
                        if error is not None:
                            future.set_exception(error)
                        else:
                            future.set_result(result)
            if len(done) < len(groups):
                return

    def _commit(self, group: list[tuple[Callable[[Batch], Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with self.store.batch() as batch:
                for work, future in group:
                    try:
                        with batch.item():
                            results.append((future, work(batch), None))
                    except Exception as exc:  # this item only: its savepoint was rolled back
                        results.append((future, None, exc))
        except Exception as exc:  # the commit itself failed: nothing in the group was written
            log.exception("group commit failed")
            for _, future in group:
                future.set_exception(exc)
            return
        self._committed.put(results)
