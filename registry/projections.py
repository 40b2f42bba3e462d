"""Projections (search index, triple store, ...) follow the change log by sequence number.

A projection is idempotent and remembers the last sequence it applied, so a crash between a commit
and a projection is repaired by replaying from there; `credreg reindex` resets it to zero.

The projector applies changes on its own thread, right after each commit, taking everything
committed since its last pass in one go: the projections' fixed costs (an index commit, a
triple-store transaction) are shared by more writes the busier the service is. Reads that depend
on a projection pass a barrier first (`barrier()`): they wait until every change committed before
they arrived is applied, so a publish whose HTTP call has returned is in every search and SPARQL
answer that follows. Writers are held back (`throttle()`) while the projections are more than
`max_lag` changes behind, so the lag, and what a read may wait, stays bounded.
"""
from __future__ import annotations

import asyncio
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
    def __init__(self, store: Store, projections: list[Projection], batch: int = 1000,
                 max_lag: int = 1000) -> None:
        self.store = store
        self.projections = projections
        self.batch = batch
        self.max_lag = max_lag
        self._lock = threading.Lock()
        self._deferred = 0
        self._executor: ThreadPoolExecutor | None = None
        self._cond = threading.Condition()
        self._committed = 0  # the highest sequence known to be committed
        self._applied = 0  # every projection has applied up to here
        self._wake = threading.Event()
        self._stopping = False
        self._failing = False
        self._thread: threading.Thread | None = None

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
            try:
                if len(self.projections) == 1:
                    return self._catch_up(self.projections[0], progress)
                futures = [self._pool().submit(self._catch_up, p, progress) for p in self.projections]
                return sum(f.result() for f in futures)
            finally:
                applied = min(p.position() for p in self.projections)
                with self._cond:
                    self._applied = applied
                    self._committed = max(self._committed, applied)
                    self._cond.notify_all()

    # --- following commits ---------------------------------------------------------------------
    def start(self) -> None:
        """Apply changes on a thread of its own from now on, woken by `notify`."""
        if self.projections and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="credreg-projector", daemon=True)
            self._thread.start()

    def notify(self, seq: int | None = None) -> None:
        """Changes up to `seq` (default: whatever the store has) are committed: apply them."""
        committed = self.store.last_seq() if seq is None else seq
        with self._cond:
            self._committed = max(self._committed, committed)
        self._wake.set()

    def _run(self) -> None:
        retry = 0.0  # after a failure, try again with backoff even if nothing new is committed
        while True:
            self._wake.wait(timeout=retry or None)
            self._wake.clear()
            try:
                self.catch_up()
                retry = 0.0
                self._failing = False
            except Exception:  # the writes stand; the projection resumes from its position
                self._failing = True  # writers are not held back for an engine that is down
                with self._cond:
                    self._cond.notify_all()
                retry = min(max(retry * 2, 0.25), 30.0)
                log.exception("projection catch-up failed; retrying in %.2f s", retry)
            if self._stopping:
                return

    def stop(self) -> None:
        """Apply what is committed, then stop the thread."""
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=300)
            self._thread = None

    def wait_for(self, seq: int | None = None, timeout: float = 30.0) -> bool:
        """Wait until every projection has applied `seq` (default: all committed so far)."""
        if not self.projections:
            return True
        with self._cond:
            target = self._committed if seq is None else seq
            return self._cond.wait_for(lambda: self._applied >= target or bool(self._deferred), timeout)

    async def barrier(self, timeout: float = 30.0) -> None:
        """For a read that depends on the projections: wait until they have applied every change
        committed before it arrived (no wait, and no thread hop, when they have)."""
        if self._applied >= self._committed or not self.projections:
            return
        await asyncio.to_thread(self.wait_for, self._committed, timeout)

    def throttle(self, timeout: float = 5.0) -> None:
        """For the writer: hold back while the projections are more than `max_lag` behind. A
        projection that is failing does not hold writes back (its lag shows in /health)."""
        if not self.projections or self._deferred or self._failing:
            return
        with self._cond:
            self._cond.wait_for(lambda: self._committed - self._applied <= self.max_lag or bool(self._deferred)
                                or self._failing,
                                timeout)

    def _catch_up(self, projection: Projection, progress: Callable[[int], object] | None) -> int:
        applied = 0
        told = 0

        def tell(n: int) -> None:  # a projection with a long step of its own reports as it goes
            nonlocal told
            told += n
            if progress is not None:
                progress(n)

        reports = progress is not None and hasattr(projection, "progress")
        if reports:
            projection.progress = tell  # type: ignore[attr-defined]
        try:
            while True:
                before = projection.position()
                changes = self.store.changes(before, self.batch)
                if not changes:
                    # caught up: a projection may now tidy what a long catch-up left (the
                    # triple store compacts after a bulk load); optional, hence getattr
                    settle = getattr(projection, "settle", None)
                    if settle is not None:
                        settle()
                    return applied
                projection.apply(changes, self.store)
                # a projection may take more than it was given (a rebuild reads the whole store)
                done = max(projection.position() - before, len(changes))
                applied += done
                if progress is not None and done > told:
                    progress(done - told)
                told = 0
        finally:
            if reports:
                projection.progress = None  # type: ignore[attr-defined]

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
