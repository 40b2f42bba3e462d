"""GET /search and GET /search/suggest: thin handlers over the backend, and their OpenAPI items."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from registry.errors import BadRequest, ServiceUnavailable
from search import results, taxonomy, timeline
from search.backend import Backend, Page
from search.fields import FACETABLE, RANGE_FIELDS, SORTS, TERM_FIELDS
from search.places import STATES
from search.projection import SearchProjection
from search.query import MAX_SUGGEST_CHARS, MIN_PREFIX_CHARS, SearchQuery, encode_cursor, parse, parse_text

if TYPE_CHECKING:
    from registry.service import Registry

log = logging.getLogger("credreg.search")
MAX_SUGGESTIONS = 20
_LABELLED_BY_NAME = ("qa", "owner", "list")


def find_projection(registry: Registry) -> SearchProjection | None:
    for projection in registry.projector.projections:
        if isinstance(projection, SearchProjection):
            return projection
    return None


def _json(data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), 200, headers, "application/json")


class SearchHandlers:
    def __init__(self, registry: Registry, projection: SearchProjection) -> None:
        self.registry = registry
        self.projection = projection
        self.backend: Backend = projection.backend

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (BadRequest, ServiceUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - an engine failure is a 503, never a crash
            log.exception("search backend failed")
            raise ServiceUnavailable(f"The search engine failed: {type(exc).__name__}.") from None

    async def search(self, request: Request) -> Response:
        query = parse(request.query_params.multi_items(), self.registry.settings.search_max_page)
        page, labels = await self._call(self._search, query)
        self.projection.refresh_if_due(self.registry.store)
        seen: dict[str, bool] = {}
        body: dict[str, Any] = {
            "total": page.total, "as_of": timeline.to_date(query.as_of),
            "results": [results.card(hit, query, seen) for hit in page.hits],
            "facets": page.facets, "next": None}
        if query.facets:
            body["labels"] = labels
        headers: dict[str, str] = {}
        if page.after is not None:
            cursor = encode_cursor(query, page.after, query.offset + len(page.hits))
            body["next"] = cursor
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
            headers["Link"] = f'<{request.url.path}?{urlencode([*params, ("cursor", cursor)])}>; rel="next"'
        return _json(body, headers)

    def _search(self, query: SearchQuery) -> tuple[Page, dict[str, dict[str, str]]]:
        """The page and its facet labels in one trip to the worker thread."""
        page = self.backend.search(query)
        return page, self._labels(page.facets) if query.facets else {}

    def _labels(self, facets: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
        """Readable names of facet values (occupations, industries, states, organizations)."""
        out: dict[str, dict[str, str]] = {}
        ctids = [v for f in _LABELLED_BY_NAME for v in facets.get(f, {})]
        names = self.backend.names(list(dict.fromkeys(ctids))) if ctids else {}
        for field, counts in facets.items():
            labels: dict[str, str | None] = {}
            for value in counts:
                if field in _LABELLED_BY_NAME:
                    labels[value] = names.get(value)
                elif field == "soc":
                    labels[value] = taxonomy.soc_title(value)
                elif field == "soc_group":
                    labels[value] = taxonomy.soc_group_title(value)
                elif field == "naics":
                    labels[value] = taxonomy.naics_title(value)
                elif field == "state":
                    labels[value] = STATES.get(value)
            found = {k: v for k, v in labels.items() if v}
            if found:
                out[field] = found
        return out

    async def suggest(self, request: Request) -> Response:
        params = request.query_params
        for key in params:
            if key not in ("q", "limit"):
                raise BadRequest(f"Unknown parameter `{key}`; use q and limit.", parameter=key)
        raw = params.get("q", "")
        _, terms = parse_text(raw, "q", MAX_SUGGEST_CHARS)
        limit_raw = params.get("limit", "8")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_SUGGESTIONS:
            raise BadRequest(f"`limit` must be an integer from 1 to {MAX_SUGGESTIONS}.", parameter="limit")
        if terms and len(terms[-1]) < MIN_PREFIX_CHARS:  # complete whole words only
            terms = terms[:-1]
        found = await self._call(self.backend.suggest, terms, int(limit_raw)) if terms else []
        return _json({"q": raw, "suggestions": [
            {k: v for k, v in (("text", s.text), ("kind", s.kind), ("ctid", s.ctid), ("code", s.code),
                               ("count", s.count)) if v is not None} for s in found]})


def routes(registry: Registry) -> list[BaseRoute]:
    projection = find_projection(registry)
    if projection is None:
        return []
    handlers = SearchHandlers(registry, projection)
    return [Route("/search", handlers.search, methods=["GET"]),
            Route("/search/suggest", handlers.suggest, methods=["GET"])]


# --- OpenAPI ---------------------------------------------------------------------------------------
def _param(name: str, description: str, schema: dict[str, Any] | None = None,
           explode: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "description": description,
                           "schema": schema or {"type": "string"}}
    if explode:
        out.update(schema={"type": "array", "items": schema or {"type": "string"}}, style="form",
                   explode=True)
    return out


def openapi_paths() -> dict[str, Any]:
    problem = {"description": "Problem (RFC 9457) naming the parameter",
               "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    params = [_param("q", "Full text over names, descriptions, keywords, occupations and organizations; "
                          "each word must match, exactly or one edit away (exact matches rank first).")]
    params += [_param(name, f"Filter: {spec.expected}. Repeat or comma-separate values to OR them.",
                      explode=True) for name, spec in TERM_FIELDS.items()]
    params += [_param(name, f"{'Maximum' if spec.upper else 'Minimum'} {spec.index}",
                      {"type": "number", "minimum": spec.minimum}) for name, spec in RANGE_FIELDS.items()]
    params += [
        _param("near", "lat,lon: with radius_km, records with a location within that distance"),
        _param("radius_km", "Radius for near (default 50, at most 1000)", {"type": "number"}),
        _param("list_as_of", "Evaluate list membership on this date (default today)",
               {"type": "string", "format": "date"}),
        _param("sort", "Order of results", {"type": "string", "enum": list(SORTS)}),
        _param("limit", "Results per page", {"type": "integer", "minimum": 1}),
        _param("facets", "Fields to count values of (multi-select: a facet ignores its own filter)",
               {"type": "string", "enum": list(FACETABLE)}, explode=True),
        _param("facet_size", "Values per facet (default 10, at most 100)", {"type": "integer"}),
        _param("cursor", "The `next` value of the previous page")]
    ok = {"description": "A page of results with facet counts; Link: rel=next when there are more",
          "content": {"application/json": {"schema": {"type": "object", "required": [
              "total", "results", "facets", "next"], "properties": {
              "total": {"type": "integer"}, "as_of": {"type": "string", "format": "date"},
              "results": {"type": "array", "items": {"type": "object", "required": ["ctid", "type", "name"]}},
              "facets": {"type": "object", "additionalProperties": {
                  "type": "object", "additionalProperties": {"type": "integer"}}},
              "labels": {"type": "object"}, "next": {"type": ["string", "null"]}}}}}}
    suggest_ok = {"description": "Completions: credential and organization names, occupations",
                  "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/search": {"get": {"summary": "Faceted search of credentials, organizations, learning "
                                       "opportunities, assessments, transfer values and lists",
                            "parameters": params,
                            "responses": {"200": ok, "400": problem, "503": problem}}},
        "/search/suggest": {"get": {"summary": "Autocomplete on name and occupation prefixes",
                                    "parameters": [_param("q", "The words typed so far"),
                                                   _param("limit", "At most this many", {"type": "integer"})],
                                    "responses": {"200": suggest_ok, "400": problem}}},
    }
