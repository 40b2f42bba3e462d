"""The embedded triple store: pyoxigraph (RocksDB) on disk, queries in killable worker processes.

Why worker processes: pyoxigraph 0.5 offers no way to cancel a running query from Python (the
Rust engine has a cancellation token, used by `oxigraph serve --timeout-s`, but the Python
binding does not expose it), a query blocks inside native code (GROUP BY and ORDER BY compute
everything before the first row), and a thread cannot be killed. So each query runs in a worker
process that is killed (SIGKILL) at the deadline; the pool then starts a fresh one. That is the
only way to really stop the work, and it also takes queries off the service's GIL.

Why checkpoints: a second process may not open a RocksDB that another process writes (the lock
is exclusive, and pyoxigraph documents read-only opening next to a writer as undefined
behaviour; 0.5 dropped secondary instances). `Store.backup()` makes a RocksDB checkpoint: the
memtables are flushed and the immutable table files hard-linked, which takes milliseconds, and
the copy is a consistent, independent store that workers open read-only. A checkpoint is taken
under the write lock, so it always falls between two groups, and only when a query arrives after
a write (then every query until the next write shares it): a publish is visible to the next
query (read-your-writes) and a read-only burst costs nothing. Old checkpoints are deleted once no
worker has them open.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from registry.rdfstore import (
    NTRIPLES,
    POSITION_PREDICATE,
    RESULTS_JSON,
    UNION,
    XSD_INTEGER,
    Counts,
    Dataset,
    Group,
    QueryResult,
    QuerySyntaxError,
    QueryTimeout,
    RdfDataError,
    ResultTooLarge,
    StoreBusy,
    StoreUnavailable,
    group_removal,
    metadata_update,
    to_nquads,
)

log = logging.getLogger("credreg.rdfstore")
_MEMORY_FRACTION = 4  # a worker may use at most 1/4 of physical memory (address space)
# Bulk-loaded quads after which `settle` compacts the store (see there). Below it the compaction,
# which rewrites the whole database, costs more than the reads it saves.
COMPACT_AFTER_BULK_QUADS = 200_000


def default_workers() -> int:
    return min(4, max(2, os.cpu_count() or 2))


class OxigraphStore:
    def __init__(self, path: Path, *, meta_graph: str, dataset_iri: str,
                 workers: int | None = None, max_waiting: int | None = None) -> None:
        """`workers`: query processes (None or 0: min(4, max(2, CPUs))); `max_waiting`: how many queries
        may wait for a busy worker before the next is refused at once with StoreBusy (None: no
        bound, each waits until its time limit)."""
        self.path = Path(path)
        self.meta_graph = meta_graph
        self.dataset_iri = dataset_iri
        self.path.mkdir(parents=True, exist_ok=True)
        self._store = ox.Store(str(self.path))
        self._lock = threading.RLock()  # writes and checkpoints: a checkpoint sits between groups
        self._generation = 0  # bumped by every write; a checkpoint is current if it matches
        self._dataset_node = ox.NamedNode(dataset_iri)
        self._position_node = ox.NamedNode(POSITION_PREDICATE)
        self._meta_node = ox.NamedNode(meta_graph)
        self.bulk_quads = 20_000  # groups with at least this many quads are bulk-loaded
        self.compact_after = COMPACT_AFTER_BULK_QUADS
        self._bulk_since_compaction = 0  # quads bulk-loaded since the last compaction
        self._compaction = threading.Lock()  # held while a compaction runs: close/reset wait for it
        self._compactor: threading.Thread | None = None
        self.compaction_seconds: float | None = None  # the last compaction's duration
        self._position = self._read_position()
        self._snapshots = _Snapshots(self.path.with_name(self.path.name + "-snapshots"))
        self._pool = _Pool(workers or default_workers(), max_waiting)
        self._closed = False

    # --- writes ---------------------------------------------------------------------------------
    def _read_position(self) -> int:
        """The stored position; a crash between adding a new position and removing the old one
        (see _move_position) leaves two: the highest wins and the others are removed."""
        quads = list(self._store.quads_for_pattern(self._dataset_node, self._position_node, None,
                                                   self._meta_node))
        numbers = sorted((int(q.object.value), q) for q in quads if isinstance(q.object, ox.Literal))
        for _, stale in numbers[:-1]:
            self._store.remove(stale)
        return numbers[-1][0] if numbers else 0

    def _position_quad(self, position: int) -> ox.Quad:
        return ox.Quad(self._dataset_node, self._position_node,
                       ox.Literal(str(int(position)), datatype=ox.NamedNode(XSD_INTEGER)), self._meta_node)

    def _move_position(self, position: int, added: bool = False) -> None:
        """Point writes, never `DELETE WHERE`: each position is a different key, so a pattern
        scan over the position would walk one RocksDB tombstone per earlier group (measured:
        the per-group cost grew from 0.1 to 1 ms over 3,000 groups). `added`: the new position
        was already written in the same transaction as the group's triples."""
        if position == self._position and not added:
            return
        if not added:
            self._store.add(self._position_quad(position))
        if self._position != position:
            self._store.remove(self._position_quad(self._position))
        self._position = position

    def _update(self, text: str) -> None:
        with self._lock:
            try:
                self._store.update(text)
            except SyntaxError as exc:
                raise RdfDataError(str(exc)) from None
            self._generation += 1

    def apply(self, group: Group) -> None:
        """Small groups (the publish path) are applied as a diff, large ones (catch-up, reindex)
        with `bulk_load`; both are measured in bench/sparql.py (`projection_us_per_change`).

        Why a diff: an insertion into on-disk Oxigraph costs about 13 us a quad (2 us in memory),
        and a replaced record mostly keeps its triples; dropping and re-inserting a 70-quad
        record cost 3-6 ms in a 700k-quad store, the diff writes only what changed.
        Why `bulk_load` for large groups: it writes table files directly (measured 2.4x the
        quads/s of `load`), but it is not one transaction. Neither is needed: the position moves
        last, so after a crash the projection re-applies the group, which is idempotent, and
        readers never see a half group (checkpoints are taken under the same lock).

        A small group is parsed before anything is written, so a rejected one changes nothing.
        A large group the engine rejects may be partly written when RdfDataError is raised; the
        caller re-applies its records one by one, each replacing its graph and metadata (the
        projection does, see RdfProjection._apply_each), and the position has not moved."""
        data = "".join(to_nquads(nt, g) for g, nt in group.graphs)
        data += "".join(to_nquads(m, self.meta_graph) for m in group.metadata)
        quads = data.count("\n")
        if quads >= self.bulk_quads:
            self._apply_bulk(group, data)
            self._bulk_since_compaction += quads
        else:
            self._apply_diff(group, data)

    def _apply_diff(self, group: Group, data: str) -> None:
        try:
            new = set(ox.parse(data, format=ox.RdfFormat.N_QUADS)) if data else set()
        except SyntaxError as exc:
            raise RdfDataError(str(exc)) from None
        with self._lock:
            self._generation += 1
            old: set[ox.Quad] = set()
            kept = {g for g, _ in group.graphs}
            for g in group.drop:
                node = ox.NamedNode(g)
                if g in kept:
                    old.update(self._store.quads_for_pattern(None, None, None, node))
                else:  # a deletion: the whole graph goes, in one prefix delete
                    self._store.remove_graph(node)
            for subject in group.meta_subjects:
                old.update(self._store.quads_for_pattern(ox.NamedNode(subject), None, None, self._meta_node))
            for quad in old - new:  # before the additions: a literal may be spelled two ways
                self._store.remove(quad)
            added = new - old
            position = group.position
            if position != self._position:
                added.add(self._position_quad(position))
            if added:
                self._store.extend(added)
            self._move_position(position, added=position != self._position)

    def _apply_bulk(self, group: Group, data: str) -> None:
        removal = group_removal(group, self.meta_graph)
        with self._lock:
            self._generation += 1
            if removal and not self._is_empty():
                self._store.update(removal)
            try:
                self._store.bulk_load(data, format=ox.RdfFormat.N_QUADS)
            except SyntaxError as exc:
                raise RdfDataError(str(exc)) from None
            self._move_position(group.position)

    def settle(self) -> None:
        """Start compacting the database in the background after a large bulk load (the
        projector calls this when a catch-up has nothing left to apply); returns at once.

        Why compact: `bulk_load` ingests its table files as they are, so right after a catch-up
        reads look through overlapping files that RocksDB's background compaction has not merged
        yet. A full compaction (`optimize`, which pyoxigraph recommends after a bulk load)
        leaves one sorted run per index. Measured (CPU time, same queries on both): at 10k
        graphs point lookups -35% and the ctid/type join -48%; at 50k graphs, where the
        background compaction had more time during the load, point -12%, two-hop -5%, text
        filter -17%, scans unchanged, the ctid/type join +15%. It rewrites the database (5-9 us
        a quad: 63 s for 14M quads), so it runs only after at least `compact_after` quads were
        bulk-loaded, never in the publish path. The count is kept in memory: after a restart
        an interrupted load is left to the background compaction.

        Why a thread of its own: the projector calls this on its thread, and a minute of
        compaction there would hold back every change committed meanwhile (and every read
        waiting at the barrier for one). No write lock is held while it runs: pyoxigraph
        releases the GIL, RocksDB compacts next to writes and checkpoints, and queries run on
        checkpoints. close() and reset() wait for it (RocksDB's compaction cannot be stopped
        from Python)."""
        with self._lock:
            if self._closed or self._bulk_since_compaction < self.compact_after or self.compacting():
                return
            self._bulk_since_compaction = 0  # quads bulk-loaded from now on count towards the next
            self._compactor = threading.Thread(target=self._compact, name="credreg-compaction", daemon=True)
            self._compactor.start()

    def compacting(self) -> bool:
        return self._compactor is not None and self._compactor.is_alive()

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait for a running compaction to end; False if it is still running after `timeout`."""
        compactor = self._compactor
        if compactor is not None:
            compactor.join(timeout)
        return not self.compacting()

    def _compact(self) -> None:
        with self._compaction:
            if self._closed:
                return
            started = time.monotonic()
            try:
                self._optimize()
            except OSError:  # the store stays usable, only uncompacted; reads are slower
                log.exception("compacting the triple store failed")
                return
            self.compaction_seconds = time.monotonic() - started
            with self._lock:
                # Checkpoints taken before hold the uncompacted files: the next query takes a
                # fresh one instead of reading the old files until the next write.
                self._generation += 1
            log.info("compacted the triple store in %.1f s", self.compaction_seconds)

    def _optimize(self) -> None:
        self._store.optimize()

    def _is_empty(self) -> bool:
        """True for a fresh or reset store (a rebuild then needs no removals)."""
        return self._position == 0 and next(iter(self._store), None) is None

    def replace_graph(self, graph: str, ntriples: str) -> None:
        with self._lock:
            self._generation += 1
            node = ox.NamedNode(graph)
            try:  # parse first: a rejected graph leaves the old one in place
                triples = [q.triple for q in ox.parse(ntriples, format=ox.RdfFormat.N_TRIPLES)]
            except SyntaxError as exc:
                raise RdfDataError(str(exc)) from None
            self._store.remove_graph(node)
            self._store.extend(ox.Quad(t.subject, t.predicate, t.object, node) for t in triples)

    def remove_graph(self, graph: str) -> None:
        with self._lock:
            self._generation += 1
            self._store.remove_graph(ox.NamedNode(graph))

    def graph_ntriples(self, graph: str) -> str:
        quads = self._store.quads_for_pattern(None, None, None, ox.NamedNode(graph))
        out = ox.serialize((q.triple for q in quads), format=ox.RdfFormat.N_TRIPLES)
        return out.decode() if out else ""

    def update_metadata(self, subjects: list[str], ntriples: str, position: int | None) -> None:
        text = metadata_update(subjects, ntriples, None, self.meta_graph, self.dataset_iri)
        with self._lock:
            if text:
                self._update(text)
            if position is not None:
                self._generation += 1
                self._move_position(position)

    def position(self) -> int:
        return self._position

    def counts(self) -> Counts:
        # No lock: a count scans an index, and pyoxigraph reads are safe next to writes.
        graphs = sum(1 for _ in self._store.named_graphs())
        return Counts(len(self._store), graphs)

    def reset(self) -> None:
        """Remove the database directory and start empty (faster than deleting every key)."""
        with self._compaction, self._lock:
            self._store.flush()
            del self._store
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True, exist_ok=True)
            self._store = ox.Store(str(self.path))
            self._generation += 1
            self._position = 0
            self._bulk_since_compaction = 0

    def close(self) -> None:
        """Stop the workers, wait for a running compaction, delete the checkpoints and release
        the database (its lock)."""
        self._pool.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True  # no compaction starts from now on
        with self._compaction, self._lock:  # a running one ends first
            self._snapshots.close()
            self._store.flush()
            del self._store  # dropping the last reference closes RocksDB and frees its LOCK

    # --- queries --------------------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        """The checkpoint for the current state, taken now if a write happened since the last;
        returned with a reference the caller must release."""
        with self._lock:
            return self._snapshots.current(self._store, self._generation)

    def query(self, sparql: str, *, dataset: Dataset = UNION, solutions_format: str = RESULTS_JSON,
              graph_format: str = NTRIPLES, timeout_s: float = 30.0,
              max_results: int = 100_000) -> QueryResult:
        deadline = time.monotonic() + timeout_s
        job = (sparql, dataset, solutions_format, graph_format, max_results)
        return self._pool.run(self, job, deadline, timeout_s)


@dataclass(eq=False)
class _Snapshot:
    path: Path
    generation: int
    refs: int = 0
    retired: bool = False


class _Snapshots:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.rmtree(root, ignore_errors=True)  # checkpoints of a previous run are stale
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._latest: _Snapshot | None = None
        self._all: list[_Snapshot] = []
        self._counter = 0

    def current(self, store: ox.Store, generation: int) -> _Snapshot:
        with self._lock:
            latest = self._latest
            if latest is None or latest.generation != generation:
                self._counter += 1
                path = self.root / f"{self._counter:08d}"
                store.backup(str(path))
                latest = _Snapshot(path, generation)
                if self._latest is not None:
                    self._latest.retired = True
                self._latest = latest
                self._all.append(latest)
                self._collect()
            latest.refs += 1
            return latest

    def release(self, snapshot: _Snapshot) -> None:
        with self._lock:
            snapshot.refs -= 1
            self._collect()

    def _collect(self) -> None:
        for snap in [s for s in self._all if s.retired and s.refs <= 0]:
            shutil.rmtree(snap.path, ignore_errors=True)
            self._all.remove(snap)

    def close(self) -> None:
        with self._lock:
            for snap in self._all:
                shutil.rmtree(snap.path, ignore_errors=True)
            self._all.clear()
            self._latest = None


class _Worker:
    """One query process; `snapshot` is the checkpoint it has open (it holds a reference)."""

    def __init__(self, context: Any) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True,
                                       name="credreg-sparql")
        self.process.start()
        child.close()
        self.snapshot: _Snapshot | None = None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()
        self.process.close()


class _Pool:
    def __init__(self, size: int, max_waiting: int | None = None) -> None:
        self.size = size
        self.max_waiting = max_waiting  # queries that may wait for a worker; None: no bound
        self._waiting = 0
        # spawn, never fork: the service is multi-threaded and holds RocksDB open.
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()

    def _start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            for _ in range(self.size):
                self._add()
            self._started = True

    def _add(self) -> None:
        worker = _Worker(self._context)
        self._all.add(worker)
        self._idle.put(worker)

    def _discard(self, worker: _Worker, owner: OxigraphStore) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            if worker.snapshot is not None:
                owner._snapshots.release(worker.snapshot)
                worker.snapshot = None
            if not self._closed:
                self._add()  # the replacement boots while the caller reports the problem

    def run(self, owner: OxigraphStore, job: tuple[Any, ...], deadline: float,
            timeout_s: float) -> QueryResult:
        self._start()
        if self._closed:
            raise StoreUnavailable("The triple store is closed.")
        worker = self._acquire(deadline, timeout_s)
        snapshot = owner.snapshot()
        try:
            worker.conn.send((str(snapshot.path), job))
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                owner._snapshots.release(snapshot)
                self._discard(worker, owner)
                raise QueryTimeout(f"The query ran longer than the time limit of {timeout_s:g} s "
                                   "and was stopped.")
            status, payload = worker.conn.recv()
        except (EOFError, OSError) as exc:
            owner._snapshots.release(snapshot)
            self._discard(worker, owner)
            raise StoreUnavailable(f"The query process ended abnormally ({type(exc).__name__}); "
                                   "the query may need more memory than a worker may use.") from None
        # The worker now holds `snapshot` open and has closed the one it had before.
        if worker.snapshot is not None and worker.snapshot is not snapshot:
            owner._snapshots.release(worker.snapshot)
        elif worker.snapshot is snapshot:
            owner._snapshots.release(snapshot)  # already counted once for this worker
        worker.snapshot = snapshot
        self._idle.put(worker)
        if status == "ok":
            result: QueryResult = payload
            return result
        if status == "syntax":
            raise QuerySyntaxError(payload)
        if status == "too-large":
            raise ResultTooLarge(payload)
        raise StoreUnavailable(payload)

    def _acquire(self, deadline: float, timeout_s: float) -> _Worker:
        """An idle worker, waiting for one until the deadline. Why a bound on the waiting: once
        every worker runs a slow query, a waiting query would hold its client (and a thread) for
        the whole time limit and then start with little of it left; past the bound, refusing at
        once lets the client retry later or elsewhere."""
        with self._lock:
            if self.max_waiting is not None and self._waiting >= self.max_waiting and self._idle.empty():
                raise StoreBusy(f"All {self.size} query workers are busy and {self._waiting} "
                                "queries are waiting for one.")
            self._waiting += 1
        try:
            return self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise QueryTimeout(f"Every query worker stayed busy for the whole time limit "
                               f"({timeout_s:g} s).") from None
        finally:
            with self._lock:
                self._waiting -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.process.join(timeout=5)
            worker.kill()


def _limit_memory() -> None:
    """Cap the worker's address space so a runaway query fails in its own process."""
    try:
        import resource

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        cap = max(2 << 30, total // _MEMORY_FRACTION)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):  # not Linux/Unix: run without a cap
        pass


def _worker_main(conn: Connection) -> None:
    """A query process: open the named checkpoint read-only, run the query, send the result."""
    from registry.rdfstore.results import execute

    _limit_memory()
    store: ox.Store | None = None
    opened = ""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        path, (sparql, dataset, solutions_format, graph_format, max_results) = message
        try:
            if path != opened:
                store, opened = None, ""  # close the previous checkpoint before opening the next
                store = ox.Store.read_only(path)
                opened = path
            assert store is not None
            reply: tuple[str, Any] = ("ok", execute(store, sparql, dataset, solutions_format,
                                                    graph_format, max_results))
        except QuerySyntaxError as exc:
            reply = ("syntax", str(exc))
        except ResultTooLarge as exc:
            reply = ("too-large", str(exc))
        except MemoryError:
            reply = ("error", "The query needs more memory than a query worker may use.")
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker lives on
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
