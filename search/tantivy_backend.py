"""The embedded search engine: a Tantivy index under the data directory.

Writes come from the projection in the committer thread, one commit per group of changes; the
projection's state (position, links, dependencies, summaries) lives in the same index, so a commit
is atomic for all of it and a crash leaves the previous commit intact. The reader is reloaded
explicitly after each commit, so a publish is searchable when its HTTP call returns.
"""
from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import tantivy

from search import taxonomy, timeline
from search.backend import META_ID, Page, Suggestion, chunks
from search.documents import SearchDocument
from search.query import SearchQuery
from search.summary import Summary
from search.tantivy_query import QueryBuilder
from search.tantivy_schema import (
    BULK_HEAP,
    BULK_THREADS,
    LAYOUT_VERSION,
    WRITER_HEAP,
    build_schema,
    hits_count,
    register_tokenizers,
    stored_bytes,
    stored_text,
    to_fields,
    to_json,
)

log = logging.getLogger("credreg.search")
NAMES_KEPT = 10_000
CANDIDATES_AT_ONCE = 4_096  # radius-check candidates read with their count in one search


class TantivyBackend:
    name = "tantivy"

    def __init__(self, directory: Path | None, threads: int = 1) -> None:
        """`directory` None: an index in memory (tests)."""
        self.schema = build_schema()
        self.path = None if directory is None else directory / f"tantivy-v{LAYOUT_VERSION}"
        if directory is not None and self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            for old in directory.glob("tantivy-v*"):  # layouts this code no longer reads
                if old != self.path:
                    shutil.rmtree(old, ignore_errors=True)
        self.index = tantivy.Index(self.schema, str(self.path) if self.path else None)
        register_tokenizers(self.index)
        self.index.config_reader("Manual")
        self.threads = threads
        self.writer = self.index.writer(WRITER_HEAP, threads)
        self.queries = QueryBuilder(self.schema, self.index, self._points_of, self.lists_fresh)
        self._lock = threading.Lock()
        self._reset = False
        self._generation = 0
        self._expiry: int | None = None  # smallest valid_until in the index (None: unknown)
        self._position: int | None = None  # what the last commit recorded (None: read the index)
        self._names: tuple[int, dict[str, str]] = (-1, {})  # generation, names by CTID

    # --- projection state ------------------------------------------------------------------------
    def _meta(self) -> tantivy.Document | None:
        searcher = self.index.searcher()
        found = searcher.search(tantivy.Query.term_query(self.schema, "ctid", META_ID), 1).hits
        return searcher.doc(found[0][1]) if found else None

    def position(self) -> int:
        if self._reset:
            return 0
        if self._position is None:  # this process commits every change: read once, then kept
            meta = self._meta()
            self._position = int(meta.get_first("position") or 0) if meta else 0
        return self._position

    def pending(self) -> list[str]:
        return []  # a commit is atomic: nothing half-written survives a crash

    def _add(self, d: SearchDocument) -> None:
        self.writer.delete_documents_by_term("ctid", d.ctid)
        self.writer.add_document(tantivy.Document.from_dict(to_fields(d), self.schema))

    def _commit(self, position: int) -> None:
        self.writer.delete_documents_by_term("ctid", META_ID)
        self.writer.add_document(tantivy.Document.from_dict(
            {"ctid": META_ID, "position": position}, self.schema))
        self.writer.commit()
        self._position = position
        self.index.reload()
        self._generation += 1

    def write(self, docs: list[SearchDocument], deletes: list[str], position: int) -> None:
        with self._lock:
            try:
                for ctid in deletes:
                    self.writer.delete_documents_by_term("ctid", ctid)
                for d in docs:
                    self._add(d)
                self._commit(position)
            except BaseException:
                self.writer.rollback()
                raise
            if self._expiry is not None:  # removed documents can only make it later: stays safe
                self._expiry = min([self._expiry, *(d.valid_until for d in docs)])

    def rebuild(self, docs: Iterable[SearchDocument], position: int) -> int:
        return self.load((to_fields(d) for d in docs), position)

    def load(self, fields: Iterable[dict[str, Any]], position: int) -> int:
        """Replace the whole index by documents given as field values, in one commit, with a
        writer sized for bulk work (more heap: fewer, larger segments; a second indexing thread)."""
        with self._lock:
            self.writer.rollback()
            del self.writer  # its lock must go before the bulk writer takes it
            writer = self.index.writer(BULK_HEAP, BULK_THREADS)
            count = 0
            try:
                writer.delete_all_documents()
                for values in fields:
                    writer.add_json(to_json(values))
                    count += 1
                writer.delete_documents_by_term("ctid", META_ID)
                writer.add_document(tantivy.Document.from_dict(
                    {"ctid": META_ID, "position": position}, self.schema))
                writer.commit()
                self._position = position
            except BaseException:
                writer.rollback()
                raise
            finally:
                writer.wait_merging_threads()  # merges finish here, not under the first searches
                self.writer = self.index.writer(WRITER_HEAP, self.threads)
            self.index.reload()
            self._generation += 1
            self._reset = False
            self._expiry = None
            return count

    def reset(self) -> None:
        # Nothing is removed yet: searches keep the old index until the rebuild commits.
        self._reset = True

    # --- lookups for dependency tracking -------------------------------------------------------
    def _docs(self, query: tantivy.Query, at_most: int | None = None) -> list[tantivy.Document]:
        searcher = self.index.searcher()
        if at_most is None:
            at_most = hits_count(searcher.search(query, 1, count=True))
        if not at_most:
            return []
        return [searcher.doc(addr) for _, addr in searcher.search(query, at_most, count=False).hits]

    def _ctids(self, query: tantivy.Query) -> set[str]:
        return {stored_text(d, "ctid") for d in self._docs(query)}

    def _terms(self, field: str, values: list[str]) -> tantivy.Query:
        return tantivy.Query.term_set_query(self.schema, field, values)

    def links_of(self, ctids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for chunk in chunks(ctids):
            for doc in self._docs(self._terms("ctid", chunk), len(chunk)):
                out[stored_text(doc, "ctid")] = [str(v) for v in doc.get_all("link_dst")]
        return out

    def linking_to(self, ctids: list[str]) -> dict[str, Summary]:
        out: dict[str, Summary] = {}
        for chunk in chunks(ctids):
            for doc in self._docs(self._terms("link_dst", chunk)):
                out[stored_text(doc, "ctid")] = Summary.from_json(stored_bytes(doc, "summary"))
        return out

    def readers_of(self, ctids: list[str]) -> set[str]:
        out: set[str] = set()
        for chunk in chunks(ctids):
            out |= self._ctids(self._terms("deps", chunk))
        return out

    def summaries(self, ctids: list[str]) -> dict[str, Summary]:
        out: dict[str, Summary] = {}
        for chunk in chunks(ctids):
            for doc in self._docs(self._terms("ctid", chunk), len(chunk)):
                out[stored_text(doc, "ctid")] = Summary.from_json(stored_bytes(doc, "summary"))
        return out

    def expiring(self, day: int) -> list[str]:
        query = tantivy.Query.range_query(self.schema, "valid_until", tantivy.FieldType.Unsigned,
                                          upper_bound=day)
        return sorted(self._ctids(query))

    def next_expiry(self) -> int:
        from search.timeline import OPEN_END

        agg = self.index.searcher().aggregate(tantivy.Query.all_query(),
                                              {"m": {"min": {"field": "valid_until"}}})
        value = agg["m"].get("value")
        return OPEN_END if value is None else int(value)

    def lists_fresh(self, day: int) -> bool:
        """Whether `lists_now` answers "on the list on `day`": only for today, and only while no
        document is past its valid_until (the projection re-derives those)."""
        if day != timeline.today():
            return False
        if self._expiry is None or day >= self._expiry:
            self._expiry = self.next_expiry()
        return day < self._expiry

    def _points_of(self, query: tantivy.Query) -> dict[int, list[tuple[float, float]]]:
        """Points of the matching documents by doc_key: from the columns when a document has one
        point (most do), from its stored points otherwise."""
        searcher = self.index.searcher()
        # One evaluation when the candidates are few (a 150 km circle at 1M documents: ~600).
        result = searcher.search(query, CANDIDATES_AT_ONCE, count=True)
        total = hits_count(result)
        if total > CANDIDATES_AT_ONCE:
            result = searcher.search(query, total, count=False)
        addrs = [addr for _, addr in result.hits]
        if not addrs:
            return {}
        columns = [searcher.fast_field_values(name, addrs) for name in ("key", "npoints", "lat", "lon")]
        out: dict[int, list[tuple[float, float]]] = {}
        for addr, key, count, lat, lon in zip(addrs, *columns, strict=True):
            if count == 1 and lat is not None and lon is not None:
                out[int(key or 0)] = [(float(lat), float(lon))]
            else:
                stored = orjson.loads(stored_bytes(searcher.doc(addr), "points"))
                out[int(key or 0)] = [(float(p[0]), float(p[1])) for p in stored]
        return out

    # --- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        searcher = self.index.searcher()
        return hits_count(searcher.search(self.queries.visible(tantivy.Query.all_query()), 1, count=True))

    def search(self, query: SearchQuery) -> Page:
        # The generation before the searcher: a commit between the two then files newer counts
        # under the old generation (about to be dropped), never older counts under the new one.
        generation = self._generation
        return self.queries.run(self.index.searcher(), query, generation)

    def names(self, ctids: list[str]) -> dict[str, str]:
        """Names of facet values (lists, organizations), kept per index generation: a list's stored
        document carries every member link, so reading one costs ~0.5 ms, and the same values label
        the facets of many different requests."""
        if not ctids:
            return {}
        generation = self._generation  # before the searcher, as in search()
        known = self._names
        if known[0] != generation or len(known[1]) > NAMES_KEPT:
            known = self._names = (generation, {})
        missing = [c for c in ctids if c not in known[1]]
        if missing:
            searcher = self.index.searcher()
            for _, addr in searcher.search(self._terms("ctid", missing), len(missing)).hits:
                card = orjson.loads(stored_bytes(searcher.doc(addr), "card"))
                known[1][card["ctid"]] = card["name"]
        return {c: known[1][c] for c in ctids if c in known[1]}

    def suggest(self, terms: tuple[str, ...], limit: int) -> list[Suggestion]:
        if not terms:
            return []
        searcher = self.index.searcher()
        out = self.queries.suggest_names(searcher, terms, limit)
        candidates = taxonomy.occupations_matching(list(terms))
        if candidates:
            codes = [c for c, _ in candidates]
            # Counted over the documents with those codes only: a few, not the whole index.
            found = searcher.terms_with_prefix("soc", "", filter_query=self._terms("soc", codes))
            wanted = set(codes)
            counts = {code: int(n) for code, n in found if code in wanted}
            ranked = sorted((c for c in candidates if counts.get(c[0])), key=lambda c: (-counts[c[0]], c[1]))
            out += [Suggestion(title, "occupation", code=code, count=counts[code])
                    for code, title in ranked[:limit]]
        return out

    def close(self) -> None:
        with self._lock:
            try:
                self.writer.wait_merging_threads()
            except Exception:  # noqa: BLE001 - closing: nothing left to do about it
                log.exception("waiting for Tantivy merges")
