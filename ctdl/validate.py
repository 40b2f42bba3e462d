"""Validation of a normalized CTDL graph document against the CTDL and CTDL-ASN vocabulary.

`validate()` returns the problems it finds; the caller merges them with the parser's own
(`Document.problems`). Errors reject the document, warnings are reported with it, and infos only
tell the publisher something useful. Every code is documented in docs/problems.md.

The walk is a single pass over the graph (nested blank nodes included) driven by per-term tables
precomputed in `ctdl.schema`; cross-node checks (blank-node resolution, ranges of references,
inverse properties) run once at the end over what the pass collected.
"""
from __future__ import annotations

import string
from functools import cache
from typing import TYPE_CHECKING, Any

from ctdl import ctid as ctids
from ctdl import schema
from ctdl.problems import Problem, Severity

if TYPE_CHECKING:
    from ctdl.document import Document

CTID_PROP = "ceterms:ctid"
# JSON-LD keywords a node object may carry; @value/@list/@set/@language belong to values.
_NODE_KEYWORDS = frozenset({"@id", "@type", "@context", "@reverse", "@index", "@included",
                            "@nest", "@graph"})
_WEB = ("https://", "http://")
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+-.")
# A condition profile stands between two resources linked by isPreparationFor/preparationFrom;
# these are the properties through which it names the resource at the other end.
_TARGET_PROPS = ("ceterms:targetCredential", "ceterms:targetLearningOpportunity",
                 "ceterms:targetAssessment", "ceterms:targetCompetency")
_FRAMEWORK = "ceasn:CompetencyFramework"
_COMPETENCY = "ceasn:Competency"
_COMPETENCY_PART_OF = "ceasn:isPartOf"

_Group = tuple[str, ...]  # alternatives: any one of them satisfies the rule
# What the main node should carry, first matching class wins (order: specific before general).
# After Credential Engine's minimum data policy (https://credreg.net/registry/policy#mindata).
# The name and the subject webpage identify a resource for a reader: their absence is a warning.
_RECOMMENDED: tuple[tuple[str, tuple[_Group, ...]], ...] = (
    ("ceterms:Credential", (("ceterms:name",), ("ceterms:subjectWebpage",))),
    ("ceterms:Organization", (("ceterms:name",), ("ceterms:subjectWebpage",))),
    ("ceterms:LearningOpportunityProfile", (("ceterms:name",), ("ceterms:subjectWebpage",))),
    ("ceterms:AssessmentProfile", (("ceterms:name",), ("ceterms:subjectWebpage",))),
    (_FRAMEWORK, (("ceasn:name",),)),
    (_COMPETENCY, (("ceasn:competencyText",),)),
    ("ceterms:Collection", (("ceterms:name",),)),
)
# The rest of the policy's minimum is only an info: records the registry receives from older
# publishing tools often lack it, and the policy's own sample records do too.
_POLICY: tuple[tuple[str, tuple[_Group, ...]], ...] = (
    ("ceterms:Credential", (("ceterms:description",),
                            ("ceterms:ownedBy", "ceterms:offeredBy"))),
    ("ceterms:Organization", (("ceterms:description",),)),
    ("ceterms:LearningOpportunityProfile", (("ceterms:description",),
                                            ("ceterms:ownedBy", "ceterms:offeredBy"))),
    ("ceterms:AssessmentProfile", (("ceterms:description",),
                                   ("ceterms:ownedBy", "ceterms:offeredBy"))),
    (_FRAMEWORK, (("ceasn:description",),)),
)


def validate(doc: Document, *, max_nodes: int = 10000, max_depth: int = 32) -> list[Problem]:
    """The problems found in a parsed document (not including `doc.problems`)."""
    return _Run(doc, max_nodes, max_depth).run()


def is_iri(value: str) -> bool:
    """An absolute IRI or compact IRI ("scheme:rest", no whitespace), as JSON-LD reads @id values."""
    if " " in value or "\n" in value or "\t" in value:
        return False
    if value.startswith(_WEB):
        return True
    colon = value.find(":")
    return colon > 0 and value[0].isalpha() and _SCHEME_CHARS.issuperset(value[:colon])


