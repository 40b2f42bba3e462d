"""JSON-LD <-> RDF for CTDL documents: a fast path for the CTDL shapes, PyLD for the rest.

:func:`to_nquads` turns a parsed JSON-LD document (a Credential Engine graph envelope
``{"@context", "@id", "@graph": [...]}`` or a single node document) into N-Triples, or N-Quads
in one named graph. The fast path walks the document once with a precomputed term table; any
construct it does not implement (an inline ``@context`` anywhere, ``@reverse``, ``@included``,
``@nest``, scoped contexts, keys that are not terms or IRIs, relative IRIs, ...) sends the whole
document to PyLD with the local document loader, so the result always equals PyLD's. Fallbacks
are counted in :data:`FALLBACKS` (by reason) for benchmarks.

Named graphs: JSON-LD puts the nodes of an envelope that has an ``@id`` into the named graph
with that IRI. The registry wants the triples of the nodes and decides itself where they go,
so :func:`to_nquads` returns the union of the document's triples, whatever graph JSON-LD would
have placed them in: in the default graph, or all in the graph ``graph`` when it is given.

Relative IRIs: PyLD resolves them against its placeholder base ``http://example.org/base/``;
such documents take the PyLD path and get exactly that. Likewise IRIs or language tags that
PyLD keeps but N-Triples forbids (``{``, ``|``, ``en_US``) come out as PyLD writes them.
Normalize or refuse such documents before publishing.

:func:`ctdl.compact.from_rdf` goes the other way.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import count
from typing import Any

from pyld import jsonld

from ctdl.context import ContextError, TermTable, document_loader, term_table

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = RDF_NS + "type"
RDF_LANGSTRING = RDF_NS + "langString"
XSD_STRING = XSD_NS + "string"
XSD_BOOLEAN = XSD_NS + "boolean"
XSD_INTEGER = XSD_NS + "integer"
XSD_DOUBLE = XSD_NS + "double"
_XSD_NUMBERS = frozenset(XSD_NS + n for n in ("integer", "decimal", "float", "double"))

FALLBACKS: Counter[str] = Counter()
"""How many documents went to PyLD, by reason (for benchmarks; never reset by this module)."""

_T_TYPE = "<" + RDF_TYPE + ">"
_T_FIRST = "<" + RDF_NS + "first>"
_T_REST = "<" + RDF_NS + "rest>"
_T_NIL = "<" + RDF_NS + "nil>"

# Value kinds of a property (from its term definition), and of the keywords the node loop sees.
_PLAIN, _ID, _VOCAB, _TYPED, _LANG = 0, 1, 2, 3, 4
_LIST = 8  # flag: the term has an @list container
_KW_ID, _KW_TYPE = -1, -2

# An absolute IRI that PyLD keeps and that N-Triples can carry without escaping.
_IRI_OK = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\\s]*\Z').match
_LANG_OK = re.compile(r"[A-Za-z]+(?:-[A-Za-z0-9]+)*\Z").match
_INT_LEXICAL = re.compile(r"-?(?:0|[1-9][0-9]*)\Z").match
# N-Triples canonical escapes (RDF 1.2): ECHAR where one exists, else \u00XX.
_ESCAPES = {i: f"\\u{i:04X}" for i in [*range(0x20), 0x7F]}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                 0x22: '\\"', 0x5C: "\\\\"})
_CACHE_LIMIT = 100_000  # entries per expansion cache before it is cleared
_LANG_TAGS: dict[str, str] = {}  # language map key -> "@tag" (validated, lower-cased)
_ABSENT: Any = object()
_ENVELOPE_KEYS = frozenset({"@context", "@id", "@graph"})
_VALUE_KEYS = frozenset({"@value", "@type", "@language"})

_Prop = tuple[str, int, str | None, str]  # " <predicate> ", kind, datatype, "^^<datatype>"


class RdfError(ValueError):
    """The document is not valid JSON-LD (PyLD's error is the ``__cause__``)."""


class _Fallback(Exception):
    """The fast path does not handle this document; the message is the reason."""


def escape_literal(value: str) -> str:
    """The body of an N-Triples string literal (canonical escapes, without the quotes)."""
    # isprintable() is much cheaper than a regex search and false for every control character.
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


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
    if type(value) is float and math.isfinite(value):
        if not value.is_integer() or datatype == XSD_DOUBLE or abs(value) >= 1e21:
            return _literal(canonical_double(value), datatype or XSD_DOUBLE)
        return _literal(str(int(value)), datatype or XSD_INTEGER)
    if type(value) is int:
        if datatype == XSD_DOUBLE or abs(value) >= 1e21:
            return _literal(canonical_double(float(value)), datatype or XSD_DOUBLE)
        return _literal(str(value), datatype or XSD_INTEGER)
    raise _Fallback(f"value of type {type(value).__name__}")


def _lang_tag(lang: str) -> str:
    tag = _LANG_TAGS.get(lang)
    if tag is None:
        if not isinstance(lang, str) or not _LANG_OK(lang):  # also refuses "@none"
            raise _Fallback("unusual language tag")
        tag = _remember(_LANG_TAGS, lang, "@" + lang.lower())
    return tag


# --- the term table, prepared for the fast path ----------------------------------------------

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


@dataclass(slots=True, eq=False)
class _Compiled:
    """A term table prepared for the fast path, with per-process expansion caches."""

    table: TermTable
    props: dict[str, _Prop]  # key -> how its values become triples
    ids: dict[str, str]  # @id-style value -> "<iri>"
    vocab: dict[str, str]  # @type or datatype value -> bare IRI


@lru_cache(maxsize=16)
def _compile(table: TermTable) -> _Compiled:
    props: dict[str, _Prop] = {"@id": ("", _KW_ID, None, ""), "@type": ("", _KW_TYPE, None, "")}
    for name, term in table.terms.items():
        kind = _kind(term.type, term.container) if term.supported else None
        if kind is not None and term.iri is not None and _IRI_OK(term.iri):
            dt = kind[1]
            suffix = "" if dt is None or dt == XSD_STRING else "^^<" + dt + ">"
            props[name] = (" <" + term.iri + "> ", kind[0], dt, suffix)
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


def _remember(cache: dict[str, str], key: str, value: str) -> str:
    if len(cache) >= _CACHE_LIMIT:  # bounded: most resource IRIs are seen once
        cache.clear()
    cache[key] = value
    return value


def _expand_id(comp: _Compiled, value: str) -> str:
    """An @id-style value (not a blank node) as an N-Triples IRI term."""
    iri = comp.table.expand_iri(value, vocab=False)
    if iri is None or not _IRI_OK(iri):
        raise _Fallback("relative or invalid IRI")
    return _remember(comp.ids, value, "<" + iri + ">")


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
        iri = _remember(comp.vocab, value, expanded)
    return iri


def _other_key(comp: _Compiled, key: str, top: bool) -> _Prop | None:
    """A key that is not a term: skip it (None), take it as an IRI, or fall back."""
    if key.startswith("@"):
        if key == "@context" and top:
            return None
        raise _Fallback(f"keyword {key}")
    if key in comp.table.terms or key.startswith("_:"):
        raise _Fallback(f"unsupported key {key!r}")
    iri = comp.table.expand_iri(key, vocab=True)
    if iri is None or not _IRI_OK(iri):
        raise _Fallback(f"key {key!r} is not a term or an IRI")
    entry = (" <" + iri + "> ", _PLAIN, None, "")
    if len(comp.props) < _CACHE_LIMIT:
        comp.props[key] = entry
    return entry


# --- JSON-LD -> N-Triples, fast path ----------------------------------------------------------

def _fast(doc: Any, tail: str) -> list[str]:
    """The document's triples as N-Triples lines (each ending with ``tail``); _Fallback if not
    a shape this path implements."""
    if type(doc) is not dict:
        raise _Fallback("document is not an object")
    comp = _compiled_for(doc.get("@context"))
    props_get, ids_get, vocab_get = comp.props.get, comp.ids.get, comp.vocab.get
    out: list[str] = []
    append = out.append
    labels: dict[str, str] = {}  # the document's own blank node ids -> fresh labels
    fresh = count().__next__
    esc = escape_literal

    def ref(value: str) -> str:
        """Slow half of @id-style expansion (the fast half is ``ids_get``)."""
        if value.startswith("_:"):
            label = labels.get(value)
            if label is None:
                label = labels[value] = f"_:b{fresh()}"
            return label
        return _expand_id(comp, value)

    def vocab_ref(value: Any) -> str:
        if type(value) is not str or value.startswith("@"):
            raise _Fallback("unusual @type or @vocab value")
        if value.startswith("_:"):
            return ref(value)
        return "<" + (vocab_get(value) or _expand_vocab(comp, value)) + ">"

    def value_object(v: dict[str, Any]) -> str | None:
        if not _VALUE_KEYS.issuperset(v):
            raise _Fallback("value object with other keys than @value, @type, @language")
        val = v["@value"]
        typ = v.get("@type", _ABSENT)
        lang = v.get("@language", _ABSENT)
        if val is None:
            return None
        datatype = None
        if typ is not _ABSENT:
            if lang is not _ABSENT or type(typ) is not str or typ.startswith(("@", "_:")):
                raise _Fallback("unusual value object @type")
            datatype = vocab_get(typ) or _expand_vocab(comp, typ)
        if type(val) is str:
            if lang is not _ABSENT:
                return '"' + esc(val) + '"' + _lang_tag(lang)
            if datatype == XSD_DOUBLE:  # PyLD canonicalizes such strings; leave it to PyLD
                raise _Fallback("string typed xsd:double")
            return _literal(val, datatype)
        if lang is not _ABSENT:
            raise _Fallback("non-string language-tagged value")
        return _native_literal(val, datatype)

    def rdf_list(items: Any, kind: int, dt: str | None, suffix: str) -> str:
        terms = []
        for item in items if type(items) is list else [items]:
            if type(item) is list or (type(item) is dict and "@list" in item):
                raise _Fallback("list of lists")
            t = obj(item, kind, dt, suffix)
            if t is not None:
                terms.append(t)
        if not terms:
            return _T_NIL
        nodes = [f"_:b{fresh()}" for _ in terms]
        for node_term, t, rest in zip(nodes, terms, [*nodes[1:], _T_NIL], strict=True):
            append(f"{node_term} {_T_FIRST} {t}{tail}")
            append(f"{node_term} {_T_REST} {rest}{tail}")
        return nodes[0]

    def obj(v: Any, kind: int, dt: str | None, suffix: str) -> str | None:
        """The object term of one (non-array) value; None when JSON-LD drops it."""
        t = type(v)
        if t is dict:
            if "@value" in v:
                return value_object(v)
            if "@list" in v:
                if len(v) != 1:
                    raise _Fallback("list object with other keys")
                return rdf_list(v["@list"], kind, dt, suffix)
            if "@set" in v:
                raise _Fallback("@set object")
            return node(v, False)
        if t is str:
            base = kind & 7
            if base == _ID:
                return ids_get(v) or ref(v)
            if base == _PLAIN or base == _LANG:
                return '"' + esc(v) + '"'
            if base == _TYPED:
                if dt == XSD_DOUBLE:
                    raise _Fallback("string coerced to xsd:double")
                return '"' + esc(v) + '"' + suffix
            return vocab_ref(v)
        if v is None:
            return None
        if t is list:
            raise _Fallback("nested array")
        return _native_literal(v, dt if kind & 7 == _TYPED else None)

    def language_map(head: str, m: dict[str, Any]) -> None:
        for lang, vals in m.items():
            tag = _LANG_TAGS.get(lang) or _lang_tag(lang)
            if type(vals) is str:
                append(f'{head}"{esc(vals)}"{tag}{tail}')
                continue
            for val in vals if type(vals) is list else (vals,):
                if type(val) is str:
                    append(f'{head}"{esc(val)}"{tag}{tail}')
                elif val is not None:
                    raise _Fallback("non-string in a language map")

    def node(o: dict[str, Any], top: bool) -> str:
        i = o.get("@id")
        if i is None:
            if "@id" in o:
                raise _Fallback("@id null")
            subject = f"_:b{fresh()}"
        elif type(i) is str:
            subject = ids_get(i) or ref(i)
        else:
            raise _Fallback("non-string @id")
        for key, v in o.items():
            p = props_get(key) or _other_key(comp, key, top)
            if p is None:
                continue
            pred, kind, dt, suffix = p
            if kind < 0:
                if kind == _KW_TYPE:
                    for t in v if type(v) is list else (v,):
                        append(f"{subject} {_T_TYPE} {vocab_ref(t)}{tail}")
                continue
            if v is None:
                continue
            head = subject + pred
            tv = type(v)
            if kind & _LIST and not (tv is dict and "@list" in v):
                append(head + rdf_list(v, kind, dt, suffix) + tail)
            elif tv is str:
                if kind == _PLAIN or kind == _LANG:
                    append(f'{head}"{esc(v)}"{tail}')
                else:
                    append(head + (obj(v, kind, dt, suffix) or "") + tail)
            elif tv is list:
                for item in v:
                    if type(item) is str and kind == _ID:
                        append(head + (ids_get(item) or ref(item)) + tail)
                    else:
                        t = obj(item, kind, dt, suffix)
                        if t is not None:
                            append(head + t + tail)
            elif tv is dict and kind == _LANG:
                language_map(head, v)
            else:
                t = obj(v, kind, dt, suffix)
                if t is not None:
                    append(head + t + tail)
        return subject

    if "@graph" in doc:
        # Only a plain envelope is flattened here: with more keys it is itself a node.
        if not _ENVELOPE_KEYS.issuperset(doc) or doc["@graph"] is None:
            raise _Fallback("envelope with other keys than @context, @id, @graph")
        gid = doc.get("@id", _ABSENT)
        # JSON-LD drops a graph whose name is relative: PyLD decides those.
        if gid is not _ABSENT and (type(gid) is not str or gid.startswith("_:")):
            raise _Fallback("unusual graph name")
        if gid is not _ABSENT:
            _expand_id(comp, gid)
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


# --- JSON-LD -> N-Triples, PyLD path and public functions ------------------------------------

def _unwrap(error: Exception) -> Exception:
    """The ContextError behind a PyLD error, if any, else an RdfError for it."""
    seen: BaseException | None = error
    for _ in range(32):
        if seen is None:
            break
        if isinstance(seen, ContextError):
            return seen
        seen = seen.__cause__ or seen.__context__
    wrapped = RdfError(str(error))
    wrapped.__cause__ = error
    return wrapped


def _pyld_term(term: dict[str, Any]) -> str:
    if term["type"] == "IRI":
        return "<" + str(term["value"]) + ">"
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


def to_nquads(doc: dict[str, Any], graph: str | None = None) -> str:
    """The document's RDF as N-Triples, or as N-Quads in the named graph ``graph``.

    The triples are isomorphic to PyLD's ``to_rdf`` of the document with all graphs merged
    (see the module docstring). Blank node labels are fresh (``_:b0``...) and scoped to this
    one document. Duplicate triples are written once; order is not significant.
    Raises ContextError for a context other than the vendored CTDL ones, RdfError for a
    document that is not valid JSON-LD, ValueError for a ``graph`` that is not an IRI.
    """
    if graph is None:
        tail = " .\n"
    elif _IRI_OK(graph):
        tail = " <" + graph + "> .\n"
    else:
        raise ValueError(f"graph name must be an absolute IRI, not {graph!r}")
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
