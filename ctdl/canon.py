"""A content hash of an RDF graph that ignores blank-node labels, triple order and graph names.

:func:`content_hash` runs on every publish. It reads the N-Triples/N-Quads that
:func:`ctdl.rdf.to_nquads` writes with one regular expression over the whole text; text in
any other shape (comments, blank lines, tabs, unusual escapes...) goes through pyoxigraph's
parser instead. Either way every term is normalised to one spelling: canonical literal
escapes, no ``xsd:string`` datatype, lower-case language tags, no graph name; duplicate
triples count once.

Blank nodes get labels computed from the graph alone, by colour refinement (the
Weisfeiler-Leman test): a blank node's first colour is the rank of the sorted list of its
edges to IRIs and literals; each round its colour becomes the rank of (old colour, sorted
edges to blank neighbours with their colours), until the partition into colours stops
splitting. Ranks are positions in the sorted list of distinct signatures, so they do not
depend on labels or order. The relabelled lines are sorted and SHA-256 hashed.

Isomorphic graphs therefore always get the same hash. Non-isomorphic graphs get different
hashes whenever refinement gives every blank node its own colour, which it does for the
tree-shaped blank nodes of CTDL documents. Blank nodes left with equal colours (automorphic
or refinement-equivalent structures) share a label; two non-isomorphic graphs of that kind
could in theory collide.
"""
from __future__ import annotations

import hashlib
import re

import pyoxigraph as ox

from ctdl.rdf import XSD_STRING, escape_literal

# Single-character exclusions keep the regular expression engine on its fast loops; the
# expression checks shape, not every character (pyoxigraph does that on the other route).
_IRI = r"<[^>]*>"
_BNODE = r"_:\S+"
_LITERAL = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"(?:@[a-z0-9-]+|\^\^<[^>]*>)?'
# One canonical line: single spaces, optional graph name, " ." at the end.
_LINE = re.compile(
    rf"^({_IRI}|{_BNODE}) ({_IRI}) ({_IRI}|{_BNODE}|{_LITERAL})(?: (?:{_IRI}|{_BNODE}))? \.$",
    re.MULTILINE,
)
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


def parse_triples(nquads: str) -> set[Triple]:
    """The distinct triples of N-Triples/N-Quads text, each term in canonical N-Triples form.

    ValueError (pyoxigraph's SyntaxError) for text that is not N-Triples/N-Quads.
    """
    matches = _LINE.findall(nquads)
    lines = nquads.count("\n")
    # Every line matched (and nothing else is there) exactly when the counts agree. Raw
    # control characters (found by deleting them from the bytes: cheaper than a search) and
    # upper-case language tags take the pyoxigraph route; escapes and an explicit xsd:string
    # are rewritten here.
    raw = nquads.encode()
    if len(matches) == lines and (not nquads or nquads[-1] == "\n") \
            and len(raw.translate(None, _CONTROL_BYTES)) == len(raw):
        if "\\" not in nquads and _XSD_STRING_SUFFIX not in nquads:
            return set(matches)
        return {(_normalise(s), _normalise(p), _normalise(o)) for s, p, o in matches}
    return {
        (_term(q.subject), _term(q.predicate), _term(q.object))
        for q in ox.parse(nquads, format=ox.RdfFormat.N_QUADS)
    }


def _ranks(signatures: dict[str, tuple[object, ...]]) -> dict[str, int]:
    """Each node's rank among the distinct signatures (label-independent colours)."""
    order = {sig: rank for rank, sig in enumerate(sorted(set(signatures.values())))}
    return {node: order[sig] for node, sig in signatures.items()}


def blank_node_colours(triples: set[Triple]) -> dict[str, int]:
    """A label-independent colour per blank node (see the module docstring)."""
    fixed: dict[str, list[str]] = {}  # node -> its edges to IRIs and literals
    linked: dict[str, list[tuple[str, str]]] = {}  # node -> (direction + predicate, bnode)
    for s, p, o in triples:
        s_blank, o_blank = s[0] == "_", o[0] == "_"
        if s_blank:
            fixed.setdefault(s, [])
            if o_blank:
                linked.setdefault(s, []).append(("+" + p, o))
            else:
                fixed[s].append("+" + p + " " + o)
        if o_blank:
            fixed.setdefault(o, [])
            if s_blank:
                linked.setdefault(o, []).append(("-" + p, s))
            else:
                fixed[o].append("-" + p + " " + s)
    colours = _ranks({node: tuple(sorted(edges)) for node, edges in fixed.items()})
    classes = len(set(colours.values()))
    for _ in range(len(fixed)):
        if classes == len(colours) or not linked:
            break
        colours = _ranks({
            node: (colour, tuple(sorted((d, colours[other]) for d, other in linked.get(node, ()))))
            for node, colour in colours.items()
        })
        previous, classes = classes, len(set(colours.values()))
        if classes == previous:
            break
    return colours


def content_hash(nquads: str) -> str:
    """SHA-256 hex digest of the graph in ``nquads`` (N-Triples or N-Quads; graph names ignored).

    Equal for isomorphic graphs whatever their blank-node labels, line order, duplicate lines
    and literal escaping; different when a triple differs (up to the caveat on
    refinement-equivalent blank nodes in the module docstring). ValueError for text that is
    not N-Triples/N-Quads.
    """
    triples = parse_triples(nquads)
    colours = blank_node_colours(triples)
    if colours:
        names = {node: f"_:c{colour}" for node, colour in colours.items()}
        lines = [
            f"{names.get(s, s)} {p} {names.get(o, o)} .\n" for s, p, o in triples
        ]
    else:
        lines = [f"{s} {p} {o} .\n" for s, p, o in triples]
    lines.sort()
    return hashlib.sha256("".join(lines).encode()).hexdigest()
