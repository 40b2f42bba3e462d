"""Group commit: one writer thread gathers the writes queued while the previous commit was being
made durable and commits them in one transaction (a savepoint each), then tells the projector and
answers every waiting request. One fsync serves many publishers. Read-your-writes across the
projections (search, SPARQL) is the projector's barrier (registry/projections.py)."""
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
                 window_ms: float = 0.0, before_commit: Callable[[], object] = lambda: None) -> None:
        self.store = store
        self.after_commit = after_commit
        self.before_commit = before_commit
        self.window = window_ms / 1000
        self._queue: queue.Queue[tuple[Callable[[Batch], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="credreg-committer", daemon=True)
        self._thread.start()

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
                return
            self.before_commit()
            group, stop = self._gather(first)
            self._commit(group)
            if stop:
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
        try:
            self.after_commit()
        except Exception:  # the writes stand; projections follow the change log on their own
            log.exception("after-commit hook failed")
        for future, result, error in results:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
