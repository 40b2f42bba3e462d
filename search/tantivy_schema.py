"""The Tantivy index layout: fields, analyzer, how a search document maps onto them, and small
helpers to read stored fields with their types."""
from __future__ import annotations

import binascii
import bisect
import hashlib
from typing import Any

import orjson
import tantivy

from search.backend import range_edges
from search.documents import SearchDocument
from search.fields import RANGE_FIELDS

# Bump when the index layout or the derived documents change: a new directory is built from the
# store and the old one removed (the projection rebuilds when it finds no position).
LAYOUT_VERSION = 6
# Facets count values per matching document, and a column holding several values per document
# costs ~4x one holding one (measured at 1M documents: 80-100 ns against 15-20 ns per document).
# So each facet counts a column with one value per document, the set of its values as one key
# ("29|51"); the counts per value are summed from the keys (search/tantivy_facets.py). The
# values themselves are indexed (not columnar) for filters and for counting through postings.
SET_COLUMNS = {"type": "type_key", "kind": "set_kind", "soc": "set_soc", "soc_group": "set_soc_group",
               "naics": "set_naics", "cip": "set_cip", "state": "set_state", "delivery": "set_delivery",
               "audience": "set_audience", "status": "set_status", "lang": "set_lang", "qa": "set_qa",
               "owner": "set_owner", "list": "set_list"}
# The indexed field holding exactly the values a facet reports, one term per value.
FACET_TERMS = {"type": "type", "kind": "kind", "soc": "soc", "soc_group": "soc_group",
               "naics": "naics_sector", "cip": "cip_family", "state": "state", "delivery": "delivery",
               "audience": "audience", "status": "status", "lang": "lang", "qa": "qa", "owner": "owner",
               "list": "lists_now"}
SET_SEPARATOR = "|"
# Range values also as the threshold bucket they fall in ("cost_max:3"): a filter on a threshold
# the facet offers is then a few terms instead of a range over a column (~13 ms at 1M documents
# for a broad one, in every pass), and the facet can be counted through postings.
RANGE_SLOTS = "range_slot"
# Searched (and counted through postings), not columnar.
FILTER_FIELDS = ("type", "kind", "soc", "soc_group", "naics", "naics_sector", "cip", "cip_family",
                 "state", "delivery", "audience", "lang", "status", "qa", "owner", "lists_now", "geo",
                 "deps")
TEXT_FIELDS = ("names", "description", "keywords", "occupations", "organizations")
ANALYZER = "credreg"
# Set columns and sort keys are read as columns only; their index terms (long, nearly unique keys
# for set_soc, set_owner, sort_name) cost ~10% of the indexing CPU, mostly building the term
# dictionary at commit. tantivy-py cannot declare a column-only text field, so their tokenizer
# indexes nothing while the column side (a separate tokenizer registry) keeps the raw value.
COLUMN_ONLY = "column"
WRITER_HEAP = 128_000_000  # one indexing thread: a group commit flushes one small segment
BULK_HEAP = 1_000_000_000  # rebuilds: large segments, little merging while loading
BULK_THREADS = 2


def type_key(types: list[str]) -> str:
    """A record's @type values as one facet value."""
    return SET_SEPARATOR.join(sorted(set(types)))


def type_counts(keys: dict[str, int]) -> dict[str, int]:
    """Documents per CTDL class from documents per type key: each key counts once for every class
    in the lineage of its types (exactly the values the `type` filter field holds)."""
    from ctdl.schema import lineage
    from search.documents import CTDL_PREFIXES

    out: dict[str, int] = {}
    for key, count in keys.items():
        classes: set[str] = set()
        for t in key.split(SET_SEPARATOR):
            classes |= lineage(t) or {t}
        for cls in classes:
            if cls.startswith(CTDL_PREFIXES):
                out[cls] = out.get(cls, 0) + count
    return out


def doc_key(ctid: str) -> int:
    """A 63-bit number for a CTID, held in a column: a search can name documents it found
    through columns (radius checks) without reading their stored fields."""
    return int.from_bytes(hashlib.blake2b(ctid.encode(), digest_size=8).digest(), "big") >> 1


def hits_count(result: tantivy.SearchResult) -> int:
    """The number of matching documents of a search run with count=True."""
    return int(getattr(result, "count", 0) or 0)


def stored_text(doc: tantivy.Document, field: str) -> str:
    value = doc.get_first(field)
    assert isinstance(value, str), field
    return value


