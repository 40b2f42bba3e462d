"""GET /search parameters -> a validated, typed query; cursors.

Everything a client sends is checked here, so the backends only ever see bounded work: query
length and term count, values per filter, page size, facet count and size, radius. A bad value is
a 400 problem naming the parameter.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from registry.errors import BadRequest
from search import geo, text, timeline
from search.fields import FACETABLE, RANGE_FIELDS, SORTS, TERM_FIELDS

MAX_QUERY_CHARS = 256
MAX_QUERY_TERMS = 12
MAX_VALUES_PER_FILTER = 20
MAX_VALUES = 64
MAX_FACETS = 12
MAX_FACET_SIZE = 100
DEFAULT_FACET_SIZE = 10
DEFAULT_LIMIT = 20
MAX_CURSOR_CHARS = 2048
MAX_RESUME_OFFSET = 10_000  # the deepest result an offset cursor reaches (Tantivy's paging window)
_LONG = 2**63
MAX_SUGGEST_CHARS = 100
MIN_PREFIX_CHARS = 2  # a one-letter prefix would expand to a good part of the dictionary
_OTHER_PARAMS = ("q", "near", "radius_km", "list_as_of", "sort", "limit", "facets", "facet_size",
                 "cursor")
KNOWN_PARAMS = frozenset(TERM_FIELDS) | frozenset(RANGE_FIELDS) | frozenset(_OTHER_PARAMS)


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    terms: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # param -> values
    ranges: dict[str, float] = field(default_factory=dict)  # param -> bound
    near: Near | None = None
    as_of: int = 0  # day (search/timeline.py) at which list membership is evaluated
    as_of_given: bool = False
    sort: str = "name"
    limit: int = DEFAULT_LIMIT
    facets: tuple[str, ...] = ()
    facet_size: int = DEFAULT_FACET_SIZE
    after: Any = None  # the backend's resume point, from the cursor
    offset: int = 0  # results already returned before this page

    def fingerprint(self) -> str:
        """Identifies the result set a cursor belongs to (everything but the page)."""
        data = [self.terms, sorted(self.filters.items()), sorted(self.ranges.items()),
                self.near and (self.near.lat, self.near.lon, self.near.radius_km),
                self.as_of if self.as_of_given else None, self.sort]
        return hashlib.sha256(orjson.dumps(data)).hexdigest()[:16]

    def without(self, param: str) -> SearchQuery:
        """The same query without the filter on `param` (for that field's facet counts)."""
        from dataclasses import replace

        return replace(self, filters={k: v for k, v in self.filters.items() if k != param},
                       ranges={k: v for k, v in self.ranges.items() if k != param})

    @property
    def has_filter(self) -> bool:
        return bool(self.filters or self.ranges or self.near)


def encode_cursor(query: SearchQuery, after: Any, offset: int) -> str:
    raw = orjson.dumps({"f": query.fingerprint(), "a": after, "o": offset})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str) -> dict[str, Any]:
    if len(value) > MAX_CURSOR_CHARS:
        raise BadRequest("The cursor is too long.", parameter="cursor")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("The cursor is not one this service issued; use the `next` value of a "
                         "previous page.", parameter="cursor") from None
    if not isinstance(data, dict) or not isinstance(data.get("o"), int) or "a" not in data:
        raise BadRequest("The cursor is malformed.", parameter="cursor")
    return data


def _sort_key_fits(sort: str, key: Any) -> bool:
    """Whether `key` is a value Elasticsearch hands back, and takes in search_after, for the
    first key of `sort` (search/elasticsearch_query.py: _SORTS)."""
    if isinstance(key, bool):
        return False
    if sort == "name":  # sort_name, a keyword
        return isinstance(key, str)
    if sort == "newest":  # modified_us, a long
        return isinstance(key, int) and -_LONG <= key < _LONG
    if isinstance(key, int | float) and math.isfinite(key):  # the score, or cost / duration
        return True
    # A record without cost (duration) sorts last, at +Infinity, which JSON can only carry quoted.
    return sort in ("cost", "duration") and key == "Infinity"


