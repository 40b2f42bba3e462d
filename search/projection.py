"""The search index as a projection of the change log, with dependency tracking.

A search document shows facts from other records: its owner's name, the lists it is on, the
credit colleges give for it, what it stacks into. So a change to record X re-derives:
- X itself;
- the targets of X's links, before and after the change (a list that adds or ends a member, a
  transfer value that now names another credential, a stacking link): the old ones are read from
  the index (`link_dst` of X's indexed document), the new ones from X's new summary;
- the readers of X: documents whose derivation read X's summary (their `deps` term), e.g. every
  credential of an organization that was renamed, or of a college named in a transfer value;
- documents whose dated facts changed since (a transfer value starting or ending: `valid_until`).
Re-deriving always reads the current store, so applying a change twice is harmless, and all of a
group's documents and the new position are one index commit: after a crash, replay converges.

A first catch-up (empty index, or after `credreg reindex`) builds the whole index in two passes
over the current records instead of replaying history: summaries first, then every document.
"""
from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from registry.store import Change, Record, Store
from search import timeline
from search.backend import Backend
from search.documents import SearchDocument, derive, references
from search.graph import Graph
from search.summary import MEMBER, TRANSFER, Summary, summarize

log = logging.getLogger("credreg.search")
MAX_GROUP_CHANGES = 200_000  # one apply catches up at most this far (the rest comes next call)
REBUILD_AT = 20_000  # changes to catch up on beyond which (and beyond half the index) we rebuild


class _Reads:
    """Records which summaries a derivation read: they become the document's `deps`."""

    def __init__(self) -> None:
        self._reads: set[str] = set()

    def begin(self) -> None:
        self._reads = set()

    def note(self, ctid: str) -> None:
        self._reads.add(ctid)

    def reads(self, own: str) -> list[str]:
        self._reads.discard(own)
        return sorted(self._reads)


class MemoryResolver(_Reads):
    """Summaries of every record, held in memory (full rebuild)."""

    def __init__(self, summaries: dict[str, Summary], inbound: dict[str, list[str]]) -> None:
        super().__init__()
        self._summaries, self._inbound = summaries, inbound

    @classmethod
    def of(cls, graphs: Iterable[tuple[str | None, Graph]]) -> MemoryResolver:
        """From every record's graph (with its CTID, or None for the graph's own): the summaries,
        and for each record the records linking to it (once each, however often they link)."""
        summaries: dict[str, Summary] = {}
        inbound: dict[str, list[str]] = {}
        for ctid, graph in graphs:
            summary = summarize(graph, ctid)
            summaries[summary.ctid] = summary
            if summary.kind is not None:
                for target in dict.fromkeys(t for _, t in summary.links()):
                    inbound.setdefault(target, []).append(summary.ctid)
        return cls(summaries, inbound)

    def summary(self, ctid: str) -> Summary | None:
        self.note(ctid)
        return self._summaries.get(ctid)

    def inbound(self, ctid: str) -> list[Summary]:
        return [self._summaries[s] for s in self._inbound.get(ctid, ())]


class IndexResolver(_Reads):
    """Summaries from this group's changes, else from the index, else from the store."""

    def __init__(self, store: Store, backend: Backend, known: dict[str, Summary | None],
                 sources: dict[str, list[Summary]]) -> None:
        super().__init__()
        self.store, self.backend, self._known, self._sources = store, backend, dict(known), sources

    def prefetch(self, ctids: list[str]) -> None:
        missing = [c for c in dict.fromkeys(ctids) if c not in self._known]
        self._known.update(self.backend.summaries(missing))

    def summary(self, ctid: str) -> Summary | None:
        self.note(ctid)
        if ctid not in self._known:
            found = self.backend.summaries([ctid]).get(ctid)
            if found is None:  # not indexed: a record of a type that has no search document
                record = self.store.get(ctid)
                found = None if record is None or record.deleted else \
                    summarize(Graph.from_bytes(record.body), ctid)
            self._known[ctid] = found
        return self._known[ctid]

    def inbound(self, ctid: str) -> list[Summary]:
        return self._sources.get(ctid, [])


