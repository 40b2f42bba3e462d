"""Projections (search index, triple store, ...) follow the change log by sequence number.

A projection is idempotent and remembers the last sequence it applied, so a crash between a commit
and a projection is repaired by replaying from there; `credreg reindex` resets it to zero.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
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

    def catch_up(self) -> int:
        """Apply every change not yet applied to each projection; return how many were applied."""
        applied = 0
        with self._lock:
            if self._deferred:
                return 0
            for projection in self.projections:
                while True:
                    changes = self.store.changes(projection.position(), self.batch)
                    if not changes:
                        break
                    projection.apply(changes, self.store)
                    applied += len(changes)
        return applied

    def lag(self) -> dict[str, int]:
        last = self.store.last_seq()
        return {p.name: last - p.position() for p in self.projections}
