"""A content hash of an RDF graph that ignores blank-node labels, triple order and graph names.

:func:`content_hash` runs on every publish, so it parses N-Triples/N-Quads itself (a split per
line, with pyoxigraph as the fallback for lines it does not recognise) and normalises each term
to one spelling: literal escapes rewritten canonically, ``xsd:string`` datatypes dropped,
language tags lower-cased, graph names ignored, duplicate triples counted once.

Blank nodes get labels computed from the graph alone (colour refinement, as in the
Weisfeiler-Leman test): every blank node starts with the same colour; each round its colour
becomes a hash of its old colour and of the sorted list of its outgoing (predicate, object)
and incoming (predicate, subject) edges, blank neighbours written with their colour. Rounds go
on until the partition into colours stops splitting. The relabelled lines are sorted and
SHA-256 hashed. Isomorphic graphs therefore always get the same hash. The converse holds for
every graph whose blank nodes end up with distinct colours (tree-shaped blank nodes, as in CTDL,
always do); blank nodes left with equal colours (automorphic or refinement-equivalent
structures) share a label, so two non-isomorphic graphs of that kind could in theory collide.
"""
from __future__ import annotations

import hashlib
import re

import pyoxigraph as ox

from ctdl.rdf import XSD_STRING, escape_literal

_XSD_STRING_SUFFIX = "^^<" + XSD_STRING + ">"
_ECHARS = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)


class _Irregular(Exception):
    """A line the quick parser does not recognise; the whole input goes to pyoxigraph."""


def _unescape_match(m: re.Match[str]) -> str:
    hex_digits = m.group(1) or m.group(2)
    if hex_digits:
        return chr(int(hex_digits, 16))
    char = _ECHARS.get(m.group(3))
    if char is None:
        raise _Irregular(f"bad escape \\{m.group(3)}")
    return char


def _iri(token: str) -> str:
    if len(token) < 2 or token[0] != "<" or token[-1] != ">":
        raise _Irregular(token)
    if "\\" in token:
        return _ESCAPE_RE.sub(_unescape_match, token)
    return token


def _node(token: str) -> str:
    return token if token.startswith("_:") else _iri(token)


def _object(rest: str) -> str:
    """The normalised object term at the start of ``rest`` (a graph name may follow)."""
    if rest[0] != '"':
        return _node(rest.split(None, 1)[0])
    close = rest.rfind('"')  # nothing after a literal (tag, datatype, graph) holds a quote
    if close == 0:
        raise _Irregular(rest)
    body = rest[1:close]
    if "\\" in body:
        body = _ESCAPE_RE.sub(_unescape_match, body)
    body = '"' + escape_literal(body) + '"'
    after = rest[close + 1:].split(None, 1)
    suffix = after[0] if after and after[0][0] in "@^" else ""
    if not suffix:
        return body
    if suffix[0] == "@":
        return body + suffix.lower()
    if not suffix.startswith("^^"):
        raise _Irregular(rest)
    datatype = _iri(suffix[2:])
    return body if datatype == "<" + XSD_STRING + ">" else body + "^^" + datatype


def _parse_quick(text: str) -> set[tuple[str, str, str]]:
    triples: set[tuple[str, str, str]] = set()
    add = triples.add
    # Not splitlines(): it also splits at U+2028, U+0085... which may stand raw in a literal.
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line[-1] != ".":
            raise _Irregular(line)
        parts = line[:-1].split(None, 2)
        if len(parts) != 3:
            raise _Irregular(line)
        add((_node(parts[0]), _iri(parts[1]), _object(parts[2])))
    return triples


def _term(term: ox.NamedNode | ox.BlankNode | ox.Literal) -> str:
    if isinstance(term, ox.NamedNode):
        return "<" + term.value + ">"
    if isinstance(term, ox.BlankNode):
        return "_:" + term.value
    if isinstance(term, ox.Literal):
        body = '"' + escape_literal(term.value) + '"'
        if term.language:
            return body + "@" + term.language.lower()
        datatype = term.datatype.value
        return body if datatype == XSD_STRING else body + "^^<" + datatype + ">"
    raise ValueError("RDF-star triple terms are not supported")


def _parse_strict(text: str) -> set[tuple[str, str, str]]:
    return {
        (_term(q.subject), _term(q.predicate), _term(q.object))
        for q in ox.parse(text, format=ox.RdfFormat.N_QUADS)
    }


def parse_triples(nquads: str) -> set[tuple[str, str, str]]:
    """The distinct triples of N-Triples/N-Quads text as normalised N-Triples terms."""
    try:
        return _parse_quick(nquads)
    except (_Irregular, IndexError):
        return _parse_strict(nquads)


def _colour(data: str) -> str:
    return hashlib.blake2b(data.encode(), digest_size=16).hexdigest()


def _blank_colours(triples: set[tuple[str, str, str]]) -> dict[str, str]:
    """A label-independent colour per blank node (see the module docstring)."""
    edges: dict[str, list[tuple[str, str, str]]] = {}  # node -> (direction, predicate, other)
    for s, p, o in triples:
        if s[0] == "_":
            edges.setdefault(s, []).append(("+", p, o))
        if o[0] == "_":
            edges.setdefault(o, []).append(("-", p, s))
    colours = dict.fromkeys(edges, "")
    classes = 1
    for _ in range(len(edges) + 1):
        new = {}
        for node, node_edges in edges.items():
            sig = sorted(
                d + p + " " + ("_:" + colours[other] if other[0] == "_" else other)
                for d, p, other in node_edges
            )
            new[node] = _colour(colours[node] + "\n" + "\n".join(sig))
        colours = new
        distinct = len(set(new.values()))
        if distinct == classes:
            break
        classes = distinct
    return colours


def content_hash(nquads: str) -> str:
    """SHA-256 hex digest of the graph in ``nquads`` (N-Triples or N-Quads; graph names ignored).

    Equal for isomorphic graphs whatever their blank-node labels, line order, duplicate lines
    and literal escaping; different when a triple differs (up to the caveat on
    refinement-equivalent blank nodes in the module docstring). ValueError (from pyoxigraph)
    for text that is not N-Triples/N-Quads.
    """
    triples = parse_triples(nquads)
    if any(s[0] == "_" or o[0] == "_" for s, _, o in triples):
        colours = _blank_colours(triples)

        def name(term: str) -> str:
            return "_:c" + colours[term] if term[0] == "_" else term

        lines = [name(s) + " " + p + " " + name(o) + " .\n" for s, p, o in triples]
    else:
        lines = [s + " " + p + " " + o + " .\n" for s, p, o in triples]
    lines.sort()
    return hashlib.sha256("".join(lines).encode()).hexdigest()