class _Run:
    """One validation: the walk's state and what it collected for the cross-node checks."""

    __slots__ = ("nodes", "pointers", "main_index", "max_nodes", "max_depth", "props", "lineage",
                 "allowed", "plan", "problems", "node_lineage", "refs", "edges", "edge_ptrs",
                 "count", "stopped", "deep_reported")

    def __init__(self, doc: Document, max_nodes: int, max_depth: int) -> None:
        vocab = schema.vocabulary()
        graph = doc.envelope.get("@graph")
        self.nodes: list[Any] = graph if isinstance(graph, list) else []
        self.pointers = doc.node_pointers
        self.main_index = doc.main_index
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.props = vocab.properties
        self.lineage = vocab.lineage
        self.allowed = vocab.allowed
        self.plan = _plan()
        self.problems: list[Problem] = []
        self.node_lineage: dict[str, frozenset[str] | None] = {}  # @id -> lineage, every node
        self.refs: list[tuple[str, str, str | None, schema.Property]] = []  # to check at the end
        self.edges: dict[tuple[str, str], list[str]] = {}  # (node @id, property) -> targets
        self.edge_ptrs: dict[tuple[str, str], str] = {}
        self.count = len(self.nodes)
        self.stopped = False
        self.deep_reported = False

    # -- the walk ------------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        if self.count > self.max_nodes:
            self._error("too-many-nodes", "/@graph",
                        f"The graph has {self.count} nodes; the limit is {self.max_nodes}.")
            return self.problems
        self._index_top_level()
        for node, ptr in zip(self.nodes, self.pointers):
            if isinstance(node, dict):
                label = node.get("@id")
                self._node(node, ptr, 1, label if isinstance(label, str) else None)
        self._check_main()
        self._check_refs()
        self._check_inverses()
        self._check_framework_membership()
        self._check_recommended()
        return self.problems

    def _index_top_level(self) -> None:
        """Record every top-level @id and its classes, so references can be checked in any order."""
        for node, ptr in zip(self.nodes, self.pointers):
            if not isinstance(node, dict):
                continue
            nid = node.get("@id")
            if not isinstance(nid, str):
                continue
            if nid in self.node_lineage:
                self._error("duplicate-node-id", ptr + "/@id",
                            f"Another node of this graph already has the @id {nid}.", nid, "@id")
                continue
            self.node_lineage[nid] = self._lineage_of(node.get("@type"))

    def _node(self, node: dict[str, Any], ptr: str, depth: int, label: str | None) -> None:
        allowed = self._check_types(node, ptr, label)
        plan = self.plan
        for key, value in node.items():
            entry = plan.get(key)
            if entry is None:
                self._other_key(key, value, ptr, label)
                continue
            kind, p, tracked = entry
            if allowed is not None and p.domain and key not in allowed:
                self._domain_mismatch(node, key, _join(ptr, key), label)
            if kind == _CTID:
                self._check_ctid(value, _join(ptr, key), label)
                continue
            many = type(value) is list
            for i, x in enumerate(value if many else (value,)):
                # Fast paths for the shapes nearly every value has; anything else (and every
                # problem) goes through _value, which builds the pointer.
                tx = type(x)
                if kind == _IRI:
                    if tx is str and p.range_classes is None and x[:2] != "_:" and is_iri(x):
                        continue
                elif kind == _LANG:
                    if tx is str or (tx is dict and _plain_language_map(x)):
                        continue
                elif kind == _LITERAL:
                    if tx is str or tx is float or tx is int or tx is bool:
                        continue
                vptr = _join(ptr, key)
                self._value(p, x, f"{vptr}/{i}" if many else vptr, label, depth)
            if tracked and label is not None:
                self.edges[(label, key)] = _targets(value)
                self.edge_ptrs[(label, key)] = _join(ptr, key)

    def _other_key(self, key: str, value: Any, ptr: str, label: str | None) -> None:
        """A key the plan does not list: a JSON-LD keyword, or a term the vocabulary lacks."""
        if key == "@id":
            self._check_id(value, ptr, label)
        elif key not in _NODE_KEYWORDS:
            self._unknown_property(key, ptr, label)

    def _value(self, p: schema.Property, x: Any, ptr: str, label: str | None, depth: int) -> None:
        tx = type(x)
        if tx is str:
            if p.coercion == "@id":
                self._ref(p, x, ptr, label)
            elif p.expects_iri:
                self._expected_iri(p, repr(x), ptr, label)
        elif tx is dict:
            self._object(p, x, ptr, label, depth)
        elif x is None:
            return  # JSON-LD null: no value
        elif tx is list:  # a list inside a list: only @list containers allow it; check items
            if depth < self.max_depth:
                for i, item in enumerate(x):
                    self._value(p, item, f"{ptr}/{i}", label, depth + 1)
        elif p.expects_iri:
            self._expected_iri(p, repr(x), ptr, label)

    def _ref(self, p: schema.Property, iri: str, ptr: str, label: str | None) -> None:
        if iri.startswith("_:"):
            self.refs.append((iri, ptr, label, p))
        elif p.expects_iri and not is_iri(iri):
            self._expected_iri(p, repr(iri), ptr, label)
        elif p.range_classes is not None:
            self.refs.append((iri, ptr, label, p))

    def _object(self, p: schema.Property, x: dict[str, Any], ptr: str, label: str | None,
                depth: int) -> None:
        if "@value" in x:
            if p.expects_iri:
                self._expected_iri(p, "a literal value object", ptr, label)
            return
        if "@list" in x or "@set" in x:
            key = "@list" if "@list" in x else "@set"
            items = x[key] if isinstance(x[key], list) else [x[key]]
            for i, item in enumerate(items):
                self._value(p, item, f"{ptr}/{key}/{i}", label, depth)
            return
        if "@id" not in x and "@type" not in x and _looks_like_language_map(x):
            self._language_map(p, x, ptr, label)
            return
        if p.expects_iri is False:
            self._error("expected-literal", ptr,
                        f"{p.name} takes {_literal_kind(p)}, not a node or a reference.",
                        label, p.name)
            return
        if len(x) == 1 and "@id" in x:
            ref = x["@id"]
            if isinstance(ref, str):
                self._ref(p, ref, ptr + "/@id", label)
            else:
                self._expected_iri(p, "a non-string @id", ptr + "/@id", label)
            return
        self._nested(p, x, ptr, depth)

    def _nested(self, p: schema.Property, x: dict[str, Any], ptr: str, depth: int) -> None:
        depth += 1
        if self.stopped:
            return
        if depth > self.max_depth:
            if not self.deep_reported:
                self.deep_reported = True
                self._error("too-deep", ptr,
                            f"Nodes are nested more than {self.max_depth} levels deep.")
            return
        self.count += 1
        if self.count > self.max_nodes:
            self.stopped = True
            self._error("too-many-nodes", ptr,
                        f"The graph holds more than {self.max_nodes} nodes, nested ones included.")
            return
        nid = x.get("@id")
        label = nid if isinstance(nid, str) else None
        lineage = self._lineage_of(x.get("@type"))
        if label is not None:
            self.node_lineage.setdefault(label, lineage)
        self._node(x, ptr, depth, label)
        if lineage is not None and p.range_classes is not None \
                and lineage.isdisjoint(p.range_classes):
            self._range_mismatch(p, _type_name(x.get("@type")), "an embedded node", ptr, label)

    def _language_map(self, p: schema.Property, x: dict[str, Any], ptr: str,
                      label: str | None) -> None:
        if p.coercion != "@language":
            if p.expects_iri:
                self._expected_iri(p, "a language map", ptr, label)
            else:
                self._error("expected-literal", ptr,
                            f"{p.name} takes {_literal_kind(p)}, not a language map.",
                            label, p.name)
            return
        for lang, text in x.items():
            texts = text if isinstance(text, list) else [text]
            if not all(t is None or isinstance(t, str) for t in texts):
                self._error("expected-literal", ptr + "/" + _escape(lang),
                            f"{p.name} takes language-tagged text; the {lang!r} entry is not "
                            "text.", label, p.name)

    # -- per-node checks -----------------------------------------------------------------------

    def _lineage_of(self, types: Any) -> frozenset[str] | None:
        """The classes of a node with their ancestors; None if a type is missing or unknown."""
        if type(types) is str:
            return self.lineage.get(types)
        if isinstance(types, list) and types:
            out: frozenset[str] = frozenset()
            for t in types:
                lin = self.lineage.get(t) if isinstance(t, str) else None
                if lin is None:
                    return None
                out |= lin
            return out
        return None

    def _check_types(self, node: dict[str, Any], ptr: str,
                     label: str | None) -> frozenset[str] | None:
        """Report a missing or unknown @type; return the properties the node's classes admit."""
        types = node.get("@type")
        if type(types) is str:
            allowed = self.allowed.get(types)
            if allowed is None:
                self._unknown_type(types, ptr + "/@type", label)
            return allowed
        if types is None or types == []:
            self._error("missing-type", ptr, "This node has no @type; give it a CTDL class.",
                        label, "@type")
            return None
        items = types if isinstance(types, list) else [types]
        union: set[str] = set()
        known = True
        for i, t in enumerate(items):
            allowed = self.allowed.get(t) if isinstance(t, str) else None
            if allowed is None:
                known = False
                tptr = f"{ptr}/@type/{i}" if isinstance(types, list) else ptr + "/@type"
                self._unknown_type(t, tptr, label)
            else:
                union |= allowed
        return frozenset(union) if known else None

    def _check_id(self, value: Any, ptr: str, label: str | None) -> None:
        if not isinstance(value, str) or not (value.startswith("_:") or is_iri(value)):
            self._error("expected-iri", ptr + "/@id",
                        f"@id must be an absolute IRI or a blank-node label, not {value!r}.",
                        label, "@id")

    def _check_ctid(self, value: Any, ptr: str, label: str | None) -> None:
        if type(value) is list and len(value) == 1:
            value, ptr = value[0], ptr + "/0"
        if not isinstance(value, str):
            self._error("invalid-ctid", ptr, "ceterms:ctid must be a single string such as "
                        "'ce-' followed by a UUID.", label, CTID_PROP)
            return
        canonical = ctids.normalize(value)
        if canonical is None:
            if ctids.is_bare_uuid(value):
                message = (f"The CTID {value!r} is a bare UUID; a CTID starts with 'ce-': "
                           f"use 'ce-{value.lower()}'.")
            else:
                message = (f"{value!r} is not a CTID: expected 'ce-' followed by a lower-case "
                           "UUID, e.g. 'ce-5e3de882-3b49-421b-b623-695c63587f4f'.")
            self._error("invalid-ctid", ptr, message, label, CTID_PROP)
        elif ctids.uuid_version(canonical) != 4:
            self._warning("ctid-not-uuid4", ptr,
                          f"The CTID {canonical} is a version {ctids.uuid_version(canonical)} UUID; "
                          "CTIDs should use random (version 4) UUIDs.", label, CTID_PROP)

    # -- cross-node checks ---------------------------------------------------------------------

    def _check_main(self) -> None:
        if not self.nodes:
            return  # an empty graph has no main node to speak of
        index = self.main_index
        if index is None or not isinstance(self.nodes[index], dict):
            self._error("missing-ctid", "", "No node of this graph has a ceterms:ctid; the main "
                        "node needs one.", None, CTID_PROP)
            return
        main = self.nodes[index]
        if CTID_PROP not in main:
            label = main.get("@id")
            self._error("missing-ctid", self.pointers[index],
                        "The main node has no ceterms:ctid; add 'ce-' followed by a UUID.",
                        label if isinstance(label, str) else None, CTID_PROP)

    def _check_refs(self) -> None:
        for iri, ptr, label, p in self.refs:
            if iri not in self.node_lineage:
                if iri.startswith("_:"):
                    self._error("unresolved-blank-node", ptr,
                                f"{p.name} refers to the blank node {iri}, which is not in this "
                                "graph.", label, p.name)
                continue
            lineage = self.node_lineage[iri]
            if lineage is not None and p.range_classes is not None \
                    and lineage.isdisjoint(p.range_classes):
                self._range_mismatch(p, self._type_of(iri), iri, ptr, label)

    def _check_inverses(self) -> None:
        """A p B with B q C, C not A, where q is p's inverse: the two nodes disagree."""
        for (src, prop), targets in self.edges.items():
            inverse = self.props[prop].inverse
            if inverse is None:
                continue
            for tgt in targets:
                back = self.edges.get((tgt, inverse))
                if back is not None and src not in back:
                    self._warning("inverse-mismatch", self.edge_ptrs[(tgt, inverse)],
                                  f"{src} lists {tgt} in {prop}, but its {inverse} names "
                                  f"{_names(back)} instead.", tgt, inverse)

    def _check_framework_membership(self) -> None:
        """In a framework's graph, each competency's ceasn:isPartOf must name that framework."""
        if self.main_index is None or not isinstance(self.nodes[self.main_index], dict):
            return
        framework = self.nodes[self.main_index].get("@id")
        lineage = self.node_lineage.get(framework) if isinstance(framework, str) else None
        if lineage is None or _FRAMEWORK not in lineage:
            return
        for (node_id, prop), targets in self.edges.items():
            if prop != _COMPETENCY_PART_OF or framework in targets:
                continue
            node_lineage = self.node_lineage.get(node_id)
            if node_lineage is not None and _COMPETENCY in node_lineage:
                self._warning("inverse-mismatch", self.edge_ptrs[(node_id, prop)],
                              f"The competency {node_id} is in the graph of the framework "
                              f"{framework}, but its ceasn:isPartOf names {_names(targets)}.",
                              node_id, prop)

    def _check_recommended(self) -> None:
        index = self.main_index
        if index is None or not isinstance(self.nodes[index], dict):
            return
        main = self.nodes[index]
        lineage = self._lineage_of(main.get("@type"))
        if lineage is None:
            return
        label = main.get("@id") if isinstance(main.get("@id"), str) else None
        ptr = self.pointers[index]
        for table, severity, code in ((_RECOMMENDED, Severity.WARNING, "missing-recommended"),
                                      (_POLICY, Severity.INFO, "missing-policy-property")):
            for cls, groups in table:
                if cls not in lineage:
                    continue
                for group in groups:
                    if not any(_present(main.get(k)) for k in group):
                        self.problems.append(Problem(
                            code, severity, ptr,
                            f"A {cls} should have {' or '.join(group)} (CTDL minimum data "
                            "policy).", label, group[0]))
                break

    # -- problem builders ----------------------------------------------------------------------

    def _error(self, code: str, ptr: str, message: str, node: str | None = None,
               prop: str | None = None) -> None:
        self.problems.append(Problem(code, Severity.ERROR, ptr, message, node, prop))

    def _warning(self, code: str, ptr: str, message: str, node: str | None = None,
                 prop: str | None = None) -> None:
        self.problems.append(Problem(code, Severity.WARNING, ptr, message, node, prop))

    def _unknown_type(self, t: Any, ptr: str, label: str | None) -> None:
        self._error("unknown-type", ptr, f"{t!r} is not a CTDL or CTDL-ASN class.", label, "@type")

    def _unknown_property(self, key: str, ptr: str, label: str | None) -> None:
        self._error("unknown-property", ptr + "/" + _escape(key),
                    f"{key!r} is not a CTDL or CTDL-ASN property.", label, key)

    def _expected_iri(self, p: schema.Property, what: str, ptr: str, label: str | None) -> None:
        self._error("expected-iri", ptr,
                    f"{p.name} takes an IRI or a node, not {_shorten(what)}.", label, p.name)

    def _domain_mismatch(self, node: dict[str, Any], key: str, ptr: str,
                         label: str | None) -> None:
        self._warning("domain-mismatch", ptr,
                      f"{key} is not expected on a {_type_name(node.get('@type'))} "
                      f"(its domain is {_summary(key, 'domain')}).", label, key)

    def _range_mismatch(self, p: schema.Property, type_name: str, what: str, ptr: str,
                        label: str | None) -> None:
        self._warning("range-mismatch", ptr,
                      f"{p.name} expects a {_summary(p.name, 'range')}, but {_shorten(what)} is a "
                      f"{type_name}.", label, p.name)

    def _type_of(self, iri: str) -> str:
        for node in self.nodes:
            if isinstance(node, dict) and node.get("@id") == iri:
                return _type_name(node.get("@type"))
        return "node of another class"


