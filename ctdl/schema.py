"""The CTDL and CTDL-ASN vocabulary, read once from the vendored encodings and contexts.

Everything a validator or an indexer asks per term is precomputed into plain dicts and frozensets
when the vocabulary is first loaded, so each question costs one dictionary lookup.

Terms are compact names: "ceterms:Credential", "ceasn:Competency", "qdata:DataSetProfile",
"schema:value". Sources, merged:
- `ctdl-schema.json`, `ctdlasn-schema.json`: classes, properties (domainIncludes, rangeIncludes,
  owl:inverseOf), concept schemes and concepts;
- `ce-subclasses-map.json`: the class tree Credential Engine's registry uses, which names a few
  classes the encodings leave out (qdata:DataProfile, qdata:DataSetTimeFrame, ...);
- `ctdl-context.json`, `ctdlasn-context.json`: type coercion and language containers, and the
  properties defined only there (most of qdata:, schema:about, ...).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
SCHEMA_FILES = ("ctdl-schema.json", "ctdlasn-schema.json")
CONTEXT_FILES = ("ctdl-context.json", "ctdlasn-context.json")
SUBCLASS_MAP_FILE = "ce-subclasses-map.json"

# Range terms whose values are RDF literals. xsd:anyURI is deliberately absent: CTDL's context
# coerces those properties to @id, so their values are IRIs.
_LITERAL_RANGES = frozenset({
    "rdf:langString", "rdfs:Literal", "schema:Date", "schema:DateTime", "schema:Duration",
    "schema:Text", "schema:Number", "schema:Boolean",
})
# Range terms that accept any IRI (no class to check a referenced node against).
_ANY_IRI_RANGES = frozenset({"xsd:anyURI", "rdfs:Resource", "schema:URL", "schema:WebPage"})
# Namespaces whose classes the encodings reference (in ranges and domains) without defining them:
# the QData classes and a few ceterms ones (e.g. ceterms:FinancialAlignmentObject) are real terms.
# Other undefined references are typos in the encodings (ceasn:CrtiterionLevel) and stay unknown.
_REFERENCED_CLASS_PREFIXES = ("ceterms:", "qdata:")

_ALIGNMENT_OBJECT = "ceterms:CredentialAlignmentObject"

# Inverse pairs CTDL uses without declaring owl:inverseOf in the encoding.
_EXTRA_INVERSES = (
    ("ceterms:isPreparationFor", "ceterms:preparationFrom"),
    ("ceasn:hasTopChild", "ceasn:isTopChildOf"),
)


@dataclass(frozen=True, slots=True)
class Property:
    """What the vocabulary says about one property, precomputed for the validator's hot path."""
    name: str
    domain: frozenset[str]  # schema:domainIncludes; empty when the vocabulary gives none
    range: frozenset[str]  # schema:rangeIncludes; empty when the vocabulary gives none
    range_classes: frozenset[str] | None  # classes a referenced node must match; None: no check
    coercion: str | None  # the context's "@type" ("@id", "xsd:date", ...) or "@language"
    expects_iri: bool | None  # True: IRIs/nodes; False: literals; None: both seen or unknown
    inverse: str | None


@dataclass(frozen=True, slots=True)
class Vocabulary:
    classes: frozenset[str]
    properties: Mapping[str, Property]
    concept_schemes: frozenset[str]
    concepts: frozenset[str]
    superclasses: Mapping[str, frozenset[str]]  # strict ancestors, transitive
    lineage: Mapping[str, frozenset[str]]  # the class and its ancestors
    allowed: Mapping[str, frozenset[str]]  # per class: properties it may carry (see below)
    prefixes: Mapping[str, str]  # context prefix -> namespace IRI