def stored_bytes(doc: tantivy.Document, field: str) -> bytes:
    value = doc.get_first(field)
    assert isinstance(value, bytes), field
    return value


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("ctid", stored=True, tokenizer_name="raw", index_option="basic")
    for name in SET_COLUMNS.values():  # one value per document, never searched
        sb.add_text_field(name, tokenizer_name=COLUMN_ONLY, fast=True, index_option="basic")
    # Day-block list terms: searched for `list_as_of`, and a column for dated list facets (rare:
    # "on the list today" reads set_list).
    sb.add_text_field("list_at", tokenizer_name="raw", fast=True, index_option="basic")
    for name in FILTER_FIELDS:
        sb.add_text_field(name, tokenizer_name="raw", index_option="basic")
    sb.add_text_field(RANGE_SLOTS, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("link_dst", stored=True, tokenizer_name="raw", index_option="basic")
    # Sort keys are not unique: a unique text column per document (a "name + CTID" key) costs
    # more to index than all the rest (measured: 4 such columns cut throughput 3x). Pages past the
    # first are found by offset instead (search/tantivy_query.py).
    sb.add_text_field("sort_name", tokenizer_name=COLUMN_ONLY, fast=True, index_option="basic")
    sb.add_unsigned_field("modified_us", fast=True)
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name=ANALYZER, index_option="freq")
    for name in ("cost", "duration", "credits"):
        sb.add_float_field(name, indexed=True, fast=True)
    sb.add_unsigned_field("valid_until", indexed=True, fast=True)
    # The first point in columns, so a radius check rarely reads a stored document.
    for name in ("lat", "lon"):
        sb.add_float_field(name, fast=True)
    sb.add_unsigned_field("npoints", fast=True)
    sb.add_unsigned_field("key", indexed=True, fast=True)  # doc_key(ctid)
    sb.add_unsigned_field("position", stored=True)
    for name in ("card", "summary", "points"):
        sb.add_bytes_field(name, stored=True)
    return sb.build()


def register_tokenizers(index: tantivy.Index) -> None:
    """What every Index over this layout needs before it reads or writes."""
    index.register_tokenizer(ANALYZER, analyzer())
    raw = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
    index.register_tokenizer(COLUMN_ONLY, raw.filter(tantivy.Filter.remove_long(0)).build())
    index.register_fast_field_tokenizer(COLUMN_ONLY, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw()).build())


def analyzer() -> tantivy.TextAnalyzer:
    # Must match search/text.py tokens(): split on non-alphanumerics, drop tokens of 40 bytes or
    # more, lower-case, fold to ASCII.
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .build())


def to_fields(d: SearchDocument) -> dict[str, Any]:
    """The Tantivy field values of a document."""
    out: dict[str, Any] = {
        "ctid": d.ctid, "kind": d.kind, "type": d.types, "type_key": type_key(d.classes or [d.type]),
        "soc": d.soc, "soc_group": d.soc_group, "naics": d.naics, "cip": d.cip,
        "naics_sector": [v for v in d.naics if len(v) == 2 or "-" in v],
        "cip_family": [v for v in d.cip if len(v) == 2], "state": d.state, "delivery": d.delivery,
        "audience": d.audience, "lang": d.lang, "status": d.status, "qa": d.qa, "owner": d.owner,
        "list_at": d.list_at, "lists_now": d.lists_now, "geo": d.geo, "deps": d.deps, "link_dst": d.link_dst,
        "names": d.names, "description": d.description, "keywords": d.keywords,
        "occupations": d.occupations, "organizations": d.organizations,
        "valid_until": d.valid_until, "card": orjson.dumps(d.card), "summary": d.summary,
        "points": orjson.dumps(d.points), "sort_name": d.sort_name, "modified_us": d.modified_us,
        "npoints": len(d.points), "key": doc_key(d.ctid)}
    if d.points:
        out["lat"], out["lon"] = d.points[0]
    for name in ("cost", "duration", "credits"):
        value = getattr(d, name)
        if value is not None:
            out[name] = value
    return derived_columns({k: v for k, v in out.items() if v != [] and v is not None})


BYTES_FIELDS = ("card", "summary", "points")


def to_json(values: dict[str, Any]) -> str:
    """Field values as the JSON `IndexWriter.add_json` parses (bytes as base64). For bulk loads:
    Tantivy then builds the document in Rust, where `Document.from_dict` and `add_document` build
    it in Python and convert it once more (measured ~12% less CPU in the Python thread)."""
    out = dict(values)
    for name in BYTES_FIELDS:
        if name in out:
            out[name] = binascii.b2a_base64(out[name], newline=False).decode()
    return orjson.dumps(out).decode()


def derived_columns(out: dict[str, Any]) -> dict[str, Any]:
    """Fill the set columns and the range slots from the other field values."""
    for param, column in SET_COLUMNS.items():
        values = out.get(FACET_TERMS[param])
        if param != "type" and values:
            out[column] = values if isinstance(values, str) else SET_SEPARATOR.join(sorted(set(values)))
    slots = [f"{param}:{range_slot(param, out[spec.index])}" for param, spec in RANGE_FIELDS.items()
             if out.get(spec.index) is not None]
    if slots:
        out[RANGE_SLOTS] = slots
    else:
        out.pop(RANGE_SLOTS, None)
    return out


def range_slot(param: str, value: float) -> int:
    """The bucket of search.backend.range_agg a value falls in (0: below the first edge)."""
    return bisect.bisect_right(range_edges(param), value)


def threshold_slots(param: str, bound: float) -> list[str] | None:
    """The range slot terms of the documents a filter on `param` at `bound` keeps, when the bound
    is one of the facet's thresholds (None otherwise: a range query is needed)."""
    spec = RANGE_FIELDS[param]
    if bound not in spec.thresholds:
        return None
    i = spec.thresholds.index(bound)
    slots = range(i + 1) if spec.upper else range(i + 1, len(spec.thresholds) + 1)
    return [f"{param}:{slot}" for slot in slots]
