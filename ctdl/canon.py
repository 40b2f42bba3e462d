"""A content hash of an RDF graph that ignores blank-node labels, triple order and graph names.

:func:`content_hash` runs on every publish. It reads the N-Triples/N-Quads that
:func:`ctdl.rdf.to_nquads` writes with one regular expression over the whole text; text in
any other shape (comments, blank lines, tabs, unusual escapes...) goes through pyoxigraph's
parser instead. Either way every term is normalised to one spelling: canonical literal
escapes, no ``xsd:string`` datatype, lower-case language tags, no graph name; duplicate
triples count once.

Blank nodes get labels computed from the graph alone, by colour refinement (the
Weisfeiler-Leman test): a blank node's first colour is the rank of its sorted edges to and
from IRIs and literals; each round its colour becomes the rank of (old colour, sorted edges
to and from blank neighbours with their colours), until the partition into colours stops
splitting. Ranks are positions in the sorted list of distinct signatures, so they do not
depend on labels or order. The relabelled lines are sorted and SHA-256 hashed.

Isomorphic graphs therefore always get the same hash. Non-isomorphic graphs get different
hashes whenever refinement gives every blank node its own colour, which it does for the
tree-shaped blank nodes of CTDL documents. Blank nodes left with equal colours (automorphic
or refinement-equivalent structures) share a label (their lines are kept, not merged); two
non-isomorphic graphs of that kind could in theory collide.
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Any

import pyoxigraph as ox

from ctdl.rdf import XSD_STRING, escape_literal

# Single-character exclusions keep the regular expression engine on its fast loops; the
# expression checks shape, not every character (pyoxigraph does that on the other route).
_IRI = r"<[^>]*>"
_BNODE = r"_:\S+"
_LITERAL = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"(?:@[a-z0-9-]+|\^\^<[^>]*>)?'
_PLAIN_LITERAL = r'"[^"]*"(?:@[a-z0-9-]+|\^\^<[^>]*>)?'  # no escapes: "[^"]* scans fastest
# One canonical line: single spaces, optional graph name, " ." at the end.
_LINE = r"^({_IRI}|{_BNODE}) ({_IRI}) ({_IRI}|{_BNODE}|{literal})(?: (?:{_IRI}|{_BNODE}))? \.$"
_LINE_RE = re.compile(_LINE.format(_IRI=_IRI, _BNODE=_BNODE, literal=_LITERAL), re.MULTILINE)
_LINE_NO_ESCAPES = re.compile(_LINE.format(_IRI=_IRI, _BNODE=_BNODE, literal=_PLAIN_LITERAL),
                              re.MULTILINE)
_XSD_STRING_SUFFIX = "^^<" + XSD_STRING + ">"
_CONTROL_BYTES = bytes([*range(0x0A), *range(0x0B, 0x20), 0x7F])  # all but "\n"
_ECHARS = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)

Triple = tuple[str, str, str]


def _unescape_match(m: re.Match[str]) -> str:
    hex_digits = m.group(1) or m.group(2)
    if hex_digits:
        return chr(int(hex_digits, 16))
    char = _ECHARS.get(m.group(3))
    if char is None:
        raise ValueError(f"invalid escape \\{m.group(3)} in N-Triples")
    return char


def _unescape(text: str) -> str:
    return _ESCAPE.sub(_unescape_match, text) if "\\" in text else text


def _literal(lexical: str, language: str | None, datatype: str) -> str:
    body = '"' + escape_literal(lexical) + '"'
    if language:
        return body + "@" + language.lower()
    return body if datatype == XSD_STRING else body + "^^<" + datatype + ">"


def _normalise(term: str) -> str:
    """One term of a matched line, rewritten to its canonical spelling."""
    if term[0] == "<":
        return "<" + _unescape(term[1:-1]) + ">"
    if term[0] != '"':
        return term
    close = term.rfind('"')
    suffix = term[close + 1:]
    lexical = _unescape(term[1:close])
    if suffix.startswith("@"):
        return _literal(lexical, suffix[1:], XSD_STRING)
    return _literal(lexical, None, _unescape(suffix[3:-1]) if suffix else XSD_STRING)


def _term(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> str:
    if isinstance(term, ox.NamedNode):
        return "<" + term.value + ">"
    if isinstance(term, ox.BlankNode):
        return "_:" + term.value
    if isinstance(term, ox.Literal):
        return _literal(term.value, term.language, term.datatype.value)
    raise ValueError("RDF-star triple terms are not supported")


def _triples(nquads: str) -> list[Triple]:
    """The triples of N-Triples/N-Quads text (duplicates possible), terms in canonical form."""
    escapes = "\\" in nquads
    matches: list[Triple] = (_LINE_RE if escapes else _LINE_NO_ESCAPES).findall(nquads)
    raw = nquads.encode()
    # Every line matched (and nothing else is there) exactly when the counts agree. Raw
    # control characters (found by deleting them from the bytes: cheaper than a search) and
    # upper-case language tags take the pyoxigraph route; escapes and an explicit xsd:string
    # are rewritten here.
    if len(matches) == nquads.count("\n") and (not nquads or nquads[-1] == "\n") \
            and len(raw.translate(None, _CONTROL_BYTES)) == len(raw):
        if not escapes and _XSD_STRING_SUFFIX not in nquads:
            return matches
        return [(_normalise(s), _normalise(p), _normalise(o)) for s, p, o in matches]
    try:
        quads = list(ox.parse(raw, format=ox.RdfFormat.N_QUADS))
    except SyntaxError as e:
        raise ValueError(f"not N-Triples/N-Quads: {e}") from e
    return [(_term(q.subject), _term(q.predicate), _term(q.object)) for q in quads]


def parse_triples(nquads: str) -> set[Triple]:
    """The distinct triples of N-Triples/N-Quads text, each term in canonical N-Triples form.

    ValueError for text that cannot be parsed.
    """
    return set(_triples(nquads))


def _ranks(signatures: dict[str, Any]) -> dict[str, int]:
    """Each node's rank among the distinct signatures (label-independent colours)."""
    order = {sig: rank for rank, sig in enumerate(sorted(set(signatures.values())))}
    return {node: order[sig] for node, sig in signatures.items()}