@cache
def vocabulary() -> Vocabulary:
    """The vocabulary, loaded from the vendored files on first use and cached for the process."""
    nodes = [n for f in SCHEMA_FILES for n in _read(f)["@graph"]]
    context: dict[str, Any] = {}
    for f in CONTEXT_FILES:
        context.update(_read(f)["@context"])
    subclass_map = _read(SUBCLASS_MAP_FILE)

    by_type: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        by_type.setdefault(n["@type"], []).append(n)
    prop_nodes = _merge_by_id(by_type.get("rdf:Property", []))
    class_nodes = _merge_by_id(by_type.get("rdfs:Class", []))

    parents: dict[str, set[str]] = {c: set(n.get("rdfs:subClassOf", [])) for c, n in
                                    class_nodes.items()}
    _add_subclass_map(subclass_map, None, parents)
    classes = set(parents) | _referenced_classes(prop_nodes.values(), set(prop_nodes))
    superclasses = _closure(parents, classes)
    lineage = {c: frozenset({c}) | s for c, s in superclasses.items()}

    prefixes = {k: v for k, v in context.items() if isinstance(v, str)}
    properties = _properties(prop_nodes, context, frozenset(classes))
    return Vocabulary(
        classes=frozenset(classes),
        properties=properties,
        concept_schemes=frozenset(n["@id"] for n in by_type.get("skos:ConceptScheme", [])),
        concepts=frozenset(n["@id"] for n in by_type.get("skos:Concept", [])),
        superclasses=superclasses,
        lineage=lineage,
        allowed=_allowed_properties(properties, lineage),
        prefixes=prefixes,
    )


def superclasses(cls: str) -> frozenset[str]:
    """All ancestors of a class (transitively, without the class itself); empty if unknown."""
    return vocabulary().superclasses.get(cls, frozenset())


def lineage(cls: str) -> frozenset[str]:
    """The class and all its ancestors; empty if the class is unknown."""
    return vocabulary().lineage.get(cls, frozenset())


def is_class(term: str) -> bool:
    return term in vocabulary().classes


def is_property(term: str) -> bool:
    return term in vocabulary().properties


def prop(term: str) -> Property | None:
    return vocabulary().properties.get(term)


def domain(term: str) -> frozenset[str]:
    """schema:domainIncludes of a property (empty when unknown or unconstrained)."""
    p = prop(term)
    return p.domain if p else frozenset()


def range_(term: str) -> frozenset[str]:
    """schema:rangeIncludes of a property (empty when unknown or unconstrained)."""
    p = prop(term)
    return p.range if p else frozenset()


def inverse(term: str) -> str | None:
    p = prop(term)
    return p.inverse if p else None


def expects_iri(term: str) -> bool | None:
    """True if the property takes IRIs or nodes, False if literals, None if unknown or mixed."""
    p = prop(term)
    return p.expects_iri if p else None


def coercion(term: str) -> str | None:
    """The context's type coercion of a property: "@id", "@language" (a language container),
    a datatype such as "xsd:date", or None."""
    p = prop(term)
    return p.coercion if p else None


def is_language_map(term: str) -> bool:
    """True if the context declares the property a language container (values are language maps)."""
    p = prop(term)
    return p is not None and p.coercion == "@language"


def is_literal_range(term: str) -> bool:
    """True for range terms whose values are literals (rdf:langString, xsd:date, schema:Duration...)."""
    return term in _LITERAL_RANGES or (term.startswith("xsd:") and term != "xsd:anyURI")


def _read(name: str) -> Any:
    return orjson.loads((VOCAB_DIR / name).read_bytes())


