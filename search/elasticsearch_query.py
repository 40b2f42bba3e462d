"""GET /search on Elasticsearch/OpenSearch: the typed query as query DSL, and the response parsed
back. The same semantics as search/tantivy_query.py:

- text: per term, a dis_max of exact term queries (field boosts) or, one edit away, fuzzy queries
  in filter context (score 0, so every exact match ranks above every match one edit away);
- filters: OR within a field (terms), AND across fields; lists as day-block terms; `near` as
  geo_distance on the points;
- facets, multi-select: filters on fields that are also facets go to `post_filter` (they narrow
  the hits, not the aggregations); each facet's aggregation sits in a `filter` aggregation with
  every *other* facet filter.
"""
from __future__ import annotations

from typing import Any

from search import timeline
from search.backend import META_ID, Hit, Page, range_agg, sort_facet, threshold_counts
from search.fields import RANGE_FIELDS, TERM_FIELDS, TEXT_FIELDS
from search.query import SearchQuery
from search.text import fuzziness

TERMS_SIZE_LISTS = 10_000  # day-block terms of every list (at most lists x 18)
_SORTS: dict[str, list[dict[str, Any]]] = {
    "relevance": [{"_score": "desc"}, {"ctid": "asc"}],
    "name": [{"sort_name": "asc"}, {"ctid": "asc"}],
    "newest": [{"modified_us": "desc"}, {"ctid": "asc"}],
    "cost": [{"cost": {"order": "asc", "missing": "_last"}}, {"ctid": "asc"}],
    "duration": [{"duration": {"order": "asc", "missing": "_last"}}, {"ctid": "asc"}],
}
NOT_META = {"term": {"kind": META_ID}}


def text_clauses(terms: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for term in terms:
        exact = {"dis_max": {"tie_breaker": 0.1, "queries": [
            {"term": {f: {"value": term, "boost": boost}}} for f, boost in TEXT_FIELDS.items()]}}
        if not fuzziness(term):
            out.append(exact)
            continue
        # In filter context the fuzzy queries score 0, as Tantivy's typo branch does: a term one
        # edit away matches, and every exact match ranks above it. The constant-score rewrite
        # takes every term within the distance, as Tantivy does (the default rewrite keeps the
        # max_expansions closest ones, 50, and would drop matches on a large vocabulary).
        typos = {"bool": {"filter": [{"bool": {"minimum_should_match": 1, "should": [
            {"fuzzy": {f: {"value": term, "fuzziness": fuzziness(term), "transpositions": True,
                           "prefix_length": 0, "rewrite": "constant_score"}}}
            for f in TEXT_FIELDS]}}]}}
        out.append({"bool": {"should": [exact, typos], "minimum_should_match": 1}})
    return out


def filter_clause(query: SearchQuery, param: str) -> dict[str, Any]:
    if param in RANGE_FIELDS:
        spec = RANGE_FIELDS[param]
        return {"range": {spec.index: {"lte" if spec.upper else "gte": query.ranges[param]}}}
    values = list(query.filters[param])
    if param == "list":
        values = [t for ctid in values for t in timeline.day_terms(ctid, query.as_of)]
    return {"terms": {TERM_FIELDS[param].index: values}}


def near_clause(query: SearchQuery) -> dict[str, Any]:
    assert query.near is not None
    return {"geo_distance": {"distance": f"{query.near.radius_km}km",
                             "points": {"lat": query.near.lat, "lon": query.near.lon}}}


def facet_agg(name: str, query: SearchQuery) -> dict[str, Any]:
    if name in RANGE_FIELDS:
        return range_agg(name)
    spec = TERM_FIELDS[name]
    terms: dict[str, Any] = {"field": spec.index, "size": query.facet_size}
    if name == "list":
        terms.update(size=TERMS_SIZE_LISTS, include=timeline.day_suffix_regex(query.as_of))
    elif spec.facet_include:
        terms["include"] = spec.facet_include
    return {"terms": terms}


def body(query: SearchQuery) -> dict[str, Any]:
    """The request body of a search."""
    facet_fields = set(query.facets)
    params = [*query.filters, *query.ranges]
    main_filters = [filter_clause(query, p) for p in params if p not in facet_fields]
    if query.near is not None:
        main_filters.append(near_clause(query))
    post = {p: filter_clause(query, p) for p in params if p in facet_fields}
    bool_query: dict[str, Any] = {"must_not": [NOT_META]}
    if query.terms:
        bool_query["must"] = text_clauses(query.terms)
    if main_filters:
        bool_query["filter"] = main_filters
    out: dict[str, Any] = {
        "query": {"bool": bool_query}, "size": query.limit, "track_total_hits": True,
        "sort": _SORTS[query.sort], "_source": ["card"]}
    if post:
        out["post_filter"] = {"bool": {"filter": list(post.values())}}
    if query.facets:
        out["aggs"] = {name: {"filter": {"bool": {"filter": [c for p, c in post.items() if p != name]}},
                              "aggs": {"values": facet_agg(name, query)}} for name in query.facets}
    if isinstance(query.after, list):
        out["search_after"] = query.after
    return out


def page(query: SearchQuery, response: dict[str, Any]) -> Page:
    """A Page from a search response."""
    raw_hits = response["hits"]["hits"]
    total = int(response["hits"]["total"]["value"])
    hits = [Hit(h["_id"], h["_source"]["card"], h.get("_score") if query.sort == "relevance" else None)
            for h in raw_hits]
    facets = {name: facet_counts(name, response["aggregations"][name]["values"], query)
              for name in query.facets}
    more = query.offset + len(hits) < total and len(hits) == query.limit
    return Page(total=total, hits=hits, facets=facets, after=raw_hits[-1]["sort"] if more and raw_hits else None)


def facet_counts(name: str, raw: dict[str, Any], query: SearchQuery) -> dict[str, int]:
    if name in RANGE_FIELDS:
        return threshold_counts(name, raw["buckets"])
    counts: dict[str, int] = {}
    for bucket in raw["buckets"]:
        key = str(bucket["key"])
        if name == "list":
            key = key.split(":", 1)[0]
        counts[key] = counts.get(key, 0) + int(bucket["doc_count"])
    return sort_facet(counts, query.facet_size)