def _resume_point_fits(sort: str, after: Any, offset: Any) -> bool:
    """The cursor's resume point, as one of the engines issues it. The fingerprint is a plain
    hash, not a signature (there is no deployment secret to key it with), so a client can write
    any cursor: only values an engine can take pass, else Elasticsearch would refuse the search.
    - Tantivy: the offset into the ranking, 1 to MAX_RESUME_OFFSET, at least the results returned;
    - Elasticsearch: search_after, the last hit's [sort key, ctid]."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < _LONG:
        return False
    if isinstance(after, int) and not isinstance(after, bool):
        return offset <= after <= MAX_RESUME_OFFSET and after >= 1
    return (isinstance(after, list) and len(after) == 2 and _sort_key_fits(sort, after[0])
            and isinstance(after[1], str))


def _values(params: list[tuple[str, str]], name: str) -> list[str]:
    out: list[str] = []
    for key, value in params:
        if key == name:
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _single(params: list[tuple[str, str]], name: str) -> str | None:
    found = [v for k, v in params if k == name]
    if len(found) > 1:
        raise BadRequest(f"Give `{name}` once.", parameter=name)
    return found[0].strip() if found else None


def _number(params: list[tuple[str, str]], name: str, low: float, high: float) -> float | None:
    raw = _single(params, name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"`{name}` must be a number from {low:g} to {high:g}, not {raw!r}.",
                         parameter=name)
    return value


def _integer(params: list[tuple[str, str]], name: str, low: int, high: int, default: int) -> int:
    raw = _single(params, name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"`{name}` must be an integer from {low} to {high}, not {raw!r}.",
                         parameter=name)
    return int(raw)


def parse_text(raw: str, name: str = "q", max_chars: int = MAX_QUERY_CHARS) -> tuple[str, tuple[str, ...]]:
    if len(raw) > max_chars:
        raise BadRequest(f"`{name}` is longer than {max_chars} characters.", parameter=name)
    terms = tuple(dict.fromkeys(text.tokens(raw)))
    if len(terms) > MAX_QUERY_TERMS:
        raise BadRequest(f"`{name}` has more than {MAX_QUERY_TERMS} words.", parameter=name)
    return raw.strip(), terms


def parse(items: Iterable[tuple[str, str]], max_page: int) -> SearchQuery:
    """Validate GET /search query parameters (repeated or comma-separated values are OR-ed)."""
    params = list(items)
    for key, _ in params:
        if key not in KNOWN_PARAMS:
            raise BadRequest(f"Unknown parameter `{key}`. Known: {', '.join(sorted(KNOWN_PARAMS))}.",
                             parameter=key)
    query_text, terms = parse_text(_single(params, "q") or "")
    filters: dict[str, tuple[str, ...]] = {}
    count = 0
    for name, spec in TERM_FIELDS.items():
        raw_values = _values(params, name)
        if not raw_values:
            continue
        if len(raw_values) > MAX_VALUES_PER_FILTER:
            raise BadRequest(f"`{name}` has more than {MAX_VALUES_PER_FILTER} values.", parameter=name)
        normalized = []
        for raw in raw_values:
            value = spec.normalize(raw)
            if value is None:
                raise BadRequest(f"`{name}`: {raw!r} is not {spec.expected}.", parameter=name)
            normalized.append(value)
        filters[name] = tuple(dict.fromkeys(normalized))
        count += len(normalized)
    if count > MAX_VALUES:
        raise BadRequest(f"More than {MAX_VALUES} filter values in all.", parameter=next(iter(filters)))
    ranges: dict[str, float] = {}
    for name, range_spec in RANGE_FIELDS.items():
        bound = _number(params, name, range_spec.minimum, 1e12)
        if bound is not None:
            ranges[name] = bound
    return _finish(params, query_text, terms, filters, ranges, max_page)


def _finish(params: list[tuple[str, str]], query_text: str, terms: tuple[str, ...],
            filters: dict[str, tuple[str, ...]], ranges: dict[str, float], max_page: int) -> SearchQuery:
    near = _near(params)
    as_of_raw = _single(params, "list_as_of")
    as_of, given = timeline.today(), False
    if as_of_raw:
        try:
            as_of, given = timeline.day(date.fromisoformat(as_of_raw)), True
        except ValueError:
            raise BadRequest(f"`list_as_of` must be a date (YYYY-MM-DD), not {as_of_raw!r}.",
                             parameter="list_as_of") from None
    sort = _single(params, "sort") or ("relevance" if terms else "name")
    if sort not in SORTS:
        raise BadRequest(f"`sort` must be one of {', '.join(SORTS)}.", parameter="sort")
    if sort == "relevance" and not terms:
        sort = "name"  # nothing to score: the most useful stable order
    facets = tuple(dict.fromkeys(_values(params, "facets")))
    for name in facets:
        if name not in FACETABLE:
            raise BadRequest(f"`facets`: {name!r} is not a facet; use any of {', '.join(FACETABLE)}.",
                             parameter="facets")
    if len(facets) > MAX_FACETS:
        raise BadRequest(f"At most {MAX_FACETS} facets.", parameter="facets")
    query = SearchQuery(
        text=query_text, terms=terms, filters=filters, ranges=ranges, near=near, as_of=as_of,
        as_of_given=given, sort=sort, limit=_integer(params, "limit", 1, max_page, min(DEFAULT_LIMIT, max_page)),
        facets=facets, facet_size=_integer(params, "facet_size", 1, MAX_FACET_SIZE, DEFAULT_FACET_SIZE))
    cursor = _single(params, "cursor")
    if cursor:
        data = _decode_cursor(cursor)
        if data.get("f") != query.fingerprint():
            raise BadRequest("The cursor belongs to a different search; keep the other parameters "
                             "as they were.", parameter="cursor")
        if not _resume_point_fits(query.sort, data["a"], data["o"]):
            raise BadRequest("The cursor is not one this service issued; use the `next` value of a "
                             "previous page.", parameter="cursor")
        from dataclasses import replace

        query = replace(query, after=data["a"], offset=data["o"])
    return query


def _near(params: list[tuple[str, str]]) -> Near | None:
    raw = _single(params, "near")
    radius = _number(params, "radius_km", 0.001, geo.MAX_RADIUS_KM)
    if raw is None:
        if radius is not None:
            raise BadRequest("`radius_km` needs `near=lat,lon`.", parameter="radius_km")
        return None
    try:
        lat_text, lon_text = raw.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        lat = lon = math.nan
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequest(f"`near` must be `lat,lon` in degrees, not {raw!r}.", parameter="near")
    return Near(lat, lon, radius if radius is not None else 50.0)
