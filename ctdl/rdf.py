"""JSON-LD <-> RDF for CTDL documents: a fast path for the CTDL shapes, PyLD for the rest.

:func:`to_nquads` turns a parsed JSON-LD document (a Credential Engine graph envelope
``{"@context", "@id", "@graph": [...]}`` or a single node document) into N-Triples, or N-Quads
in one named graph. The fast path walks the document once with a precomputed term table; any
construct it does not implement (an inline ``@context`` anywhere, ``@reverse``, ``@included``,
``@nest``, scoped contexts, keys that do not expand, relative IRIs, ...) sends the whole
document to PyLD with the local document loader, so the result always equals PyLD's. Fallbacks
are counted in :data:`FALLBACKS` (by reason) for benchmarks.

Named graphs: JSON-LD puts the nodes of an envelope that has an ``@id`` into the named graph
with that IRI. The registry wants the triples of the nodes and decides itself where they go,
so :func:`to_nquads` returns the union of the document's triples, whatever graph JSON-LD would
have placed them in, in the default graph, or all in the graph ``graph`` when it is given.

:func:`from_rdf` goes the other way, to a compact envelope whose ``to_nquads`` is isomorphic
to the input.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import count
from typing import Any

import pyoxigraph as ox
from pyld import jsonld

from ctdl.context import CTDL, ContextError, TermTable, document_loader, term_table

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = RDF_NS + "type"
RDF_LANGSTRING = RDF_NS + "langString"
XSD_STRING = XSD_NS + "string"
XSD_BOOLEAN = XSD_NS + "boolean"
XSD_INTEGER = XSD_NS + "integer"
XSD_DOUBLE = XSD_NS + "double"

FALLBACKS: Counter[str] = Counter()
"""How many documents went to PyLD, by reason (for benchmarks; never reset by this module)."""

_T_TYPE = "<" + RDF_TYPE + ">"
_T_FIRST = "<" + RDF_NS + "first>"
_T_REST = "<" + RDF_NS + "rest>"
_T_NIL = "<" + RDF_NS + "nil>"

# Value kinds of a property, from its term definition.
_PLAIN, _ID, _VOCAB, _TYPED, _LANG = 0, 1, 2, 3, 4
_LIST = 8  # flag: the term has an @list container

# An absolute IRI that PyLD keeps and that N-Triples can carry without escaping.
_IRI_OK = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\\s]*\Z').match
_LANG_OK = re.compile(r"[A-Za-z]+(?:-[A-Za-z0-9]+)*\Z").match
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\\x7f]').search
# N-Triples canonical escapes (RDF 1.2): ECHAR where one exists, else \u00XX.
_ESCAPES = {i: f"\\u{i:04X}" for i in [*range(0x20), 0x7F]}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                 0x22: '\\"', 0x5C: "\\\\"})
_CACHE_LIMIT = 200_000  # entries per expansion cache before it is cleared


class RdfError(ValueError):
    """The document is not valid JSON-LD (PyLD's error is the ``__cause__``)."""


class _Fallback(Exception):
    """The fast path does not handle this document; the message is the reason."""


def escape_literal(value: str) -> str:
    """The body of an N-Triples string literal (canonical escapes, without the quotes)."""
    return value if _NEEDS_ESCAPE(value) is None else value.translate(_ESCAPES)


def canonical_double(value: float) -> str:
    """JSON-LD's canonical xsd:double lexical form (e.g. 41.6946 -> ``4.16946E1``)."""
    mantissa, exponent = f"{value:1.15E}".split("E")
    mantissa = mantissa.rstrip("0")
    if mantissa.endswith("."):
        mantissa += "0"
    return mantissa + "E" + str(int(exponent))


def _literal(lexical: str, datatype: str | None) -> str:
    body = '"' + escape_literal(lexical) + '"'
    return body if datatype is None or datatype == XSD_STRING else body + "^^<" + datatype + ">"


def _native_literal(value: Any, datatype: str | None) -> str:
    """A JSON boolean or number as PyLD turns it into a literal (same branches, same order)."""
    if value is True or value is False:
        return _literal("true" if value else "false", datatype or XSD_BOOLEAN)
    if type(value) is float:
        if not math.isfinite(value):
            raise _Fallback("non-finite number")
        if not value.is_integer() or datatype == XSD_DOUBLE or abs(value) >= 1e21:
            return _literal(canonical_double(value), datatype or XSD_DOUBLE)
        return _literal(str(int(value)), datatype or XSD_INTEGER)
    if type(value) is int:
        if datatype == XSD_DOUBLE or abs(value) >= 1e21:
            return _literal(canonical_double(float(value)), datatype or XSD_DOUBLE)
        return _literal(str(value), datatype or XSD_INTEGER)
    raise _Fallback(f"value of type {type(value).__name__}")


@dataclass(slots=True, eq=False)
class _Compiled:
    """A term table prepared for the fast path, with per-process expansion caches."""

    table: TermTable
    props: dict[str, tuple[str, int, str | None]]  # key -> (predicate term, kind, datatype)
    ids: dict[str, str]  # @id-style value -> "<iri>"
    vocab: dict[str, str]  # vocab-style value (@type, datatype) -> "<iri>" or the bare IRI


def _kind(term_type: str | None, container: tuple[str, ...]) -> tuple[int, str | None] | None:
    """The value kind and datatype of a term, or None if the fast path must not use it."""
    if "@language" in container:
        return (_LANG, None) if term_type is None else None
    flag = _LIST if "@list" in container else 0
    if term_type is None:
        return _PLAIN | flag, None
    if term_type == "@id":
        return _ID | flag, None
    if term_type == "@vocab":
        return _VOCAB | flag, None
    if term_type.startswith("@") or not _IRI_OK(term_type):  # @json, @none
        return None
    return _TYPED | flag, term_type


@lru_cache(maxsize=16)
def _compile(table: TermTable) -> _Compiled:
    props: dict[str, tuple[str, int, str | None]] = {}
    for name, term in table.terms.items():
        kind = _kind(term.type, term.container) if term.supported else None
        if kind is not None and term.iri is not None and _IRI_OK(term.iri):
            props[name] = ("<" + term.iri + ">", kind[0], kind[1])
    return _Compiled(table, props, {}, {})


def _compiled_for(context: Any) -> _Compiled:
    if isinstance(context, str):
        table = term_table(context)  # ContextError for remote contexts
    elif isinstance(context, list) and context and all(isinstance(c, str) for c in context):
        table = term_table(context)
    else:
        raise _Fallback("inline or missing @context")
    if not table.fast:
        raise _Fallback("context sets @vocab, @base or a default language")
    return _compile(table)


def _expand_id(comp: _Compiled, value: str) -> str:
    """An @id-style value (not a blank node) as an N-Triples IRI term."""
    term = comp.ids.get(value)
    if term is None:
        iri = comp.table.expand_iri(value, vocab=False)
        if iri is None or not _IRI_OK(iri):
            raise _Fallback("relative or invalid IRI")
        term = "<" + iri + ">"
        if len(comp.ids) >= _CACHE_LIMIT:
            comp.ids.clear()
        comp.ids[value] = term
    return term


def _expand_vocab(comp: _Compiled, value: str) -> str:
    """A vocab-style value (an @type, a datatype) as a bare absolute IRI."""
    iri = comp.vocab.get(value)
    if iri is None:
        term = comp.table.terms.get(value)
        if term is not None and not term.supported:  # e.g. a type-scoped context
            raise _Fallback("unsupported term used as a type or value")
        expanded = comp.table.expand_iri(value, vocab=True)
        if expanded is None or not _IRI_OK(expanded):
            raise _Fallback("relative or invalid type IRI")
        iri = expanded
        if len(comp.vocab) >= _CACHE_LIMIT:
            comp.vocab.clear()
        comp.vocab[value] = iri
    return iri


def _extra_key(comp: _Compiled, key: str) -> tuple[str, int, str | None]:
    """A key that is not a term: a compact or absolute IRI, with no coercion."""
    if key in comp.table.terms or key.startswith("_:"):
        raise _Fallback(f"unsupported key {key!r}")
    iri = comp.table.expand_iri(key, vocab=True)
    if iri is None or not _IRI_OK(iri):
        raise _Fallback(f"key {key!r} is not a term or an IRI")
    entry = ("<" + iri + ">", _PLAIN, None)
    if len(comp.props) < _CACHE_LIMIT:
        comp.props[key] = entry
    return entry


def _lang_tag(lang: Any) -> str:
    if not isinstance(lang, str) or not _LANG_OK(lang):
        raise _Fallback("unusual language tag")
    return "@" + lang.lower()


def _fast(doc: Any, tail: str) -> list[str]:
    """The document's triples as N-Triples lines (each ending with ``tail``); _Fallback if not
    a shape this path implements."""
    if type(doc) is not dict:
        raise _Fallback("document is not an object")
    comp = _compiled_for(doc.get("@context"))
    props_get = comp.props.get
    out: list[str] = []
    append = out.append
    labels: dict[str, str] = {}  # the document's own blank node ids -> fresh labels
    fresh = count().__next__

    def bnode() -> str:
        return f"_:b{fresh()}"

    def ref(value: str) -> str:
        if value.startswith("_:"):
            label = labels.get(value)
            if label is None:
                label = labels[value] = bnode()
            return label
        return _expand_id(comp, value)

    def vocab_ref(value: str) -> str:
        if value.startswith("_:"):
            return ref(value)
        return "<" + _expand_vocab(comp, value) + ">"

    def value_object(v: dict[str, Any]) -> str | None:
        for k in v:
            if k != "@value" and k != "@type" and k != "@language":
                raise _Fallback(f"value object key {k!r}")
        val = v["@value"]
        if val is None:
            return None
        typ = v.get("@type", _ABSENT)
        lang = v.get("@language", _ABSENT)
        datatype = None
        if typ is not _ABSENT:
            if lang is not _ABSENT or type(typ) is not str or typ.startswith(("@", "_:")):
                raise _Fallback("unusual value object @type")
            datatype = _expand_vocab(comp, typ)
        if type(val) is str:
            if lang is not _ABSENT:
                return '"' + escape_literal(val) + '"' + _lang_tag(lang)
            if datatype == XSD_DOUBLE:  # PyLD canonicalizes such strings; leave it to PyLD
                raise _Fallback("string typed xsd:double")
            return _literal(val, datatype)
        if lang is not _ABSENT:
            raise _Fallback("non-string language-tagged value")
        return _native_literal(val, datatype)

    def rdf_list(items: Any, kind: int, datatype: str | None) -> str:
        terms = []
        for item in items if type(items) is list else [items]:
            if type(item) is list or (type(item) is dict and "@list" in item):
                raise _Fallback("list of lists")
            t = obj(item, kind, datatype)
            if t is not None:
                terms.append(t)
        if not terms:
            return _T_NIL
        nodes = [bnode() for _ in terms]
        for node_term, t, rest in zip(nodes, terms, [*nodes[1:], _T_NIL], strict=True):
            append(node_term + " " + _T_FIRST + " " + t + tail)
            append(node_term + " " + _T_REST + " " + rest + tail)
        return nodes[0]

    def obj(v: Any, kind: int, datatype: str | None) -> str | None:
        """The object term of one (non-array) value; None when JSON-LD drops it."""
        t = type(v)
        if t is str:
            base = kind & 7
            if base == _PLAIN or base == _LANG:
                return '"' + escape_literal(v) + '"'
            if base == _ID:
                return ref(v)
            if base == _TYPED:
                if datatype == XSD_DOUBLE:
                    raise _Fallback("string coerced to xsd:double")
                return _literal(v, datatype)
            return vocab_ref(v)
        if t is dict:
            if "@value" in v:
                return value_object(v)
            if "@list" in v:
                if len(v) != 1:
                    raise _Fallback("list object with other keys")
                return rdf_list(v["@list"], kind, datatype)
            if "@set" in v:
                raise _Fallback("@set object")
            return node(v, False)
        if v is None:
            return None
        if t is list:
            raise _Fallback("nested array")
        return _native_literal(v, datatype if kind & 7 == _TYPED else None)

    def language_map(head: str, m: dict[str, Any]) -> None:
        for lang, vals in m.items():
            if lang.startswith("@"):
                raise _Fallback("keyword in a language map")
            tag = _lang_tag(lang)
            for val in vals if type(vals) is list else (vals,):
                if type(val) is str:
                    append(head + '"' + escape_literal(val) + '"' + tag + tail)
                elif val is not None:
                    raise _Fallback("non-string in a language map")

    def types(subject: str, v: Any) -> None:
        for t in v if type(v) is list else (v,):
            if type(t) is not str or t.startswith("@"):
                raise _Fallback("unusual @type value")
            append(subject + " " + _T_TYPE + " " + vocab_ref(t) + tail)

    def node(o: dict[str, Any], top: bool) -> str:
        i = o.get("@id")
        if i is None:
            if "@id" in o:
                raise _Fallback("@id null")
            subject = bnode()
        elif type(i) is str:
            subject = ref(i)
        else:
            raise _Fallback("non-string @id")
        for key, v in o.items():
            p = props_get(key)
            if p is None:
                if key.startswith("@"):
                    if key == "@id":
                        continue
                    if key == "@type":
                        types(subject, v)
                        continue
                    if key == "@context" and top:
                        continue
                    raise _Fallback(f"keyword {key}")
                p = _extra_key(comp, key)
            if v is None:
                continue
            pred, kind, datatype = p
            head = subject + " " + pred + " "
            if kind == _LANG and type(v) is dict:
                language_map(head, v)
            elif kind & _LIST and not (type(v) is dict and "@list" in v):
                append(head + rdf_list(v, kind, datatype) + tail)
            elif type(v) is list:
                for item in v:
                    t = obj(item, kind, datatype)
                    if t is not None:
                        append(head + t + tail)
            else:
                t = obj(v, kind, datatype)
                if t is not None:
                    append(head + t + tail)
        return subject

    if "@graph" in doc:
        _envelope_check(comp, doc)
        graph = doc["@graph"]
        for item in graph if type(graph) is list else (graph,):
            if type(item) is not dict or "@value" in item or "@list" in item or "@set" in item:
                raise _Fallback("free-floating value in @graph")
            node(item, False)
    else:
        if "@value" in doc or "@list" in doc or "@set" in doc:
            raise _Fallback("top-level value")
        node(doc, True)
    return out


_ABSENT = object()
_ENVELOPE_KEYS = frozenset({"@context", "@id", "@graph"})


def _envelope_check(comp: _Compiled, doc: dict[str, Any]) -> None:
    """Only a plain envelope is flattened here: with more keys the envelope is itself a node."""
    if not _ENVELOPE_KEYS.issuperset(doc):
        raise _Fallback("envelope with other keys than @context, @id, @graph")
    gid = doc.get("@id", _ABSENT)
    if gid is not _ABSENT:
        # JSON-LD drops a named graph whose name is relative; PyLD decides those.
        if type(gid) is not str or gid.startswith("_:"):
            raise _Fallback("unusual graph name")
        _expand_id(comp, gid)
    if doc["@graph"] is None:
        raise _Fallback("@graph null")


def _unwrap(error: Exception) -> Exception:
    """The ContextError behind a PyLD error, if any, else an RdfError for it."""
    seen: Exception | None = error
    for _ in range(32):
        if seen is None:
            break
        if isinstance(seen, ContextError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    wrapped = RdfError(str(error))
    wrapped.__cause__ = error
    return wrapped


def _pyld_term(term: dict[str, Any]) -> str:
    if term["type"] == "IRI":
        return "<" + term["value"] + ">"
    if term["type"] == "blank node":
        return str(term["value"])
    datatype = term.get("datatype")
    if datatype == RDF_LANGSTRING:
        lang = term.get("language")
        return '"' + escape_literal(term["value"]) + '"' + ("@" + lang if lang else "")
    return _literal(term["value"], datatype)


def _slow(doc: Any, tail: str) -> list[str]:
    """PyLD's triples for any document, all graphs merged, serialized like the fast path."""
    try:
        dataset = jsonld.to_rdf(doc, {"documentLoader": document_loader})
    except jsonld.JsonLdError as e:
        raise _unwrap(e) from e
    return [
        _pyld_term(t["subject"]) + " " + _pyld_term(t["predicate"]) + " "
        + _pyld_term(t["object"]) + tail
        for triples in dataset.values()
        for t in triples
    ]


def _tail(graph: str | None) -> str:
    if graph is None:
        return " .\n"
    if not _IRI_OK(graph):
        raise ValueError(f"graph name must be an absolute IRI, not {graph!r}")
    return " <" + graph + "> .\n"


def to_nquads(doc: dict[str, Any], graph: str | None = None) -> str:
    """The document's RDF as N-Triples, or as N-Quads in the named graph ``graph``.

    The triples are isomorphic to PyLD's ``to_rdf`` of the document with all graphs merged
    (see the module docstring). Blank node labels are fresh (``_:b0``...) and scoped to this
    one document. Duplicate triples are written once; order is not significant.
    Raises ContextError for a context other than the vendored CTDL ones, RdfError for a
    document that is not valid JSON-LD, ValueError for a ``graph`` that is not an IRI.
    """
    tail = _tail(graph)
    try:
        lines = _fast(doc, tail)
    except _Fallback as reason:
        FALLBACKS[str(reason)] += 1
        lines = _slow(doc, tail)
    return "".join(dict.fromkeys(lines))


def to_expanded(doc: dict[str, Any]) -> list[Any]:
    """JSON-LD expanded form of the document (PyLD with the local loader; not for hot paths)."""
    try:
        expanded: list[Any] = jsonld.expand(doc, {"documentLoader": document_loader})
    except jsonld.JsonLdError as e:
        raise _unwrap(e) from e
    return expanded


# --- RDF -> compact JSON-LD ------------------------------------------------------------------

_INT_LEXICAL = re.compile(r"-?(?:0|[1-9][0-9]*)\Z").match


@dataclass(slots=True)
class _Key:
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
    # No usable term: a compact or absolute IRI that is not itself a term expands with no
    # coercion at all.
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


def _native(lexical: str, datatype: str, effective: dict[str, str]) -> Any:
    """A JSON boolean or number that turns back into exactly this literal, or _ABSENT.

    ``effective`` maps the JSON type names to the datatype such a value would get.
    """
    if datatype == effective["bool"] and lexical in ("true", "false"):
        return lexical == "true"
    if datatype == effective["int"] and datatype != XSD_DOUBLE and _INT_LEXICAL(lexical):
        number = int(lexical)
        if abs(number) < 1e21:
            return number
    if datatype == effective["float"]:
        try:
            number_f = float(lexical)
        except ValueError:
            return _ABSENT
        if math.isfinite(number_f) and not number_f.is_integer() \
                and canonical_double(number_f) == lexical:
            return number_f
    return _ABSENT


_DEFAULT_NATIVE = {"bool": XSD_BOOLEAN, "int": XSD_INTEGER, "float": XSD_DOUBLE}


def _literal_value(table: TermTable, lit: ox.Literal, key: _Key) -> Any:
    lexical, datatype = lit.value, lit.datatype.value
    if lit.language:
        return {"@value": lexical, "@language": lit.language}
    base = key.kind & 7
    if base == _TYPED:
        assert key.datatype is not None
        if datatype == key.datatype:
            native = _native(lexical, datatype, dict.fromkeys(_DEFAULT_NATIVE, key.datatype))
            return lexical if native is _ABSENT else native
        if datatype == XSD_STRING:
            return {"@value": lexical}
    elif datatype == XSD_STRING:
        return lexical if base in (_PLAIN, _LANG) else {"@value": lexical}
    else:
        native = _native(lexical, datatype, _DEFAULT_NATIVE)
        if native is not _ABSENT:
            return native
    return {"@value": lexical, "@type": _iri_string(table, datatype, vocab=True)}


def _encode_objects(table: TermTable, key: _Key, objects: list[Any],
                    label: dict[str, str]) -> Any:
    """The JSON-LD value of one key: a language map, one value or an array."""
    if key.kind == _LANG and all(isinstance(o, ox.Literal) and o.language for o in objects):
        by_lang: dict[str, list[str]] = {}
        for o in objects:
            by_lang.setdefault(o.language, []).append(o.value)
        return {lang: vals[0] if len(vals) == 1 else vals for lang, vals in by_lang.items()}
    base = key.kind & 7
    coerced = base == _ID or base == _VOCAB
    values: list[Any] = []
    for o in objects:
        if isinstance(o, ox.NamedNode):
            iri = _iri_string(table, o.value, vocab=base == _VOCAB)
            values.append(iri if coerced else {"@id": iri})
        elif isinstance(o, ox.BlankNode):
            values.append(label[o.value] if coerced else {"@id": label[o.value]})
        else:
            values.append(_literal_value(table, o, key))
    return values[0] if len(values) == 1 else values


def _shadowed_prefixes(table: TermTable, quads: list[ox.Quad]) -> list[str]:
    """Prefixes of the context that are also the scheme of an IRI in the data.

    Such an IRI (``credentialStat:Active`` meant literally) cannot be written while the
    prefix is defined, so the envelope's context nulls those prefixes.
    """
    iris: set[str] = set()
    for quad in quads:
        for term in (quad.subject, quad.predicate, quad.object):
            if isinstance(term, ox.NamedNode):
                iris.add(term.value)
            elif isinstance(term, ox.Literal):
                iris.add(term.datatype.value)
    found = set()
    for iri in iris:
        scheme, _, rest = iri.partition(":")
        if scheme in table.prefixes and not rest.startswith("//"):
            found.add(scheme)
    return sorted(found)


def from_rdf(nquads: str, context_url: str | Sequence[str] = CTDL,
             graph_id: str | None = None) -> dict[str, Any]:
    """A compact graph envelope ``{"@context", ["@id",] "@graph": [...]}`` from N-Triples/N-Quads.

    Graph names are ignored (all triples are taken). IRI subjects become nodes with their
    absolute IRI as ``@id``; blank nodes become nodes ``_:b0``, ``_:b1``...; objects are
    written the CTDL way (language maps, plain IRI strings for ``@id``-coerced terms, plain
    lexical forms or JSON numbers/booleans for coerced datatypes). ``to_nquads`` of the result
    is isomorphic to the input, except that PyLD rewrites string literals typed xsd:double to
    their canonical lexical form. An IRI whose scheme is a prefix of the context (such as
    ``<credentialStat:Active>`` meant literally) makes the context ``[url, {prefix: null}]``.
    ValueError for an IRI that JSON-LD cannot carry at all (e.g. one with a no-break space).
    """
    quads = list(ox.parse(nquads, format=ox.RdfFormat.N_QUADS))
    table = term_table(context_url)
    shadowed = _shadowed_prefixes(table, quads)
    if shadowed:
        table = table.without(shadowed)
    label: dict[str, str] = {}
    subjects: dict[tuple[bool, str], dict[str, Any]] = {}  # (is bnode, id) -> node
    props: dict[tuple[bool, str], dict[str, list[Any]]] = {}
    keys: dict[str, _Key] = {}
    seen: set[tuple[Any, Any, Any]] = set()

    def name(term: ox.NamedNode | ox.BlankNode) -> tuple[bool, str]:
        if isinstance(term, ox.BlankNode):
            if term.value not in label:
                label[term.value] = f"_:b{len(label)}"
            return True, label[term.value]
        return False, term.value

    for quad in quads:
        s, p, o = quad.subject, quad.predicate, quad.object
        if (s, p, o) in seen:
            continue
        seen.add((s, p, o))
        if isinstance(s, ox.Triple) or isinstance(o, ox.Triple):
            raise ValueError("RDF-star triple terms are not supported")
        subject = name(s)
        if isinstance(o, ox.BlankNode):
            name(o)
        node = subjects.get(subject)
        if node is None:
            node = subjects[subject] = {"@id": subject[1] if subject[0]
                                        else _node_id(table, subject[1])}
            props[subject] = {}
        if p.value == RDF_TYPE and isinstance(o, ox.NamedNode):
            node.setdefault("@type", []).append(_iri_string(table, o.value, vocab=True))
            continue
        key = keys.get(p.value)
        if key is None:
            key = keys[p.value] = _predicate_key(table, p.value)
        props[subject].setdefault(key.name, []).append(o)

    by_name = {key.name: key for key in keys.values()}
    for subject, node in subjects.items():
        types = node.get("@type")
        if types is not None and len(types) == 1:
            node["@type"] = types[0]
        for key_name, objects in props[subject].items():
            node[key_name] = _encode_objects(table, by_name[key_name], objects, label)
    nodes = [n for (is_bnode, _), n in subjects.items() if not is_bnode]
    nodes += sorted((n for (is_bnode, _), n in subjects.items() if is_bnode),
                    key=lambda n: int(n["@id"][3:]))
    envelope: dict[str, Any] = {"@context": table.context_value}
    if graph_id is not None:
        envelope["@id"] = graph_id
    envelope["@graph"] = nodes
    return envelope
