"""JSON-LD contexts, resolved to the vendored CTDL copies only.

The registry never fetches a context from the network. The CTDL and CTDL-ASN context URLs
(``http`` or ``https``, with or without a trailing slash) map to the files in ``ctdl/vocab``;
every other remote URL is refused with :class:`ContextError`.

:func:`term_table` turns one context (or a list of them, merged in order) into a
:class:`TermTable`: for every term and compact-IRI prefix its full IRI, type coercion and
container. The table is built once per context by PyLD's own context processing (so it agrees
with PyLD by construction) and cached for the life of the process.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import orjson
from pyld import jsonld

CTDL = "https://credreg.net/ctdl/schema/context/json"
CTDLASN = "https://credreg.net/ctdlasn/schema/context/json"

_VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
_VENDORED: dict[str, str] = {CTDL: "ctdl-context.json", CTDLASN: "ctdlasn-context.json"}

# PyLD's test for an absolute IRI (or blank node id): anything else is resolved against a base.
_ABSOLUTE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*|_):[^\s]*$")

# Per-term features the fast RDF path does not implement; a term using one is "unsupported"
# and any document using that term goes to PyLD instead.
_UNSUPPORTED_TERM_KEYS = frozenset({"@context", "@nest", "@index", "@language", "@direction"})
_SUPPORTED_CONTAINERS = frozenset({"@language", "@set", "@list"})
# Context-wide settings that change how every key or value expands.
_UNSUPPORTED_CONTEXT_KEYS = ("@vocab", "@base", "@language", "@direction")


class ContextError(Exception):
    """A context the registry will not load (anything but the vendored CTDL contexts)."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message} ({url!r})")
        self.url = url
        self.message = message


def canonical_url(url: str) -> str | None:
    """The vendored context a URL names (http/https, trailing slash ignored), or None."""
    u = url.strip()
    if u.startswith("http://"):
        u = "https://" + u[7:]
    u = u.rstrip("/")
    return u if u in _VENDORED else None


def _refuse(url: str) -> ContextError:
    return ContextError(
        url,
        f"remote contexts are not fetched; use the CTDL context {CTDL} "
        f"or the CTDL-ASN context {CTDLASN}",
    )


@cache
def _vendored_bytes(canonical: str) -> bytes:
    return (_VOCAB_DIR / _VENDORED[canonical]).read_bytes()


