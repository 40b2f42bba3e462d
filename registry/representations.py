"""A record in each format it is served in: JSON-LD (compacted as published, or expanded),
Turtle, N-Triples, N-Quads and HTML; as a whole graph or as its main resource."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import pyoxigraph as ox

from ctdl import rdf
from registry.negotiation import EXPANDED_PROFILE, Choice

PREFIXES = {
    "ceterms": "https://purl.org/ctdl/terms/",
    "ceasn": "https://purl.org/ctdlasn/terms/",
    "qdata": "https://purl.org/ctdl/qdata/",
    "schema": "https://schema.org/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def resource_view(envelope: dict[str, Any]) -> dict[str, Any]:
    """The main node with the blank nodes it references embedded, as Credential Engine serves
    /resources/{ctid}: one JSON-LD object describing the same triples as the main node and its
    blank nodes in the graph."""
    nodes = envelope["@graph"]
    blanks = {n["@id"]: n for n in nodes if isinstance(n.get("@id"), str)
              and n["@id"].startswith("_:")}
    main = nodes[0] if nodes else {}
    for node in nodes:
        if "ceterms:ctid" in node:
            main = node
            break
    if not blanks:  # the common case: blank nodes, if any, are already nested in the main node
        return {"@context": envelope["@context"], **main}
    return {"@context": envelope["@context"], **_embed(main, blanks, set())}


def _embed(node: dict[str, Any], blanks: dict[str, Any], path: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("@"):
            out[key] = value
        elif isinstance(value, list):
            out[key] = [_embed_value(v, blanks, path) for v in value]
        else:
            out[key] = _embed_value(value, blanks, path)
    return out


def _embed_value(value: Any, blanks: dict[str, Any], path: set[str]) -> Any:
    if isinstance(value, str) and value in blanks and value not in path:
        return _embed(blanks[value], blanks, path | {value})
    if isinstance(value, dict) and "@value" not in value:
        ref = value.get("@id")
        if isinstance(ref, str) and ref in blanks and len(value) == 1 and ref not in path:
            return _embed(blanks[ref], blanks, path | {ref})
        return _embed(value, blanks, path)
    return value


@lru_cache(maxsize=4096)
def _turtle(ntriples: str) -> bytes:
    triples = ox.parse(ntriples.encode(), format=ox.RdfFormat.N_TRIPLES)
    out = ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=PREFIXES)
    assert out is not None  # with no output argument, serialize returns the bytes
    return out


def to_nquads(ntriples: str, graph: str) -> str:
    """N-Triples lines with `graph` as the fourth term."""
    suffix = f" <{graph}> .\n"
    return "".join(line[:-2] + suffix for line in ntriples.splitlines() if line.endswith(" ."))


def render(doc: dict[str, Any], ntriples: str | None, graph_iri: str, choice: Choice,
           body: bytes | None = None) -> bytes:
    """Bytes of `doc` (a graph envelope or resource view) in the chosen RDF or JSON-LD form."""
    media = choice.media_type
    if media in ("application/ld+json", "application/json"):
        if choice.profile and EXPANDED_PROFILE in choice.profile.split():
            return orjson.dumps(rdf.to_expanded(doc))
        return body if body is not None else orjson.dumps(doc)
    if ntriples is None:
        ntriples = rdf.to_nquads(doc)
    if media == "application/n-triples":
        return ntriples.encode()
    if media == "application/n-quads":
        return to_nquads(ntriples, graph_iri).encode()
    if media == "text/turtle":
        return _turtle(ntriples)
    raise ValueError(media)
