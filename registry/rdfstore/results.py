"""Running a query on a pyoxigraph store and writing its result in a SPARQL 1.1 results format.

Why our own writers for SELECT results: pyoxigraph serializes a whole `QuerySolutions` iterator
natively, but then nothing can stop at the result-size cap, and a `QuerySolutions` cannot be
rebuilt from the rows read so far. Reading at most `max_results + 1` rows and writing them here
costs about a microsecond a value and makes the cap exact. Graph results (CONSTRUCT/DESCRIBE)
are capped the same way and written by pyoxigraph, which accepts any iterable of triples.

This module is imported by the query worker processes: it must stay light (pyoxigraph and
orjson only).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson
import pyoxigraph as ox

from registry.rdfstore import (
    CSV,
    JSONLD,
    NQUADS,
    NTRIPLES,
    RDFXML,
    RESULTS_JSON,
    RESULTS_XML,
    TSV,
    TURTLE,
    Dataset,
    QueryResult,
    QuerySyntaxError,
    ResultTooLarge,
)
from registry.representations import PREFIXES as RECORD_PREFIXES

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
PREFIXES = {  # the record prefixes, plus the vocabularies of the metadata graph and VoID
    **RECORD_PREFIXES,
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "dcterms": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "void": "http://rdfs.org/ns/void#",
    "dcat": "http://www.w3.org/ns/dcat#",
    "sd": "http://www.w3.org/ns/sparql-service-description#",
    "spdx": "http://spdx.org/rdf/terms#",
    "foaf": "http://xmlns.com/foaf/0.1/",
}
_RDF_FORMATS = {TURTLE: ox.RdfFormat.TURTLE, NTRIPLES: ox.RdfFormat.N_TRIPLES,
                NQUADS: ox.RdfFormat.N_QUADS, JSONLD: ox.RdfFormat.JSON_LD,
                RDFXML: ox.RdfFormat.RDF_XML}
# XML 1.0 cannot carry most control characters, not even as references.
_XML_INVALID = {c: "\ufffd" for c in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]}


def execute(store: ox.Store, sparql: str, dataset: Dataset, solutions_format: str,
            graph_format: str, max_results: int) -> QueryResult:
    """Run `sparql` on `store` and serialize the (capped) result."""
    kwargs: dict[str, Any] = {}
    if dataset.default_graphs or dataset.named_graphs:
        # Protocol parameters replace the query's own dataset (SPARQL 1.1 Protocol 2.1.4).
        kwargs["default_graph"] = [ox.NamedNode(g) for g in dataset.default_graphs]
        kwargs["named_graphs"] = [ox.NamedNode(g) for g in dataset.named_graphs]
    elif dataset.union:
        kwargs["use_default_graph_as_union"] = True
    try:
        result = store.query(sparql, **kwargs)
    except SyntaxError as exc:
        raise QuerySyntaxError(str(exc)) from None
    return serialize(result, solutions_format, graph_format, max_results)


def serialize(result: Any, solutions_format: str, graph_format: str, max_results: int) -> QueryResult:
    """A pyoxigraph query result (solutions, boolean or triples) as bytes in the chosen format."""
    if isinstance(result, ox.QueryBoolean):
        return QueryResult("boolean", solutions_format, boolean(bool(result), solutions_format), 1)
    if isinstance(result, ox.QuerySolutions):
        names = [v.value for v in result.variables]
        rows = _capped(result, max_results, "rows")
        return QueryResult("solutions", solutions_format, solutions(names, rows, solutions_format),
                           len(rows))
    triples = _capped((t.triple if isinstance(t, ox.Quad) else t for t in result), max_results,
                      "triples")
    return QueryResult("graph", graph_format, graph(triples, graph_format), len(triples))


def _capped(items: Iterable[Any], limit: int, what: str) -> list[Any]:
    taken = list(islice(items, limit + 1))
    if len(taken) > limit:
        raise ResultTooLarge(f"The result has more than {limit} {what}; add LIMIT and OFFSET to page "
                             "through it, or download a dump.")
    return taken


def graph(triples: list[Any], media_type: str) -> bytes:
    fmt = _RDF_FORMATS[media_type]
    prefixes = PREFIXES if fmt in (ox.RdfFormat.TURTLE, ox.RdfFormat.RDF_XML) else None
    out = ox.serialize(triples, format=fmt, prefixes=prefixes)
    assert out is not None  # without an output file, serialize returns the bytes
    return out


def boolean(value: bool, media_type: str) -> bytes:
    text = "true" if value else "false"
    if media_type == RESULTS_JSON:
        return b'{"head":{},"boolean":' + text.encode() + b"}"
    if media_type == RESULTS_XML:
        return (f'<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">'
                f"<head/><boolean>{text}</boolean></sparql>\n").encode()
    return text.encode() + b"\n"  # CSV/TSV define no boolean form; this is what engines write


def solutions(names: list[str], rows: list[Any], media_type: str) -> bytes:
    if media_type == RESULTS_JSON:
        return _json(names, rows)
    if media_type == RESULTS_XML:
        return "".join(_xml(names, rows)).encode()
    if media_type == CSV:
        return "".join(_csv(names, rows)).encode()
    if media_type == TSV:
        return "".join(_tsv(names, rows)).encode()
    raise ValueError(media_type)


def _json_term(term: Any) -> dict[str, Any]:
    kind = type(term)
    if kind is ox.NamedNode:
        return {"type": "uri", "value": term.value}
    if kind is ox.Literal:
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value != XSD_STRING:
            out["datatype"] = term.datatype.value
        return out
    if kind is ox.BlankNode:
        return {"type": "bnode", "value": term.value}
    return {"type": "triple", "value": {"subject": _json_term(term.subject),
                                        "predicate": _json_term(term.predicate),
                                        "object": _json_term(term.object)}}


def _json(names: list[str], rows: list[Any]) -> bytes:
    bindings = []
    for row in rows:
        binding = {}
        for name, term in zip(names, row, strict=True):
            if term is not None:
                binding[name] = _json_term(term)
        bindings.append(binding)
    return orjson.dumps({"head": {"vars": names}, "results": {"bindings": bindings}})


def _xml_text(value: str) -> str:
    return escape(value.translate(_XML_INVALID))


def _xml_term(term: Any) -> str:
    kind = type(term)
    if kind is ox.NamedNode:
        return f"<uri>{_xml_text(term.value)}</uri>"
    if kind is ox.Literal:
        if term.language:
            attr = f" xml:lang={quoteattr(term.language)}"
        elif term.datatype.value != XSD_STRING:
            attr = f" datatype={quoteattr(term.datatype.value)}"
        else:
            attr = ""
        return f"<literal{attr}>{_xml_text(term.value)}</literal>"
    if kind is ox.BlankNode:
        return f"<bnode>{_xml_text(term.value)}</bnode>"
    return (f"<triple><subject>{_xml_term(term.subject)}</subject><predicate>"
            f"{_xml_term(term.predicate)}</predicate><object>{_xml_term(term.object)}</object></triple>")


def _xml(names: list[str], rows: list[Any]) -> Iterator[str]:
    yield '<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">\n<head>'
    yield "".join(f"<variable name={quoteattr(n)}/>" for n in names)
    yield "</head>\n<results>\n"
    for row in rows:
        cells = "".join(f"<binding name={quoteattr(n)}>{_xml_term(t)}</binding>"
                        for n, t in zip(names, row, strict=True) if t is not None)
        yield f"<result>{cells}</result>\n"
    yield "</results>\n</sparql>\n"


def _csv_field(term: Any) -> str:
    if term is None:
        return ""
    kind = type(term)
    text = term.value if kind in (ox.NamedNode, ox.Literal) else \
        "_:" + term.value if kind is ox.BlankNode else str(term)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv(names: list[str], rows: list[Any]) -> Iterator[str]:
    yield ",".join(_csv_field(ox.Literal(n)) for n in names) + "\r\n"
    for row in rows:
        yield ",".join(_csv_field(t) for t in row) + "\r\n"


def _tsv(names: list[str], rows: list[Any]) -> Iterator[str]:
    yield "\t".join("?" + n for n in names) + "\n"
    for row in rows:
        # str() of a pyoxigraph term is its N-Triples form, with tabs and newlines escaped.
        yield "\t".join("" if t is None else str(t) for t in row) + "\n"


def parse_remote(body: bytes, content_type: str, solutions_format: str, graph_format: str,
                 max_results: int) -> QueryResult:
    """Re-serialize a remote server's answer (SPARQL JSON results or N-Triples) in the chosen
    format, applying the cap: every server then offers the same formats."""
    media = content_type.split(";")[0].strip().lower()
    if media in (RESULTS_JSON, "application/json"):
        parsed = ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)
        return serialize(parsed, solutions_format, graph_format, max_results)
    if media in (RESULTS_XML, "application/xml"):
        parsed = ox.parse_query_results(body, format=ox.QueryResultsFormat.XML)
        return serialize(parsed, solutions_format, graph_format, max_results)
    fmt = ox.RdfFormat.from_media_type(media) or ox.RdfFormat.N_TRIPLES
    return serialize(ox.parse(body, format=fmt), solutions_format, graph_format, max_results)
