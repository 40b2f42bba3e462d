"""The protocol every search engine implements (Tantivy embedded, Elasticsearch/OpenSearch), the
result shapes, and what the engines share: facet ordering and threshold counting.

Besides search, a backend keeps the projection's state *in the index itself*, so it commits with
the documents: the change-log position (a meta document), each document's outgoing links
(`link_dst`), the records it read (`deps`), its summary, and the day its dated facts next change
(`valid_until`). See search/projection.py for how they are used.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from search.documents import SearchDocument
from search.fields import RANGE_FIELDS, threshold_key
from search.query import SearchQuery
from search.summary import Summary

META_ID = "_meta"  # the document holding the change-log position


@dataclass(slots=True)
class Hit:
    ctid: str
    card: dict[str, Any]
    score: float | None = None


@dataclass(slots=True)
class Page:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    after: Any = None  # resume point for the next page, None on the last page


@dataclass(slots=True)
class Suggestion:
    text: str
    kind: str  # credential | organization | learning_opportunity | ... | occupation
    ctid: str | None = None
    code: str | None = None
    count: int | None = None


class Backend(Protocol):
    name: str

    # --- projection state ------------------------------------------------------------------------
    def position(self) -> int:
        """The change-log sequence the committed index reflects."""
        ...

    def pending(self) -> list[str]:
        """CTIDs a write that did not complete may have left stale (empty for atomic engines)."""
        ...

    def write(self, docs: list[SearchDocument], deletes: list[str], position: int) -> None:
        """Replace `docs`, remove `deletes`, record `position`: visible to searches on return."""
        ...

    def rebuild(self, docs: Iterable[SearchDocument], position: int) -> int:
        """Replace the whole index by `docs` at `position`; searches see the old index until the
        new one is complete. Returns the number of documents written."""
        ...

    def reset(self) -> None: ...

    def links_of(self, ctids: list[str]) -> dict[str, list[str]]:
        """`link_dst` of the indexed documents among `ctids`."""
        ...

    def linking_to(self, ctids: list[str]) -> dict[str, Summary]:
        """Summaries of the documents linking to any of `ctids`."""
        ...

    def readers_of(self, ctids: list[str]) -> set[str]:
        """Documents that read any of `ctids` while they were derived."""
        ...

    def summaries(self, ctids: list[str]) -> dict[str, Summary]: ...

    def expiring(self, day: int) -> list[str]:
        """Documents whose dated facts changed on or before `day`."""
        ...

    def next_expiry(self) -> int:
        """The smallest `valid_until` in the index."""
        ...

    # --- reading ---------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> Page: ...

    def suggest(self, terms: tuple[str, ...], limit: int) -> list[Suggestion]: ...

    def names(self, ctids: list[str]) -> dict[str, str]:
        """Display names of indexed records (facet labels)."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...


def rank_names(found: list[Suggestion], terms: tuple[str, ...], limit: int) -> list[Suggestion]:
    """Name completions, best first: names that start with what was typed, then shorter names."""
    from search.text import sort_text

    typed = " ".join(terms)
    unique: dict[str, Suggestion] = {}
    for s in found:
        unique.setdefault(s.text.casefold(), s)
    return sorted(unique.values(), key=lambda s: (not sort_text(s.text, 200).startswith(typed),
                                                  len(s.text), s.text))[:limit]


def sort_facet(counts: dict[str, int], size: int) -> dict[str, int]:
    """The `size` largest counts, ties by value, zero counts dropped (one order on every engine)."""
    ordered = sorted(((v, c) for v, c in counts.items() if c > 0), key=lambda vc: (-vc[1], vc[0]))
    return dict(ordered[:size])


def range_edges(param: str) -> list[float]:
    """Bucket edges for a threshold facet. Range aggregations count [from, to): for an upper
    bound (value <= t) each edge is nudged just above its threshold so the threshold counts."""
    spec = RANGE_FIELDS[param]
    return [math.nextafter(float(t), math.inf) if spec.upper else float(t) for t in spec.thresholds]


def range_agg(param: str) -> dict[str, Any]:
    """A range aggregation, in the syntax Tantivy and Elasticsearch share: one bucket below the
    first edge, one between each pair of edges, one above the last."""
    edges = range_edges(param)
    ranges: list[dict[str, float]] = [{"to": edges[0]}]
    ranges += [{"from": lo, "to": hi} for lo, hi in zip(edges, edges[1:], strict=False)]
    ranges.append({"from": edges[-1]})
    return {"range": {"field": RANGE_FIELDS[param].index, "ranges": ranges}}


def threshold_counts(param: str, buckets: list[dict[str, Any]]) -> dict[str, int]:
    """Counts at each threshold (documents at or under it, or at or over it for a lower bound)
    from the buckets of `range_agg`, matched by their edges (an empty index returns none)."""
    spec = RANGE_FIELDS[param]
    edges = range_edges(param)
    between = [0] * (len(edges) + 1)  # below edge 0, between edges, above the last
    for bucket in buckets:
        if "from" not in bucket or bucket["from"] is None:
            slot = 0
        else:
            slot = 1 + min(range(len(edges)), key=lambda i: abs(edges[i] - float(bucket["from"])))
        between[slot] += int(bucket.get("doc_count", 0))
    out: dict[str, int] = {}
    for i, t in enumerate(spec.thresholds):
        # Upper bound t: everything below edge i; lower bound t: everything from edge i up.
        out[threshold_key(t)] = sum(between[: i + 1]) if spec.upper else sum(between[i + 1:])
    return out


def chunks(items: list[str], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