def _merge_by_id(nodes: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One entry per @id; a term in both encodings keeps the union of its list values."""
    out: dict[str, dict[str, Any]] = {}
    for n in nodes:
        seen = out.get(n["@id"])
        if seen is None:
            out[n["@id"]] = dict(n)
            continue
        for key, value in n.items():
            if isinstance(value, list) and isinstance(seen.get(key), list):
                seen[key] = list(dict.fromkeys([*seen[key], *value]))
            else:
                seen.setdefault(key, value)
    return out


def _add_subclass_map(tree: dict[str, Any], parent: str | None,
                      parents: dict[str, set[str]]) -> None:
    for cls, children in tree.items():
        ancestors = parents.setdefault(cls, set())
        if parent is not None:
            ancestors.add(parent)
        _add_subclass_map(children, cls, parents)


def _referenced_classes(props: Iterable[dict[str, Any]], prop_ids: set[str]) -> set[str]:
    terms: set[str] = set()
    for p in props:
        terms.update(p.get("schema:domainIncludes", ()), p.get("schema:rangeIncludes", ()))
    return {t for t in terms - prop_ids
            if t.startswith(_REFERENCED_CLASS_PREFIXES) and not is_literal_range(t)}


def _closure(parents: dict[str, set[str]], classes: set[str]) -> dict[str, frozenset[str]]:
    """Transitive superclasses of every class; cycles are tolerated (a class is never its own)."""
    memo: dict[str, frozenset[str]] = {}

    def visit(cls: str, path: frozenset[str]) -> frozenset[str]:
        if cls in memo:
            return memo[cls]
        acc: set[str] = set()
        for parent in parents.get(cls, ()):
            if parent in path:
                continue
            acc.add(parent)
            acc |= visit(parent, path | {parent})
        acc.discard(cls)
        memo[cls] = frozenset(acc)
        return memo[cls]

    return {c: visit(c, frozenset({c})) for c in classes}


def _coercion(entry: Any) -> str | None:
    if isinstance(entry, dict):
        if entry.get("@container") == "@language":
            return "@language"
        t = entry.get("@type")
        return t if isinstance(t, str) else None
    return None


def _expects_iri(coercion: str | None, rng: frozenset[str]) -> bool | None:
    literal = any(is_literal_range(r) for r in rng)
    nonliteral = any(not is_literal_range(r) for r in rng)
    if coercion == "@id":
        # A few properties are @id-coerced while the encoding gives a literal range
        # (ceterms:medianEarnings: xsd:integer; ceterms:approximateDateEffective: schema:Date).
        # Published data follows the encoding, so those stay undecided rather than wrong.
        return None if literal else True
    if coercion is not None:
        return False
    if rng:
        return None if literal == nonliteral else nonliteral
    return None


def _range_classes(rng: frozenset[str], classes: frozenset[str]) -> frozenset[str] | None:
    """The classes a referenced node must belong to, or None when the range admits anything."""
    if not rng or any(r in _ANY_IRI_RANGES or is_literal_range(r) for r in rng):
        return None
    out = {r for r in rng if r in classes}
    if "skos:Concept" in out:
        # Credential Engine publishes concept-valued properties as alignment objects
        # ({"@type": "ceterms:CredentialAlignmentObject", "ceterms:targetNode": concept}).
        out.add(_ALIGNMENT_OBJECT)
    return frozenset(out) or None


def _properties(prop_nodes: dict[str, dict[str, Any]], context: dict[str, Any],
                classes: frozenset[str]) -> dict[str, Property]:
    inverses: dict[str, str] = {}
    for pid, n in prop_nodes.items():
        for other in n.get("owl:inverseOf", [])[:1]:
            inverses[pid] = other
            inverses.setdefault(other, pid)
    for a, b in _EXTRA_INVERSES:
        inverses.setdefault(a, b)
        inverses.setdefault(b, a)

    # Terms the context defines that are neither prefixes nor classes are properties too.
    names = set(prop_nodes) | {k for k, v in context.items()
                               if isinstance(v, dict) and k not in classes}
    out: dict[str, Property] = {}
    for name in names:
        n = prop_nodes.get(name, {})
        rng = frozenset(n.get("schema:rangeIncludes", []))
        coercion = _coercion(context.get(name))
        out[name] = Property(
            name=name,
            domain=frozenset(n.get("schema:domainIncludes", [])),
            range=rng,
            range_classes=_range_classes(rng, classes),
            coercion=coercion,
            expects_iri=_expects_iri(coercion, rng),
            inverse=inverses.get(name),
        )
    return out


def _allowed_properties(properties: Mapping[str, Property],
                        lineage: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """For each class, the properties it may carry without a domain mismatch: those whose
    domainIncludes names the class or an ancestor, and those with no domain at all."""
    descendants: dict[str, set[str]] = {}
    for cls, ancestors in lineage.items():
        for a in ancestors:
            descendants.setdefault(a, set()).add(cls)
    free = {p.name for p in properties.values() if not p.domain}
    allowed: dict[str, set[str]] = {c: set(free) for c in lineage}
    for p in properties.values():
        for d in p.domain:
            for cls in descendants.get(d, ()):
                allowed[cls].add(p.name)
    return {c: frozenset(s) for c, s in allowed.items()}
