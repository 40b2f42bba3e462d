"""RDF -> compact CTDL JSON-LD: the envelope a Turtle or N-Triples publication is stored as.

:func:`from_rdf` writes each subject as a node of ``@graph`` with compact CTDL terms (language
maps, plain IRI strings for ``@id``-coerced properties, native numbers and booleans where the
context's coercion allows), such that :func:`ctdl.rdf.to_nquads` of the result is isomorphic to
the input.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyoxigraph as ox

from ctdl.context import CTDL, TermTable, term_table
from ctdl.rdf import (
    _ABSENT,
    _ID,
    _INT_LEXICAL,
    _LANG,
    _LIST,
    _PLAIN,
    _TYPED,
    _VOCAB,
    _XSD_NUMBERS,
    RDF_TYPE,
    XSD_BOOLEAN,
    XSD_DOUBLE,
    XSD_INTEGER,
    XSD_STRING,
    _kind,
    canonical_double,
)

# --- RDF -> compact JSON-LD -------------------------------------------------------------------

class _Key(NamedTuple):
    """How the objects of one predicate are written: the key and its term's value kind."""

    name: str
    kind: int
    datatype: str | None


def _predicate_key(table: TermTable, iri: str) -> _Key:
    name = table.by_iri.get(iri)
    if name is not None:
        term = table.terms[name]
        kind = _kind(term.type, term.container)
        if kind is not None and not kind[0] & _LIST:
            return _Key(name, kind[0], kind[1])
    # No usable term: a compact or absolute IRI that is not a term has no coercion at all.
    for candidate in (table.compact_iri(iri, vocab=True), iri):
        if candidate is not None and candidate not in table.terms \
                and table.expand_iri(candidate, vocab=True) == iri:
            return _Key(candidate, _PLAIN, None)
    raise ValueError(f"predicate {iri!r} cannot be written with this context")


def _iri_string(table: TermTable, iri: str, vocab: bool) -> str:
    compact = table.compact_iri(iri, vocab)
    if compact is None:
        raise ValueError(f"IRI {iri!r} cannot be written with this context")
    return compact


def _node_id(table: TermTable, iri: str) -> str:
    """A node's @id: the IRI itself (registry style) unless only a compact form expands to it."""
    return iri if table.expand_iri(iri) == iri else _iri_string(table, iri, vocab=False)


def _native(lexical: str, datatype: str, coerced: str | None) -> Any:
    """The JSON boolean or number that turns back into exactly this literal, or _ABSENT.

    Under a datatype coercion (``coerced``) numbers and booleans take that datatype; without
    one, booleans are xsd:boolean, integers xsd:integer and other numbers xsd:double.
    """
    if datatype == (coerced or XSD_BOOLEAN) and datatype == XSD_BOOLEAN:
        return {"true": True, "false": False}.get(lexical, _ABSENT)
    numeric = datatype == coerced and datatype in _XSD_NUMBERS
    plain = coerced is None
    if (numeric or (plain and datatype == XSD_INTEGER)) and datatype != XSD_DOUBLE \
            and _INT_LEXICAL(lexical):
        integer = int(lexical)
        if abs(integer) < 1e21:
            return integer
    if numeric or (plain and datatype == XSD_DOUBLE):
        try:
            number = float(lexical)
        except ValueError:
            return _ABSENT
        if math.isfinite(number) and not number.is_integer() \
                and canonical_double(number) == lexical:
            return number
    return _ABSENT


def _literal_value(table: TermTable, lit: ox.Literal, key: _Key) -> Any:
    lexical, datatype = lit.value, lit.datatype.value
    if lit.language:
        return {"@value": lexical, "@language": _bcp47_case(lit.language)}
    base = key.kind & 7
    coerced = key.datatype if base == _TYPED else None
    if datatype == XSD_STRING:
        plain = base in (_PLAIN, _LANG) or coerced == XSD_STRING
        return lexical if plain else {"@value": lexical}
    native = _native(lexical, datatype, coerced)
    if native is not _ABSENT:
        return native
    if datatype == coerced:
        return lexical
    return {"@value": lexical, "@type": _iri_string(table, datatype, vocab=True)}


def _bcp47_case(tag: str) -> str:
    """Conventional casing (``en-US``, ``zh-Hant``); tags are case-insensitive, so cosmetic."""
    first, *rest = tag.lower().split("-")
    cased = (p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in rest)
    return "-".join([first, *cased])