class SearchProjection:
    name = "search"

    def __init__(self, backend: Backend, clock: Callable[[], int] = timeline.today) -> None:
        self.backend = backend
        self.clock = clock
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._expiry: int | None = None
        self._refresher: threading.Thread | None = None
        self._last_min = timeline.OPEN_END  # smallest valid_until written by the last group
        # set by the projector while it applies changes: told of records done in a long rebuild
        self.progress: Callable[[int], object] | None = None

    # --- the Projection protocol -----------------------------------------------------------------
    def position(self) -> int:
        return self.backend.position()

    def reset(self) -> None:
        with self._lock:
            self.backend.reset()
            self._expiry = None

    def close(self) -> None:
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout=30)
        self.backend.close()

    def apply(self, changes: list[Change], store: Store) -> None:
        if not changes:
            return
        with self._lock:
            self._store = store
            if self.backend.position() == 0:
                self.rebuild(store)
                return
            # Catch up to the head in one go: a document derived now reads the current store, so
            # no later change may be left unapplied (its old links would be lost).
            changes = list(changes)
            head = store.last_seq()
            while changes[-1].seq < head and len(changes) < MAX_GROUP_CHANGES:
                more = store.changes(changes[-1].seq, 10_000)
                if not more:
                    break
                changes.extend(more)
            if len(changes) > max(REBUILD_AT, self.backend.count() // 2):
                # A bulk import's worth: deriving every record once beats following the changes.
                self.rebuild(store)
                return
            self._apply(changes, store)

    # --- incremental -----------------------------------------------------------------------------
    def _apply(self, changes: list[Change], store: Store) -> None:
        today = self.clock()
        changed = list(dict.fromkeys(c.ctid for c in changes))
        records: dict[str, Record | None] = {c: store.get(c) for c in changed}
        graphs: dict[str, Graph] = {}
        new: dict[str, Summary | None] = {}
        for ctid, record in records.items():
            if record is None or record.deleted:
                new[ctid] = None
                continue
            graphs[ctid] = Graph.from_bytes(record.body)
            new[ctid] = summarize(graphs[ctid], ctid)
        old = self.backend.summaries(changed)  # as the index has them (searchable records only)
        affected = set(changed) | set(self.backend.pending())
        unseen: list[str] = []  # changed records whose old summary the index does not hold
        for ctid in changed:
            before, after = old.get(ctid), new[ctid]
            # A record that is no longer searchable states nothing on other documents.
            affected.update(link_targets(before, None if after is None or after.kind is None else after))
            if ctid not in old and (after is None or after.kind is None):
                unseen.append(ctid)  # no search document, before or after: its readers are unknown
            elif reader_view(before) != reader_view(after):
                unseen.append(ctid)
        affected |= self.backend.readers_of(unseen)
        if self._expiry is None:
            self._expiry = self.backend.next_expiry()
        if today >= self._expiry:
            affected.update(self.backend.expiring(today))
        self._write(sorted(affected), records, graphs, new, store, changes[-1].seq, today)
        self._expiry = self.backend.next_expiry() if today >= self._expiry else min(
            self._expiry, self._last_min)

    def _write(self, affected: list[str], records: dict[str, Record | None], graphs: dict[str, Graph],
               new: dict[str, Summary | None], store: Store, position: int, today: int) -> None:
        # Who states something about each affected record: the index knows the unchanged
        # sources; the changed ones count with their new summaries.
        wanted = set(affected)
        sources: dict[str, list[Summary]] = {}
        for ctid, indexed in self.backend.linking_to(affected).items():
            if ctid not in new:
                for target in {t for _, t in indexed.links()} & wanted:
                    sources.setdefault(target, []).append(indexed)
        for changed in new.values():
            if changed is not None and changed.kind is not None:
                for target in {t for _, t in changed.links()} & wanted:
                    sources.setdefault(target, []).append(changed)
        known: dict[str, Summary | None] = {s.ctid: s for found in sources.values() for s in found}
        known.update(new)
        resolver = IndexResolver(store, self.backend, known, sources)
        loaded: list[tuple[str, Record, Graph, Summary]] = []
        deletes: list[str] = []
        wanted_refs: list[str] = [o for found in sources.values() for s in found for o in s.owners]
        for ctid in affected:
            record = records[ctid] if ctid in records else store.get(ctid)
            if record is None or record.deleted:
                deletes.append(ctid)
                continue
            graph = graphs.get(ctid) or Graph.from_bytes(record.body)
            summary = new.get(ctid) or summarize(graph, ctid)
            if summary.kind is None:
                deletes.append(ctid)
                continue
            loaded.append((ctid, record, graph, summary))
            wanted_refs += references(graph, summary)
        resolver.prefetch(wanted_refs)  # one index query instead of one per reference
        docs: list[SearchDocument] = []
        self._last_min = timeline.OPEN_END
        for ctid, record, graph, summary in loaded:
            resolver.begin()
            doc = derive(graph, ctid, record.modified, resolver, today, summary)
            if doc is None:
                deletes.append(ctid)
                continue
            doc.deps = resolver.reads(ctid)
            self._last_min = min(self._last_min, doc.valid_until)
            docs.append(doc)
        self.backend.write(docs, deletes, position)

    # --- full build ------------------------------------------------------------------------------
    def rebuild(self, store: Store) -> int:
        """Build the whole index from the current records; returns the number of documents."""
        with self._lock:
            position = store.last_seq()
            today = self.clock()
            gc.freeze()  # millions of small objects: cyclic GC passes over them cost ~3x
            try:
                resolver = MemoryResolver.of((r.ctid, Graph.from_bytes(r.body)) for r in store.iter_current())
                count = self.backend.rebuild(self._derive_all(store, resolver, today), position)
            finally:
                gc.unfreeze()
            self._expiry = None
            log.info("search index rebuilt: %d documents at position %d", count, position)
            return count

    def _derive_all(self, store: Store, resolver: MemoryResolver, today: int) -> Iterator[SearchDocument]:
        for done, record in enumerate(store.iter_current(), 1):
            if self.progress is not None and done % 500 == 0:
                self.progress(500)
            resolver.begin()
            doc = derive(Graph.from_bytes(record.body), record.ctid, record.modified, resolver, today)
            if doc is not None:
                doc.deps = resolver.reads(record.ctid)
                yield doc

    # --- dated facts -----------------------------------------------------------------------------
    def refresh_if_due(self, store: Store) -> bool:
        """Start re-deriving, in the background, the documents whose dated facts changed since
        they were indexed (transfer values that started or ended). Cheap when nothing is due."""
        if self._expiry is not None and self.clock() < self._expiry:
            return False
        if self._refresher is not None and self._refresher.is_alive():
            return False
        self._refresher = threading.Thread(target=self._refresh, args=(store,),
                                           name="credreg-search-refresh", daemon=True)
        self._refresher.start()
        return True

    def _refresh(self, store: Store) -> None:
        try:
            with self._lock:
                today = self.clock()
                if self._expiry is None:
                    self._expiry = self.backend.next_expiry()
                position = self.backend.position()
                # Only when the index is at the head: a document derived now must not get ahead
                # of a change still to be applied (its old links would be lost).
                if today < self._expiry or position == 0 or store.last_seq() != position:
                    return
                due = self.backend.expiring(today)
                self._write(due, {}, {}, {}, store, position, today)
                self._expiry = self.backend.next_expiry()
        except Exception:  # noqa: BLE001 - retried on the next search or write
            log.exception("refreshing dated search facts failed")


# --- what a dependant sees of a changed record ------------------------------------------------------
def reader_view(summary: Summary | None) -> tuple[str, str] | None:
    """What a document that read `summary` through its resolver shows of it (search/documents.py:
    names of owners, colleges, quality assurance and stacking links, and the linked record's type)."""
    return None if summary is None else (summary.name, summary.type)


def link_view(summary: Summary | None, target: str) -> tuple[Any, ...] | None:
    """What the document of `target` shows of a record that links to it (its inbound facts): the
    relations, and for a list the membership dates, for a transfer value its terms."""
    if summary is None:
        return None
    relations = summary.relations_to(target)
    if not relations:
        return None
    view: tuple[Any, ...] = (tuple(sorted(relations)),)
    if MEMBER in relations:
        view += (summary.name, tuple(summary.intervals_of(target)))
    if TRANSFER in relations:
        view += (summary.name, summary.credits, summary.credit_unit, tuple(summary.owners),
                 tuple(summary.transfer_for), summary.start, summary.end)
    return view


def link_targets(before: Summary | None, after: Summary | None) -> set[str]:
    """The link targets of a changed record whose documents show something that changed: a list
    that adds, ends or re-dates one member re-derives that member, not all of them."""
    targets = {t for s in (before, after) if s is not None for _, t in s.links()}
    return {t for t in targets if link_view(before, t) != link_view(after, t)}
