"""GET /search on Tantivy: the typed query as Tantivy queries and aggregations.

Semantics shared with the Elasticsearch backend (search/elasticsearch_query.py):
- text: every term must match one of the text fields, exactly (BM25, boosted per field) or one
  edit away (scored 0, so every exact match ranks above every match one edit away);
- filters: OR within a field, AND across fields; lists through day-block terms; `near` through
  cell terms with boundary candidates checked exactly (search/geo.py);
- facets: multi-select — each facet is counted with every filter except its own.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
import tantivy

from registry.errors import BadRequest
from search import geo, timeline
from search import tantivy_facets as facets
from search.backend import (
    META_ID,
    Hit,
    Page,
    Suggestion,
    rank_names,
    sort_facet,
    threshold_counts,
)
from search.fields import RANGE_FIELDS, TERM_FIELDS, TEXT_FIELDS
from search.query import MAX_RESUME_OFFSET, SearchQuery
from search.tantivy_schema import RANGE_SLOTS, hits_count, stored_bytes, threshold_slots

Must, Should, MustNot = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot
MAX_WINDOW = MAX_RESUME_OFFSET  # deepest result reachable by paging, in any order
# A word's typo branch is a regex instead of a fuzzy query in a field where it is in more documents
# than this per letter: reading its postings again costs ~8 ns a posting, compiling the regex
# ~0.1 ms a letter (docs/search.md). 0 in tests: every field takes the regex.
REGEX_POSTINGS_PER_LETTER = 12_500
SUGGEST_KINDS = ("credential", "organization")
_FLOAT = tantivy.FieldType.Float
_SORT_FIELDS: dict[str, tuple[str | None, tantivy.Order]] = {
    "relevance": (None, tantivy.Order.Desc), "name": ("sort_name", tantivy.Order.Asc),
    "newest": ("modified_us", tantivy.Order.Desc), "cost": ("cost", tantivy.Order.Asc),
    "duration": ("duration", tantivy.Order.Asc)}


def _term_set(field: str, values: Any) -> str:
    quoted = " ".join('"' + v + '"' for v in values)
    return f"{field}:IN [{quoted}]"


class QueryBuilder:
    def __init__(self, schema: tantivy.Schema, index: tantivy.Index,
                 points_of: Callable[[tantivy.Query], dict[int, list[tuple[float, float]]]],
                 lists_fresh: Callable[[int], bool]) -> None:
        self.schema, self.index, self.points_of, self.lists_fresh = schema, index, points_of, lists_fresh
        self._facet_cache: OrderedDict[tuple[Any, ...], dict[str, dict[str, int]]] = OrderedDict()
        self.facet_cache_size = 256  # 0: every request counts (bench/search.py measures that)
        self._field_stats = facets.FieldStats()
        self._unfiltered = facets.Unfiltered()
        self._meta = tantivy.Query.term_query(schema, "ctid", META_ID)
        self._covers: OrderedDict[tuple[Any, ...], tantivy.Query] = OrderedDict()
        self._regexes: OrderedDict[tuple[str, str], tantivy.Query | None] = OrderedDict()
        self._covers_lock = threading.Lock()

    def _bool(self, clauses: list[tuple[tantivy.Occur, tantivy.Query]]) -> tantivy.Query:
        return tantivy.Query.boolean_query(clauses)

    def visible(self, query: tantivy.Query) -> tantivy.Query:
        return self._bool([(Must, query), (MustNot, self._meta)])

    # --- clauses ---------------------------------------------------------------------------------
    def _text(self, terms: tuple[str, ...]) -> list[tantivy.Query]:
        from search.text import fuzziness

        searcher = self.index.searcher()
        out = []
        for term in terms:
            exact = tantivy.Query.disjunction_max_query(
                [tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, f, term), boost)
                 for f, boost in TEXT_FIELDS.items()], 0.1)
            if not fuzziness(term):
                out.append(exact)
                continue
            frequencies = {f: searcher.doc_freq(f, term) for f in TEXT_FIELDS}
            if not any(frequencies.values()):
                # No document holds the word itself (the query is the typo): its variants rank
                # by the field they are in, as the word would by its field boosts.
                typos = tantivy.Query.disjunction_max_query([tantivy.Query.boost_query(
                    tantivy.Query.const_score_query(self._one_edit(f, term, 0), 1.0), boost)
                    for f, boost in TEXT_FIELDS.items()], 0.0)
                out.append(typos)
                continue
            # One edit away, scored 0: every document matching the word itself ranks above every
            # one matching a typo of it only, whatever the fields (BM25 of an exact match > 0).
            typos = self._bool([(Should, self._one_edit(f, term, n)) for f, n in frequencies.items()])
            out.append(self._bool([(Should, exact), (Should, tantivy.Query.const_score_query(typos, 0.0))]))
        return out

    def _one_edit(self, field: str, term: str, frequency: int) -> tantivy.Query:
        """Documents with a term one edit away from `term` in `field`, or `term` itself: the exact
        branch matches those anyway. A fuzzy query's terms include `term`, so its postings (in
        `frequency` documents) are read twice; for a word that many documents hold, a regex of
        the variants alone is cheaper, though Tantivy compiles it per query. Either way the same
        documents match, but for variants with a letter that has no ASCII form (the regex's
        classes are ASCII)."""
        from search.text import one_edit_pattern

        if term.isascii() and term.isalnum() and frequency > REGEX_POSTINGS_PER_LETTER * len(term):
            # Compiled once per word and field (a request builds its text query once per pass);
            # None: past Tantivy's regex size limit (a long word), not to be tried again.
            with self._covers_lock:
                known = (field, term) in self._regexes
                if known:
                    self._regexes.move_to_end((field, term))
                    regex = self._regexes[field, term]
            if not known:
                try:
                    regex = tantivy.Query.regex_query(self.schema, field, one_edit_pattern(term))
                except ValueError:
                    regex = None
                with self._covers_lock:
                    self._regexes[field, term] = regex
                    while len(self._regexes) > 1024:
                        self._regexes.popitem(last=False)
            if regex is not None:
                return regex
        return tantivy.Query.fuzzy_term_query(self.schema, field, term, distance=1, transposition_cost_one=True)

    def _filter(self, query: SearchQuery, param: str) -> tantivy.Query:
        if param in RANGE_FIELDS:
            spec, bound = RANGE_FIELDS[param], query.ranges[param]
            slots = threshold_slots(param, bound)
            if slots is not None:
                return tantivy.Query.term_set_query(self.schema, RANGE_SLOTS, slots)
            if spec.upper:
                return tantivy.Query.range_query(self.schema, spec.index, _FLOAT, upper_bound=bound)
            return tantivy.Query.range_query(self.schema, spec.index, _FLOAT, lower_bound=bound)
        field, values = self._terms(query, param)
        return tantivy.Query.term_set_query(self.schema, field, list(values))

    def _terms(self, query: SearchQuery, param: str) -> tuple[str, tuple[str, ...]]:
        """The indexed field and terms a term filter matches."""
        values = tuple(query.filters[param])
        if param == "list":
            if self.lists_fresh(query.as_of):  # one term per list instead of one per day block
                return "lists_now", values
            values = tuple(t for ctid in values for t in timeline.day_terms(ctid, query.as_of))
        return TERM_FIELDS[param].index, values

    def _filter_strings(self, query: SearchQuery) -> dict[str, str] | None:
        """Each filter in the query language (for filter aggregations); None when a value cannot
        be written there safely."""
        out = {}
        for param in (*query.filters, *query.ranges):
            if param in RANGE_FIELDS:
                bound, spec = query.ranges[param], RANGE_FIELDS[param]
                slots = threshold_slots(param, bound)
                if slots is not None:
                    out[param] = _term_set(RANGE_SLOTS, slots)
                else:
                    out[param] = f"{spec.index}:[* TO {bound!r}]" if spec.upper else f"{spec.index}:[{bound!r} TO *]"
                continue
            field, values = self._terms(query, param)
            if not values or any('"' in v or "\\" in v for v in values):
                return None
            out[param] = _term_set(field, values)
        return out

    def _near(self, near: Any, generation: int, terms: tuple[str, ...] = ()) -> tantivy.Query:
        """Documents with a point within the radius, among those matching the text `terms` (every
        query this clause goes into holds them, so candidates without the text need no check).
        Cached per index generation: the candidate check reads columns or stored points."""
        key = (near.lat, near.lon, near.radius_km, terms, generation)
        with self._covers_lock:
            if key in self._covers:
                self._covers.move_to_end(key)
                return self._covers[key]
        c = geo.cover(near.lat, near.lon, near.radius_km)
        inside = tantivy.Query.term_set_query(self.schema, "geo", list(c.inside)) if c.inside \
            else tantivy.Query.empty_query()
        boundary = tantivy.Query.term_set_query(self.schema, "geo", list(c.boundary)) if c.boundary \
            else tantivy.Query.empty_query()
        # A radius of 150 km at 1M documents has ~600 candidates in its boundary cells; a rare
        # word leaves a handful of them. A common one would cost more to evaluate than it saves.
        restrict = [(Must, q) for q in self._text(terms)] if self._rare(terms) else []
        candidates = self.points_of(self._bool([(Must, boundary), (MustNot, inside), *restrict]))
        accepted: list[int] = []
        rejected: list[int] = []
        for doc, points in candidates.items():
            (accepted if c.contains(points) else rejected).append(doc)
        # Either way is exact; the shorter list of doc keys is the cheaper one in every pass.
        if len(accepted) <= len(rejected):
            clauses = [(Should, inside)]
            if accepted:
                clauses.append((Should, self._keys(accepted)))
            result = self._bool(clauses)
        else:
            result = self._bool([(Should, inside), (Should, boundary)])
            if rejected:
                result = self._bool([(Must, result), (MustNot, self._keys(rejected))])
        with self._covers_lock:
            self._covers[key] = result
            while len(self._covers) > 64:
                self._covers.popitem(last=False)
        return result

    def _rare(self, terms: tuple[str, ...]) -> bool:
        """Whether some term is in at most 1% of the documents (exactly; typo variants aside)."""
        if not terms:
            return False
        searcher = self.index.searcher()
        limit = searcher.num_docs // 100
        return any(sum(searcher.doc_freq(f, t) for f in TEXT_FIELDS) <= limit for t in terms)

    def _keys(self, keys: list[int]) -> tantivy.Query:
        """Documents by doc_key. A term set walks the key dictionary as an automaton: at 1M
        documents ~10 ms for 300 keys, where 300 term lookups take ~1.5 ms; they cost the same
        at ~3,000 keys."""
        if len(keys) > 2_000:
            return tantivy.Query.term_set_query(self.schema, "key", keys)
        return self._bool([(Should, tantivy.Query.term_query(self.schema, "key", k)) for k in keys])

    def build(self, query: SearchQuery, generation: int, skip: str | None = None) -> tantivy.Query:
        """Text and every filter, except the filter on `skip`."""
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(Must, q) for q in self._text(query.terms)]
        for param in (*query.filters, *query.ranges):
            if param != skip:
                clauses.append((Must, self._filter(query, param)))
        if query.near is not None:
            clauses.append((Must, self._near(query.near, generation, query.terms)))
        if not clauses:
            # Everything. Not "everything but the meta document" (a MustNot doubles the cost of
            # visiting a million documents): the meta document has no text, no filter values, no
            # facet values and no sort keys, so it only ever shows as the very last hit of this
            # query, where _hits drops it and takes it out of the total.
            return tantivy.Query.all_query()
        return self._bool(clauses)

    # --- execution -------------------------------------------------------------------------------
    def run(self, searcher: tantivy.Searcher, query: SearchQuery, generation: int) -> Page:
        main = self.build(query, generation)
        counts = self._facets(searcher, query, main, generation)  # counting on the facet threads
        hits, total, after = self._hits(searcher, query, main)
        return Page(total=total, hits=hits, facets=counts(), after=after)

    def _hits(self, searcher: tantivy.Searcher, query: SearchQuery, main: tantivy.Query
              ) -> tuple[list[Hit], int, Any]:
        """A page by offset (the cursor holds it): sort keys here are not unique, so there is no
        key to resume after (see tantivy_backend.build_schema)."""
        if query.after is not None and not isinstance(query.after, int):  # an Elasticsearch resume point
            raise BadRequest("This cursor was issued by another search engine; start again without "
                             "`cursor`.", parameter="cursor")
        offset = query.after or 0  # search/query.py let only an offset from 1 to MAX_WINDOW through
        field, order = _SORT_FIELDS[query.sort]
        meta = 0
        if not query.terms and not query.has_filter:  # all_query: the meta document is in there
            meta = hits_count(searcher.search(self._meta, 1, count=True))
        hits: list[Hit] = []
        while True:  # more than once only if a page held nothing but the meta document
            if offset >= MAX_WINDOW:
                return hits, hits_count(searcher.search(main, 1, count=True)) - meta, None
            limit = min(query.limit, MAX_WINDOW - offset)
            if field is None:
                result = searcher.search(main, limit, count=True, offset=offset)
            else:
                result = searcher.search(main, limit, count=True, order_by_field=field, order=order,
                                         offset=offset)
            positions = hits_count(result)
            found = [self._hit(searcher, addr, None if field else float(key)) for key, addr in result.hits]
            hits = [h for h in found if h is not None]
            offset += len(result.hits)  # positions consumed, the meta document's included
            # Every document has a name and a date and the meta document neither: it sorts last.
            end = positions - meta if field in ("sort_name", "modified_us") else positions
            more = bool(result.hits) and offset < min(end, MAX_WINDOW)
            if hits or not more:
                return hits, positions - meta, offset if more else None

    def _hit(self, searcher: tantivy.Searcher, addr: tantivy.DocAddress, score: float | None) -> Hit | None:
        doc = searcher.doc(addr)
        if doc.get_first("card") is None:  # the meta document
            return None
        card = orjson.loads(stored_bytes(doc, "card"))
        return Hit(card["ctid"], card, score)

    def _facets(self, searcher: tantivy.Searcher, query: SearchQuery, main: tantivy.Query,
                generation: int) -> Callable[[], dict[str, dict[str, int]]]:
        if not query.facets:
            return dict
        # The same counts are asked for again and again (a landing page, a popular filter):
        # computed once per index generation (every commit starts a new one).
        key = (query.fingerprint(), query.as_of, query.facets, query.facet_size, generation, facets.MODE)
        with self._covers_lock:
            if key in self._facet_cache:
                self._facet_cache.move_to_end(key)
                cached = self._facet_cache[key]
                return lambda: cached
        fresh = "list" in query.facets and self.lists_fresh(query.as_of)
        # Text and `near` cost the most to evaluate: with either, every pass is one request.
        strings = self._filter_strings(query) if query.terms or query.near is not None else None
        if strings and any(f in strings for f in query.facets):
            base = list(self._text(query.terms))
            if query.near is not None:
                base.append(self._near(query.near, generation, query.terms))
            raw = facets.start_combined(self._bool([(Must, q) for q in base]), strings, query, searcher, fresh,
                                        lambda skip: self.build(query, generation, skip=skip))
        else:
            passes = facets.plan(query, main, searcher, lambda skip: self.build(query, generation, skip=skip))
            raw = facets.start(passes, query, searcher, self._field_stats, generation, fresh, self._unfiltered)

        def finish() -> dict[str, dict[str, int]]:
            counts = self._counts(query, raw())
            with self._covers_lock:
                self._facet_cache[key] = counts
                while len(self._facet_cache) > self.facet_cache_size:
                    self._facet_cache.popitem(last=False)
            return counts
        return finish

    def _counts(self, query: SearchQuery, raw: dict[str, Any]) -> dict[str, dict[str, int]]:
        out = {}
        for name in query.facets:
            if name in RANGE_FIELDS:
                out[name] = threshold_counts(name, raw[name])  # every threshold, zeros included
            else:
                out[name] = sort_facet(raw[name], query.facet_size)
        return out

    # --- autocomplete ----------------------------------------------------------------------------
    def suggest_names(self, searcher: tantivy.Searcher, terms: tuple[str, ...], limit: int
                      ) -> list[Suggestion]:
        *whole, last = terms
        clauses = [(Must, tantivy.Query.term_query(self.schema, "names", t)) for t in whole]
        clauses.append((Must, tantivy.Query.fuzzy_term_query(self.schema, "names", last, distance=0,
                                                              prefix=True)))
        clauses.append((Must, tantivy.Query.term_set_query(self.schema, "kind", list(SUGGEST_KINDS))))
        result = searcher.search(self._bool(clauses), 50, count=False)
        found = []
        for _, addr in result.hits:
            card = orjson.loads(stored_bytes(searcher.doc(addr), "card"))
            found.append(Suggestion(card["name"], card["kind"], ctid=card["ctid"]))
        return rank_names(found, terms, limit)