def _refine(outgoing: dict[str, list[str]], incoming: dict[str, list[str]],
            links: list[Triple]) -> dict[str, int]:
    """Colour refinement over the blank nodes' edges (see the module docstring).

    ``outgoing``: blank node -> "predicate object" for IRI and literal objects; ``incoming``:
    blank node -> "subject predicate" for IRI subjects; ``links``: the triples between two
    blank nodes. No edge may repeat.
    """
    nodes = set(outgoing).union(incoming, *((s, o) for s, _, o in links))
    none: list[str] = []
    # A signature is one string (terms hold no raw newline): strings sort faster than tuples.
    colours = _ranks({
        n: "\n".join(sorted(outgoing.get(n, none))) + "\n\n" + "\n".join(sorted(incoming.get(n, none)))
        for n in nodes
    })
    classes = len(set(colours.values()))
    for _ in range(len(nodes)):
        if classes == len(nodes) or not links:
            break
        neighbours: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
        for s, p, o in links:
            neighbours[s].append(("+" + p, colours[o]))
            neighbours[o].append(("-" + p, colours[s]))
        colours = _ranks({
            n: (colour, tuple(sorted(neighbours.get(n, ())))) for n, colour in colours.items()
        })
        previous, classes = classes, len(set(colours.values()))
        if classes == previous:
            break
    return colours


def _split(triples: Iterable[Triple]) -> tuple[list[Triple], list[Triple], dict[str, list[str]],
                                               dict[str, list[str]], list[Triple]]:
    """Triples without blank nodes, triples with them, and the blank nodes' edges."""
    plain: list[Triple] = []
    blank: list[Triple] = []
    outgoing: defaultdict[str, list[str]] = defaultdict(list)
    incoming: defaultdict[str, list[str]] = defaultdict(list)
    links: list[Triple] = []
    keep_plain, keep_blank = plain.append, blank.append
    for t in triples:
        s, p, o = t
        if s[0] == "_":
            keep_blank(t)
            if o[0] == "_":
                links.append(t)
            else:
                outgoing[s].append(p + " " + o)
        elif o[0] == "_":
            keep_blank(t)
            incoming[o].append(s + " " + p)
        else:
            keep_plain(t)
    return plain, blank, outgoing, incoming, links


def blank_node_colours(triples: Iterable[Triple]) -> dict[str, int]:
    """A label-independent colour (a small integer) per blank node of distinct ``triples``."""
    _, _, outgoing, incoming, links = _split(triples)
    return _refine(outgoing, incoming, links)


def _canonical_lines(triples: list[Triple]) -> list[str]:
    """The triples with blank nodes renamed by colour, as sorted "s p o" lines."""
    rows, blank, outgoing, incoming, links = _split(triples)
    lines = list(map(" ".join, rows))  # strings sort faster than tuples
    if blank:
        names = {n: f"_:c{colour}" for n, colour in _refine(outgoing, incoming, links).items()}
        get = names.get
        lines += [f"{get(s, s)} {p} {get(o, o)}" for s, p, o in blank]
    lines.sort()
    return lines


def content_hash(nquads: str) -> str:
    """SHA-256 hex digest of the graph in ``nquads`` (N-Triples or N-Quads; graph names ignored).

    Equal for isomorphic graphs whatever their blank-node labels, line order, duplicate lines
    and literal escaping; different when a triple differs (up to the caveat on
    refinement-equivalent blank nodes in the module docstring). ValueError for text that
    cannot be parsed.
    """
    triples = _triples(nquads)
    lines = _canonical_lines(triples)
    # Equal neighbours come from a repeated input triple (rare; then start again without
    # repeats, which would change colours) or from blank nodes sharing a colour: those rows are
    # kept, not merged, so two such twins still differ from one node.
    if any(map(str.__eq__, lines, islice(lines, 1, None))) and len(set(triples)) < len(triples):
        lines = _canonical_lines(list(dict.fromkeys(triples)))
    # One triple per line, terms separated by spaces: unambiguous, as terms hold neither raw.
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