_IRI, _LANG, _LITERAL, _CTID, _OTHER = range(5)
_PlanEntry = tuple[int, schema.Property, bool]


@cache
def _plan() -> dict[str, _PlanEntry]:
    """Per property: the fast-path kind of its values, its definition, and whether the inverse
    checks need its targets (it has an inverse, or it is ceasn:isPartOf)."""
    plan: dict[str, _PlanEntry] = {}
    for name, p in schema.vocabulary().properties.items():
        if name == CTID_PROP:
            kind = _CTID
        elif p.coercion == "@id" and p.expects_iri:
            kind = _IRI
        elif p.coercion == "@language":
            kind = _LANG
        elif p.coercion is not None and p.expects_iri is False:
            kind = _LITERAL
        else:
            kind = _OTHER
        plan[name] = (kind, p, p.inverse is not None or name == _COMPETENCY_PART_OF)
    return plan


@cache
def _summary(prop: str, which: str) -> str:
    """The most general classes of a property's domain or range, for a short message."""
    p = schema.prop(prop)
    terms = (p.domain if which == "domain" else (p.range_classes or p.range)) if p else frozenset()
    roots = sorted(t for t in terms if not (schema.superclasses(t) & terms))
    shown = ", ".join(roots[:3])
    return shown + ", …" if len(roots) > 3 else shown


