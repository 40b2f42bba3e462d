"""The filter and facet fields of GET /search: how each parameter's values are validated and
normalized, which index field holds them, and how a facet counts them. Both backends and the
query parser read this one table, so a field means the same thing everywhere.

Facet invariant (checked by the corpus tests): the count shown for value `v` of field `f` is the
`total` the same search would return with `f`'s filter replaced by `f=v`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ctdl import ctid as ctids
from ctdl import schema
from search import taxonomy
from search.places import state_code
from search.summary import KIND_NAMES

_CONCEPT = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


@cache
def _types() -> frozenset[str]:
    """Every CTDL class and CTDL superclass a class has: the values documents are indexed with
    (search/documents.py), so any type facet value is a valid filter."""
    from search.documents import CTDL_PREFIXES

    return frozenset(t for t in frozenset().union(*schema.vocabulary().lineage.values())
                     if t.startswith(CTDL_PREFIXES))


def _type(value: str) -> str | None:
    term = value if ":" in value else f"ceterms:{value}"
    return term if term in _types() else None


def _kind(value: str) -> str | None:
    return value if value in KIND_NAMES else None


def _soc(value: str) -> str | None:
    m = taxonomy.SOC_RE.match(value)
    return m.group(1) if m else None


def _soc_group(value: str) -> str | None:
    m = taxonomy.SOC_GROUP_RE.match(value)
    return m.group(1) if m else None


def _concept(value: str) -> str | None:
    name = value.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return name if _CONCEPT.match(name) else None


def _lang(value: str) -> str | None:
    return value.split("-")[0].lower() if _LANG.match(value) else None


def _ctid(value: str) -> str | None:
    return ctids.normalize(value)


@dataclass(frozen=True, slots=True)
class TermField:
    """A filter on exact values: documents with any of the given values (OR within the field,
    AND across fields)."""

    param: str
    index: str  # the index field
    normalize: Callable[[str], str | None]
    expected: str  # what a valid value looks like, for the 400 message
    facet_include: str | None = None  # regex of the values a facet reports (None: all)


TERM_FIELDS: dict[str, TermField] = {f.param: f for f in (
    TermField("type", "type", _type, "a CTDL class such as ceterms:Credential or Degree"),
    TermField("kind", "kind", _kind, "one of " + ", ".join(KIND_NAMES)),
    TermField("soc", "soc", _soc, "a SOC code such as 29-1141 (or O*NET 29-1141.00)"),
    TermField("soc_group", "soc_group", _soc_group, "a SOC major group such as 29 or 29-0000"),
    TermField("naics", "naics", taxonomy.normalize_naics_filter,
              "a NAICS code of 2 to 6 digits (or a sector such as 31-33)",
              facet_include="[0-9]{2}(-[0-9]{2})?"),
    TermField("cip", "cip", taxonomy.cip_code, "a CIP code such as 51, 51.38 or 51.3801",
              facet_include="[0-9]{2}"),
    TermField("state", "state", state_code, "a USPS state code such as OH (or a state name)"),
    TermField("delivery", "delivery", _concept, "a delivery type such as InPerson or OnlineOnly"),
    TermField("audience", "audience", _concept, "an audience level such as BachelorsDegreeLevel"),
    TermField("status", "status", _concept, "a status such as Active or Deprecated"),
    TermField("lang", "lang", _lang, "a language code such as en or es"),
    TermField("qa", "qa", _ctid, "the CTID of a quality-assurance organization"),
    TermField("owner", "owner", _ctid, "the CTID of the owning organization"),
    TermField("list", "list_at", _ctid, "the CTID of a list (ceterms:Collection)"),
)}


@dataclass(frozen=True, slots=True)
class RangeField:
    """A one-sided numeric filter; its facet counts documents at each threshold."""

    param: str
    index: str
    upper: bool  # True: value <= bound; False: value >= bound
    thresholds: tuple[float, ...]
    minimum: float  # the smallest bound accepted


RANGE_FIELDS: dict[str, RangeField] = {f.param: f for f in (
    RangeField("cost_max", "cost", True, (100, 250, 500, 1000, 2500, 5000, 10000, 25000), 0.0),
    RangeField("duration_max_months", "duration", True, (1, 3, 6, 12, 24, 48), 0.0),
    RangeField("credit_min", "credits", False, (1, 3, 6, 12, 15, 24, 30), 0.0),
)}

FACETABLE = tuple(TERM_FIELDS) + tuple(RANGE_FIELDS)
TEXT_FIELDS: dict[str, float] = {  # field -> boost
    "names": 4.0, "keywords": 2.0, "occupations": 1.5, "organizations": 1.0, "description": 0.5}
SORTS = ("relevance", "name", "newest", "cost", "duration")


def threshold_key(value: float) -> str:
    """How a facet threshold or range bound is written: 500.0 -> "500", 2.5 -> "2.5"."""
    return f"{value:g}"