def load_context(url: str) -> dict[str, Any]:
    """A fresh copy of the vendored context document for ``url``; ContextError for any other."""
    canonical = canonical_url(url)
    if canonical is None:
        raise _refuse(url)
    doc: dict[str, Any] = orjson.loads(_vendored_bytes(canonical))
    return doc


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A PyLD document loader that serves the vendored contexts and never touches the network.

    Returns PyLD's RemoteDocument dict. Raises ContextError for every other URL (PyLD wraps it
    in a JsonLdError whose ``__cause__`` chain holds the ContextError).
    """
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": load_context(url),
    }


@dataclass(frozen=True, slots=True)
class Term:
    """One term of an active context.

    ``type`` is ``None`` (no coercion), ``"@id"``, ``"@vocab"``, another keyword such as
    ``"@json"``, or a datatype IRI. ``container`` lists the container keywords.
    ``supported`` is False when the term uses a feature the fast RDF path leaves to PyLD.
    """

    name: str
    iri: str | None
    type: str | None = None
    container: tuple[str, ...] = ()
    prefix: bool = False
    supported: bool = True


@dataclass(frozen=True, eq=False)
class TermTable:
    """The terms of one (possibly merged) context, as plain dicts for fast lookups.

    ``context`` is the list of canonical context URLs it was built from; ``fast`` is False when
    the context sets something (``@vocab``, ``@base``, a default language) that the fast path
    does not implement. ``prefixes`` maps each prefix usable in compact IRIs to its IRI;
    ``by_iri`` maps a full IRI to the preferred term for it (compact ``prefix:name`` form first).
    """

    context: tuple[str, ...]
    terms: dict[str, Term]
    prefixes: dict[str, str]
    by_iri: dict[str, str]
    fast: bool = True
    nulled: tuple[str, ...] = ()
    _prefix_order: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def context_value(self) -> str | list[str | dict[str, None]]:
        """The ``@context`` value that gives a document this table, as a document carries it."""
        if self.nulled:
            return [*self.context, dict.fromkeys(self.nulled)]
        return self.context[0] if len(self.context) == 1 else list(self.context)

    def without(self, names: Sequence[str]) -> TermTable:
        """This table with some terms set to null (as an inline ``{"term": null}`` would do).

        Needed to write an IRI whose scheme is one of this context's prefixes, such as
        ``credentialStat:Active`` meant literally: with the prefix nulled it stays absolute.
        """
        drop = set(names)
        terms = dict(self.terms)
        for name in drop:
            terms[name] = Term(name=name, iri=None, supported=False)
        prefixes = {k: v for k, v in self.prefixes.items() if k not in drop}
        by_iri = {k: v for k, v in self.by_iri.items() if v not in drop}
        order = tuple(kv for kv in self._prefix_order if kv[0] not in drop)
        return TermTable(context=self.context, terms=terms, prefixes=prefixes, by_iri=by_iri,
                         fast=self.fast, nulled=tuple(sorted(drop | set(self.nulled))),
                         _prefix_order=order)

    def expand_iri(self, value: str, vocab: bool = False) -> str | None:
        """JSON-LD IRI expansion without a base: the absolute IRI or ``_:`` id, or None.

        ``vocab=True`` is the expansion used for keys, ``@type`` and datatypes (terms count);
        ``vocab=False`` the one used for ``@id`` values. None means JSON-LD would have to
        resolve ``value`` against a base (it is relative), the term maps to null, or ``value``
        is a keyword.
        """
        if value.startswith("@"):
            return None
        if vocab and value in self.terms:
            return self.terms[value].iri
        colon = value.find(":")
        if colon > 0:
            prefix, suffix = value[:colon], value[colon + 1:]
            if prefix == "_" or suffix.startswith("//"):
                return value
            base = self.prefixes.get(prefix)
            if base is not None:
                return base + suffix
            if _ABSOLUTE_RE.match(value):
                return value
        return None

    def compact_iri(self, iri: str, vocab: bool = False) -> str | None:
        """A compact form of ``iri`` that :meth:`expand_iri` turns back into it, or None.

        Tries a term (vocab only), then ``prefix:suffix`` with the longest matching prefix,
        then ``iri`` itself; None when no form round-trips (an IRI JSON-LD takes for relative,
        or one whose scheme is a prefix of this context, such as ``ceterms:x`` meant literally).
        """
        if not _ABSOLUTE_RE.match(iri):  # JSON-LD would drop it as relative
            return None
        if vocab:
            term = self.by_iri.get(iri)
            if term is not None:
                return term
        for prefix, base in self._prefix_order:
            if iri.startswith(base) and len(iri) > len(base):
                candidate = prefix + ":" + iri[len(base):]
                if self.expand_iri(candidate, vocab) == iri:
                    return candidate
        if self.expand_iri(iri, vocab) == iri:
            return iri
        return None


def _context_key(context: str | Sequence[str]) -> tuple[str, ...]:
    urls = [context] if isinstance(context, str) else list(context)
    key: list[str] = []
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"term tables are built from context URLs, not {type(url).__name__}")
        canonical = canonical_url(url)
        if canonical is None:
            raise _refuse(url)
        key.append(canonical)
    if not key:
        raise ValueError("no context given")
    return tuple(key)


def term_table(context: str | Sequence[str]) -> TermTable:
    """The cached TermTable of a context URL or a list of context URLs (merged in order).

    Raises ContextError for any URL other than the vendored CTDL / CTDL-ASN contexts.
    """
    return _build_table(_context_key(context))


def _term_from_mapping(name: str, mapping: dict[str, Any] | None) -> Term:
    if mapping is None:  # "term": null, i.e. the key is to be ignored
        return Term(name=name, iri=None, supported=False)
    iri = mapping.get("@id")
    container = tuple(mapping.get("@container") or ())
    supported = (
        isinstance(iri, str)
        and not iri.startswith("@")  # a keyword alias such as "id": "@id"
        and not mapping.get("reverse")
        and not any(k in mapping for k in _UNSUPPORTED_TERM_KEYS)
        and set(container) <= _SUPPORTED_CONTAINERS
        and not ("@language" in container and "@list" in container)
    )
    return Term(
        name=name,
        iri=iri if isinstance(iri, str) else None,
        type=mapping.get("@type"),
        container=container,
        prefix=bool(mapping.get("_prefix")),
        supported=supported,
    )


def _preferred(current: str | None, candidate: str) -> bool:
    """Which term to use for an IRI: the compact-IRI form (CTDL style), then shortest, then A-Z."""
    if current is None:
        return True

    def rank(name: str) -> tuple[int, int, str]:
        return (0 if ":" in name else 1, len(name), name)

    return rank(candidate) < rank(current)


@lru_cache(maxsize=16)
def _build_table(key: tuple[str, ...]) -> TermTable:
    # PyLD processes the context once here, so the table agrees with the oracle by construction
    # and the registry does not carry a second JSON-LD context processor.
    processor = jsonld.JsonLdProcessor()
    options: dict[str, Any] = {"documentLoader": document_loader, "processingMode": "json-ld-1.1"}
    initial = processor.process_context(None, None, options)
    active = processor.process_context(initial, list(key), options)
    terms: dict[str, Term] = {}
    prefixes: dict[str, str] = {}
    by_iri: dict[str, str] = {}
    for name, mapping in active["mappings"].items():
        term = _term_from_mapping(name, mapping)
        terms[name] = term
        if term.prefix and term.iri is not None:
            prefixes[name] = term.iri
        if term.supported and term.iri is not None and _preferred(by_iri.get(term.iri), name):
            by_iri[term.iri] = name
    fast = not any(k in active for k in _UNSUPPORTED_CONTEXT_KEYS)
    # Longest prefix IRI first, so compaction picks the most specific prefix.
    order = tuple(sorted(prefixes.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    return TermTable(context=key, terms=terms, prefixes=prefixes, by_iri=by_iri, fast=fast,
                     _prefix_order=order)


# --- inline definitions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InlineIssue:
    """Something wrong with one definition of an inline context. `code` is a problem code."""

    term: str
    code: str
    message: str


@cache
def _raw_definitions(url: str) -> dict[str, Any]:
    return dict(load_context(url)["@context"])


@cache
def _vendored_definitions() -> dict[str, tuple[Any, ...]]:
    """Every term of the vendored contexts with the definitions they give it (raw JSON)."""
    out: dict[str, tuple[Any, ...]] = {}
    for url in (CTDL, CTDLASN):
        for term, definition in _raw_definitions(url).items():
            if definition not in out.get(term, ()):
                out[term] = (*out.get(term, ()), definition)
    return out


@cache
def core_prefixes() -> frozenset[str]:
    """Prefixes of the CTDL and CTDL-ASN terms the validator checks as properties and classes:
    a document may not move them elsewhere, or what is checked would not be what is stored."""
    return frozenset(term.split(":", 1)[0] for term in _vendored_definitions() if ":" in term)


def _iri_of(definition: Any) -> Any:
    return definition.get("@id") if isinstance(definition, dict) else definition


def check_inline(definitions: dict[str, Any]) -> tuple[dict[str, Any], list[InlineIssue]]:
    """An inline context's definitions checked against CTDL's: the definitions to use (the
    http:// form of a CTDL namespace read as its https:// form) and what is wrong with them.

    The registry validates documents by their CTDL terms, so an inline context may add terms
    and prefixes of its own, repeat CTDL's definitions, or null a vocabulary prefix (to write
    an IRI in that scheme literally), but not give a CTDL term or prefix another meaning: the
    graph stored would then not be the graph that was checked."""
    vendored = _vendored_definitions()
    out: dict[str, Any] = {}
    issues: list[InlineIssue] = []
    for term, definition in definitions.items():
        out[term] = definition
        if term.startswith("@"):
            continue
        known = vendored.get(term)
        iri = _iri_of(definition)
        if isinstance(definition, dict) and "@id" not in definition:
            iri = term  # a compact IRI or absolute IRI as term names itself
        if known is None:
            # a term may stand for another term (JSON-LD expands it like a key); anything else
            # without a scheme would be resolved against a base the registry does not set
            if isinstance(iri, str) and not iri.startswith("@") and ":" not in iri \
                    and iri not in vendored and iri not in definitions:
                issues.append(InlineIssue(term, "malformed-context",
                                          f"The @context defines {term!r} as {iri!r}, which is not "
                                          "an absolute IRI."))
            continue
        if definition in known or (isinstance(definition, str) and definition in map(_iri_of, known)):
            continue
        wanted = term_table((CTDL, CTDLASN)).expand_iri(term, vocab=True)
        if isinstance(iri, str) and ":" in iri and not iri.startswith(("http://", "https://")):
            iri = term_table((CTDL, CTDLASN)).expand_iri(iri, vocab=True) or iri
        if definition is None and term not in core_prefixes() and ":" not in term:
            continue
        if isinstance(definition, str) and definition.startswith("http://") and \
                "https://" + definition[7:] == wanted:
            out[term] = wanted
            issues.append(InlineIssue(term, "context-normalized",
                                      f"The @context binds {term!r} to {definition!r}, read as "
                                      f"CTDL's {wanted!r}."))
            continue
        meaning = (f"changes how CTDL reads {term!r} (its value type or container)" if iri == wanted
                   else f"makes {term!r} mean {iri!r}; in CTDL it means {wanted!r}")
        issues.append(InlineIssue(
            term, "context-redefines-term",
            f"The @context {meaning}. The registry stores CTDL graphs: remove this definition and "
            "use the CTDL context."))
    return out, issues


def copies_ctdl(definitions: dict[str, Any]) -> bool:
    """Whether an inline context carries a whole vendored context, definition for definition.
    Anything less is not CTDL: binding the 'ceterms' prefix alone drops the context's value
    types (IRI or literal, language maps), so a graph would not read as the one validated."""
    return any(all(definitions.get(term, definitions) == d for term, d in _raw_definitions(url).items())
               for url in (CTDL, CTDLASN))