def _encode_objects(table: TermTable, key: _Key, objects: list[Any],
                    label: Callable[[ox.BlankNode], str]) -> Any:
    """The JSON-LD value of one key: a language map, one value or an array."""
    if key.kind == _LANG and all(isinstance(o, ox.Literal) and o.language for o in objects):
        by_lang: dict[str, list[str]] = {}
        for o in objects:
            by_lang.setdefault(_bcp47_case(o.language), []).append(o.value)
        return {lang: vals[0] if len(vals) == 1 else vals for lang, vals in by_lang.items()}
    base = key.kind & 7
    coerced = base == _ID or base == _VOCAB
    values: list[Any] = []
    for o in objects:
        if isinstance(o, ox.NamedNode):
            iri = _iri_string(table, o.value, vocab=base == _VOCAB)
            values.append(iri if coerced else {"@id": iri})
        elif isinstance(o, ox.BlankNode):
            values.append(label(o) if coerced else {"@id": label(o)})
        else:
            values.append(_literal_value(table, o, key))
    return values[0] if len(values) == 1 else values


def _shadowed_prefixes(table: TermTable, quads: list[ox.Quad]) -> list[str]:
    """Prefixes of the context that are also the scheme of an IRI in the data: such an IRI
    (``credentialStat:Active`` meant literally) cannot be written while the prefix is defined."""
    terms = [t for q in quads for t in (q.subject, q.predicate, q.object)]
    iris = {t.value for t in terms if isinstance(t, ox.NamedNode)}
    iris.update(t.datatype.value for t in terms if isinstance(t, ox.Literal))
    split = (iri.partition(":") for iri in iris)
    return sorted({s for s, _, rest in split if s in table.prefixes and not rest.startswith("//")})


def from_rdf(nquads: str, context_url: str | Sequence[str] = CTDL,
             graph_id: str | None = None) -> dict[str, Any]:
    """A compact graph envelope ``{"@context", ["@id",] "@graph": [...]}`` from N-Triples/N-Quads.

    Graph names are ignored (all triples are taken). IRI subjects become nodes (first) with
    their absolute IRI as ``@id``; blank nodes become nodes ``_:b0``, ``_:b1``...; objects are
    written the CTDL way (language maps, plain IRI strings for ``@id``-coerced terms, plain
    lexical forms or JSON numbers/booleans for coerced datatypes). ``to_nquads`` of the result
    is isomorphic to the input, except that PyLD rewrites string literals typed xsd:double to
    their canonical lexical form. An IRI whose scheme is a prefix of the context (such as
    ``<credentialStat:Active>`` meant literally) makes the context ``[url, {prefix: null}]``.
    ValueError for input that is not N-Triples/N-Quads, for RDF-star, and for an IRI that
    JSON-LD cannot carry at all (e.g. one containing a no-break space).
    """
    try:
        quads = list(ox.parse(nquads, format=ox.RdfFormat.N_QUADS))
    except SyntaxError as e:
        raise ValueError(f"not N-Triples/N-Quads: {e}") from e
    table = term_table(context_url)
    shadowed = _shadowed_prefixes(table, quads)
    if shadowed:
        table = table.without(shadowed)
    labels: dict[ox.BlankNode, str] = {}
    nodes: dict[ox.NamedNode | ox.BlankNode, dict[str, Any]] = {}
    values: dict[ox.NamedNode | ox.BlankNode, dict[_Key, list[Any]]] = {}
    keys: dict[str, _Key] = {}

    def label(b: ox.BlankNode) -> str:
        return labels.get(b) or labels.setdefault(b, f"_:b{len(labels)}")

    for s, p, o in dict.fromkeys((q.subject, q.predicate, q.object) for q in quads):
        if isinstance(s, ox.Triple) or isinstance(o, ox.Triple):
            raise ValueError("RDF-star triple terms are not supported")
        node = nodes.get(s)
        if node is None:
            at_id = label(s) if isinstance(s, ox.BlankNode) else _node_id(table, s.value)
            node = nodes[s] = {"@id": at_id}
            values[s] = {}
        if p.value == RDF_TYPE and isinstance(o, ox.NamedNode):
            node.setdefault("@type", []).append(_iri_string(table, o.value, vocab=True))
            continue
        key = keys.get(p.value) or keys.setdefault(p.value, _predicate_key(table, p.value))
        values[s].setdefault(key, []).append(o)

    for s, node in nodes.items():
        if len(node.get("@type", ())) == 1:
            node["@type"] = node["@type"][0]
        for key, objects in values[s].items():
            node[key.name] = _encode_objects(table, key, objects, label)
    graph = [n for s, n in nodes.items() if not isinstance(s, ox.BlankNode)]
    graph += sorted((n for s, n in nodes.items() if isinstance(s, ox.BlankNode)),
                    key=lambda n: int(n["@id"][3:]))
    envelope: dict[str, Any] = {"@context": table.context_value}
    if graph_id is not None:
        envelope["@id"] = graph_id
    envelope["@graph"] = graph
    return envelope
