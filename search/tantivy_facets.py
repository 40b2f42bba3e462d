"""Facet counts on Tantivy: the passes a request needs, and how each facet of a pass is counted.

Multi-select: a facet whose own field is filtered is counted over the query without that filter
(a pass of its own); the other facets share the main query's pass. A term facet is counted one of
two ways, both exact:
- "columns": a terms aggregation over its set column (one key per document, the set of its
  values), whose cost grows with the documents the pass matches (~15-20 ns each);
- "postings": `terms_with_prefix` with the pass as filter, which walks every posting of the
  facet's indexed field once (~4-10 ns each) whatever the pass matches: cheaper for passes that
  match a large part of the index (a landing page, one broad filter).
The cheaper one is picked from an estimate of the documents a pass matches. Range facets are the
same choice between a range aggregation and the postings of their slot terms. The units of work
run on two threads while the calling thread finds the hits: Tantivy releases the GIL while it
searches and aggregates, so one request uses both cores.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
import tantivy

from search import timeline
from search.backend import range_agg, range_edges
from search.fields import RANGE_FIELDS, TERM_FIELDS
from search.query import SearchQuery
from search.tantivy_schema import (
    FACET_TERMS,
    RANGE_SLOTS,
    SET_COLUMNS,
    SET_SEPARATOR,
    threshold_slots,
    type_counts,
)

# Tantivy's terms aggregation counts per segment: with every key of a segment returned, the
# merged counts are exact (segments play the part of shards). A response that still left keys
# out (more distinct sets than this) is recounted through postings.
SEGMENT_SIZE = 65_000
COLUMN_NS = 20  # cost per matched document of a set-column aggregation
POSTING_NS = 8  # cost per posting of a terms_with_prefix walk
TERM_NS = 2_000  # cost per term of that walk (dictionary step, a Python tuple)
MODE: str | None = None  # "columns" or "postings" forces one way (tests check both are exact)
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="credreg-facets")


@dataclass
class Pass:
    query: tantivy.Query
    matched: int  # documents it matches (estimated for multi-select passes)
    facets: list[str] = field(default_factory=list)
    everything: bool = False  # no text, no filter: the counts are the index's own (see Unfiltered)


class Unfiltered:
    """Counts per value over the whole index, per index generation: what a landing page shows, and
    what every single-filter request shows for the facet of its own field (multi-select leaves
    that facet unfiltered). They are statistics of the index, like its document frequencies
    (which cannot serve here: they include deleted documents), so they are worked out once per
    generation and dropped by the next commit, whatever the requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._counts: dict[tuple[Any, ...], Any] = {}

    def get(self, generation: int, key: tuple[Any, ...], count: Callable[[], Any]) -> Any:
        with self._lock:
            if generation != self._generation:
                self._generation, self._counts = generation, {}
            if key in self._counts:
                return copy.deepcopy(self._counts[key])  # callers sum into range buckets
        counted = count()
        with self._lock:
            if generation == self._generation:
                self._counts[key] = counted
        return copy.deepcopy(counted)