def _targets(value: Any) -> list[str]:
    """The @ids a property value points at, looking through condition profiles."""
    out: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            nid = item.get("@id")
            if isinstance(nid, str):
                out.append(nid)
                continue
            for tp in _TARGET_PROPS:
                if tp in item:
                    out.extend(_targets(item[tp]))
    return list(dict.fromkeys(out))


def _plain_language_map(x: dict[str, Any]) -> bool:
    """A language map of single strings, with no keyword or term keys (the common case)."""
    for k, t in x.items():
        if type(t) is not str or ":" in k or k[:1] == "@":
            return False
    return True


def _looks_like_language_map(x: dict[str, Any]) -> bool:
    return all(":" not in k and (k[:1] != "@" or k == "@none") for k in x)


def _literal_kind(p: schema.Property) -> str:
    if p.coercion == "@language":
        return "language-tagged text"
    if p.coercion and p.coercion.startswith(("xsd:", "schema:")):
        return f"a literal ({p.coercion})"
    return "a literal"


def _type_name(types: Any) -> str:
    if isinstance(types, list):
        return " / ".join(str(t) for t in types)
    return str(types)


def _names(ids: list[str]) -> str:
    return ", ".join(ids[:2]) + (", …" if len(ids) > 2 else "") if ids else "nothing"


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _join(ptr: str, key: str) -> str:
    return ptr + "/" + _escape(key)


def _escape(key: str) -> str:
    """A property name as an RFC 6901 pointer segment."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key
