"""Projections (search index, triple store, ...) follow the change log by sequence number.

A projection is idempotent and remembers the last sequence it applied, so a crash between a commit
and a projection is repaired by replaying from there; `credreg reindex` resets it to zero.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

from registry.store import Change, Store

log = logging.getLogger("credreg.projections")


class Projection(Protocol):
    name: str

    def position(self) -> int:
        """The last change-log sequence applied."""
        ...

    def apply(self, changes: list[Change], store: Store) -> None:
        """Apply changes in order (re-applying one must be harmless) and record the position."""
        ...

    def reset(self) -> None:
        """Forget everything: the next catch-up rebuilds from sequence 0."""
        ...


class Projector:
    def __init__(self, store: Store, projections: list[Projection], batch: int = 1000) -> None:
        self.store = store
        self.projections = projections
        self.batch = batch
        self._lock = threading.Lock()
        self._deferred = 0
        self._executor: ThreadPoolExecutor | None = None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold catch-up back while a bulk import writes, then apply everything at once: the
        projections' per-group work (an index commit, a triple-store transaction) would otherwise
        cost more than the import's own writes. Reads lag the import until it ends."""
        with self._lock:
            self._deferred += 1
        try:
            yield
        finally:
            with self._lock:
                self._deferred -= 1
        self.catch_up()

    def catch_up(self, progress: Callable[[int], object] | None = None) -> int:
        """Apply every change not yet applied to each projection; return how many were applied.

        Projections catch up side by side: their heavy parts (an index commit, a triple-store
        transaction) run in native code without the GIL, so two of them take little longer than
        the slower one. The first failure is raised after the others have finished."""
        with self._lock:
            if self._deferred or not self.projections:
                return 0
            if len(self.projections) == 1:
                return self._catch_up(self.projections[0], progress)
            futures = [self._pool().submit(self._catch_up, p, progress) for p in self.projections]
            return sum(f.result() for f in futures)

    def _catch_up(self, projection: Projection, progress: Callable[[int], object] | None) -> int:
        applied = 0
        while True:
            before = projection.position()
            changes = self.store.changes(before, self.batch)
            if not changes:
                return applied
            projection.apply(changes, self.store)
            # a projection may take more than it was given (a rebuild reads the whole store)
            done = max(projection.position() - before, len(changes))
            applied += done
            if progress is not None:
                progress(done)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(len(self.projections), thread_name_prefix="credreg-projection")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    def lag(self) -> dict[str, int]:
        last = self.store.last_seq()
        return {p.name: last - p.position() for p in self.projections}