class FieldStats:
    """Postings and terms per indexed field, per index generation (for the cost estimate)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = -1
        self._stats: dict[tuple[str, str], tuple[int, int]] = {}

    def get(self, searcher: tantivy.Searcher, name: str, prefix: str, generation: int) -> tuple[int, int]:
        with self._lock:
            if generation != self._generation:
                self._generation, self._stats = generation, {}
            if (name, prefix) in self._stats:
                return self._stats[name, prefix]
        terms = searcher.terms_with_prefix(name, prefix)  # document frequencies, deletes included
        stats = (sum(int(c) for _, c in terms), len(terms))
        with self._lock:
            self._stats[name, prefix] = stats
        return stats


def plan(query: SearchQuery, main: tantivy.Query, searcher: tantivy.Searcher,
         build: Callable[[str], tantivy.Query]) -> list[Pass]:
    """One pass for the facets whose field is not filtered, one per facet whose field is."""
    active = set(query.filters) | set(query.ranges)
    plain = not query.terms and query.near is None
    shared = Pass(main, _estimate(query, None, searcher), [f for f in query.facets if f not in active],
                  plain and not active)
    passes = [shared] if shared.facets else []
    for name in query.facets:
        if name in active:
            passes.append(Pass(build(name), _estimate(query, name, searcher), [name], plain and active == {name}))
    return passes


def _estimate(query: SearchQuery, skip: str | None, searcher: tantivy.Searcher) -> int:
    """Documents matched without the filter on `skip` (an upper bound: the smallest of the other
    filters, their terms' document frequencies summed). With text, 0: a text query is evaluated
    again by every postings count, so its passes always read columns."""
    if query.terms or query.near is not None:
        return 0
    bounds = [searcher.num_docs]
    for param, values in query.filters.items():
        if param not in (skip, "list"):  # list filters are day-block terms: not worth summing
            bounds.append(sum(searcher.doc_freq(TERM_FIELDS[param].index, v) for v in values))
    for param, bound in query.ranges.items():
        slots = threshold_slots(param, bound) if param != skip else None
        if slots is not None:
            bounds.append(sum(searcher.doc_freq(RANGE_SLOTS, slot) for slot in slots))
    return min(bounds)


def start(passes: list[Pass], query: SearchQuery, searcher: tantivy.Searcher, stats: FieldStats,
          generation: int, lists_fresh: bool, unfiltered: Unfiltered | None = None) -> Callable[[], dict[str, Any]]:
    """Start counting every facet of every pass on the facet threads (the caller meanwhile finds
    the hits); the returned function waits for the counts per value (range facets: buckets)."""
    units: list[Callable[[], dict[str, Any]]] = []
    for p in passes:
        columns: dict[str, Any] = {}
        for name in p.facets:
            how = _how(name, p, searcher, stats, generation, lists_fresh)
            if p.everything and unfiltered is not None:
                aggregation = _aggregation(name, query, lists_fresh)
                count = partial(_postings_of, searcher, p.query, name) if how == "postings" \
                    else partial(_columns, searcher, p.query, {name: aggregation})
                key = (name, how, lists_fresh, orjson.dumps(aggregation, option=orjson.OPT_SORT_KEYS))
                units.append(partial(unfiltered.get, generation, key, count))
            elif how == "postings":
                units.append(partial(_postings_of, searcher, p.query, name))
            else:
                columns[name] = _aggregation(name, query, lists_fresh)
        if columns:
            units.append(partial(_columns, searcher, p.query, columns))
    futures = [_POOL.submit(unit) for unit in units]

    def finish() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for future in futures:
            out.update(future.result())
        return out
    return finish


def start_combined(base: tantivy.Query, filters: dict[str, str], query: SearchQuery,
                   searcher: tantivy.Searcher, lists_fresh: bool,
                   build: Callable[[str | None], tantivy.Query]) -> Callable[[], dict[str, Any]]:
    """Every pass as a filter aggregation under one request on `base` (text, `near`), `filters`
    being each active filter as a query string: the base is evaluated once for all the passes
    instead of once per pass (most of a text pass's cost: fuzzy terms are unions of postings;
    `near` is a union of cell terms less the candidates out of the radius)."""
    active = set(filters)
    shared = [f for f in query.facets if f not in active]
    spec: dict[str, Any] = {}
    if shared:
        spec["main"] = {"filter": " AND ".join(filters.values()),
                        "aggs": {name: _aggregation(name, query, lists_fresh) for name in shared}}
    for name in query.facets:
        if name in active:
            others = [text for param, text in filters.items() if param != name]
            aggs = {name: _aggregation(name, query, lists_fresh)}
            # Without the only filter, the pass is the base itself: counted at the top level of
            # the same request (not as a request of its own, which would evaluate the text again).
            spec[f"skip:{name}"] = {"filter": " AND ".join(others), "aggs": aggs} if others else aggs[name]
    future = _POOL.submit(searcher.aggregate, base, spec)

    def finish() -> dict[str, Any]:
        raw = future.result()
        out: dict[str, Any] = {}
        if shared:
            out.update(_read(searcher, raw["main"], spec["main"]["aggs"], lambda: build(None)))
        for key in spec:
            name = key.split(":", 1)[1] if key.startswith("skip:") else None
            if name is None:
                continue
            if "filter" in spec[key]:
                out.update(_read(searcher, raw[key], spec[key]["aggs"], partial(build, name)))
            else:
                out.update(_read(searcher, {name: raw[key]}, {name: spec[key]}, partial(build, name)))
        return out
    return finish


def _how(name: str, p: Pass, searcher: tantivy.Searcher, stats: FieldStats, generation: int,
         lists_fresh: bool) -> str:
    if name == "list" and not lists_fresh:
        return "columns"
    if MODE is not None:
        return MODE
    postings, terms = stats.get(searcher, *_terms_of(name), generation)
    return "postings" if p.matched * COLUMN_NS > postings * POSTING_NS + terms * TERM_NS else "columns"


def _aggregation(name: str, query: SearchQuery, lists_fresh: bool) -> dict[str, Any]:
    if name in RANGE_FIELDS:
        return range_agg(name)
    if name == "list" and not lists_fresh:  # membership on another day: the day-block column
        return {"terms": {"field": "list_at", "size": SEGMENT_SIZE, "segment_size": SEGMENT_SIZE,
                          "include": timeline.day_suffix_regex(query.as_of)}}
    return {"terms": {"field": SET_COLUMNS[name], "size": SEGMENT_SIZE, "segment_size": SEGMENT_SIZE}}


def _columns(searcher: tantivy.Searcher, query: tantivy.Query, aggs: dict[str, Any]) -> dict[str, Any]:
    return _read(searcher, searcher.aggregate(query, aggs), aggs, lambda: query)


def _read(searcher: tantivy.Searcher, raw: dict[str, Any], aggs: dict[str, Any],
          query: Callable[[], tantivy.Query]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in aggs:
        result = raw[name]
        if name in RANGE_FIELDS:
            out[name] = result["buckets"]
        elif int(result.get("sum_other_doc_count") or 0):  # keys left out: count through postings
            out[name] = _postings(searcher, query(), name)
        elif "include" in aggs[name]["terms"]:  # day-block terms: "<list ctid>:<block>"
            out[name] = _sum_keys(result["buckets"], lambda key: [key.split(":", 1)[0]])
        elif name == "type":  # keys are sets of a record's own classes: counted per lineage
            out[name] = type_counts(_sum_keys(result["buckets"], lambda key: [key]))
        else:
            out[name] = _sum_keys(result["buckets"], lambda key: key.split(SET_SEPARATOR))
    return out


def _sum_keys(buckets: list[dict[str, Any]], values: Callable[[str], list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for bucket in buckets:
        for value in values(str(bucket["key"])):
            counts[value] = counts.get(value, 0) + int(bucket["doc_count"])
    return counts


def _terms_of(name: str) -> tuple[str, str]:
    """The indexed field and term prefix holding a facet's values."""
    return (RANGE_SLOTS, f"{name}:") if name in RANGE_FIELDS else (FACET_TERMS[name], "")


def _postings_of(searcher: tantivy.Searcher, query: tantivy.Query, name: str) -> dict[str, Any]:
    return {name: _postings(searcher, query, name)}


def _postings(searcher: tantivy.Searcher, query: tantivy.Query, name: str) -> Any:
    """Counts per value (range facets: the buckets of range_agg) from the postings."""
    field_name, prefix = _terms_of(name)
    found = searcher.terms_with_prefix(field_name, prefix, filter_query=query)
    if name not in RANGE_FIELDS:
        return {str(term): int(n) for term, n in found if n}
    edges = range_edges(name)
    buckets: list[dict[str, Any]] = [{"doc_count": 0} for _ in range(len(edges) + 1)]
    for i, bucket in enumerate(buckets[1:]):
        bucket["from"] = edges[i]
    for term, n in found:
        buckets[int(str(term)[len(prefix):])]["doc_count"] += int(n)
    return buckets
