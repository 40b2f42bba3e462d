"""Validation of a normalized CTDL graph document against the CTDL and CTDL-ASN vocabulary.

`validate()` returns the problems it finds; the caller merges them with the parser's own
(`Document.problems`). Errors reject the document, warnings are reported with it, and infos only
tell the publisher something useful. Every code is documented in docs/problems.md.

The walk is a single pass over the graph (nested blank nodes included) driven by per-term tables
precomputed once (`ctdl.schema` and `_plan()`); cross-node checks (blank-node resolution, ranges
of references, inverse properties) run at the end over what the pass collected. Pointers are
built only where a problem or a nested node needs one.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from ctdl import ctid as ctids
from ctdl import schema
from ctdl.context import canonical_url
from ctdl.problems import Problem, Severity

if TYPE_CHECKING:
    from ctdl.document import Document

CTID_PROP = "ceterms:ctid"
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


class _GoodTags(dict[str, bool]):
    """Language tags seen to be well formed (a handful in any corpus): the fast path's lookup."""

    def __missing__(self, tag: str) -> bool:
        good = _LANGUAGE_TAG.match(tag) is not None
        if good and len(self) < 10_000:
            self[tag] = True
        return good

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and self[tag]


_GOOD_TAGS = _GoodTags()
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
_Rules = tuple[tuple[str, tuple[_Group, ...]], ...]
_NAMED = (("ceterms:name",), ("ceterms:subjectWebpage",))
_DESCRIBED_AND_OWNED = (("ceterms:description",), ("ceterms:ownedBy", "ceterms:offeredBy"))
# What the main node should carry; the first class in its lineage wins (specific before general).
# After Credential Engine's minimum data policy (https://credreg.net/registry/policy#mindata).
# The name and the subject webpage identify a resource for a reader: missing them is a warning.
_RECOMMENDED: _Rules = (
    ("ceterms:Credential", _NAMED), ("ceterms:Organization", _NAMED),
    ("ceterms:LearningOpportunityProfile", _NAMED), ("ceterms:AssessmentProfile", _NAMED),
    (_FRAMEWORK, (("ceasn:name",),)), (_COMPETENCY, (("ceasn:competencyText",),)),
    ("ceterms:Collection", (("ceterms:name",),)),
)
# The rest of the policy's minimum is an info only: records from older publishing tools, and the
# reference validator's own clean cases, often lack it, and the registry accepts them.
_POLICY: _Rules = (
    ("ceterms:Credential", _DESCRIBED_AND_OWNED),
    ("ceterms:Organization", (("ceterms:description",),)),
    ("ceterms:LearningOpportunityProfile", _DESCRIBED_AND_OWNED),
    ("ceterms:AssessmentProfile", _DESCRIBED_AND_OWNED),
    (_FRAMEWORK, (("ceasn:description",),)),
)

# How the walk treats the values of a property (see _plan()).
_IRI, _LANG, _LITERAL, _CTID, _OTHER = range(5)
_PlanEntry = tuple[int, schema.Property, bool, str]  # kind, term, tracked, pointer segment
_TypeInfo = tuple[frozenset[str], frozenset[str]]  # lineage, properties whose domain admits it
_NO_INFO: tuple[None, None] = (None, None)
# A reference to check at the end: IRI, pointer base, key and list index (the pointer is
# base/key/index, built only for a problem; key "" means base is the whole pointer), node, property.
_Ref = tuple[str, str, str, int, str | None, schema.Property]


def validate(doc: Document, *, max_nodes: int = 10000, max_depth: int = 32) -> list[Problem]:
    """The problems found in a parsed document (not including `doc.problems`)."""
    return _Run(doc, max_nodes, max_depth).run()


# Characters the N-Triples/Turtle IRI grammar forbids: no RDF store would load such an IRI.
_IRI_FORBIDDEN = frozenset('<>"{}|\\^`')


def is_iri(value: str) -> bool:
    """An absolute or compact IRI ("scheme:rest") without whitespace or control characters.

    This is how JSON-LD reads an @id-coerced string; whitespace is refused because the RDF
    projection cannot store such an IRI (publishers percent-encode it as %20).
    """
    if " " in value or not value.isprintable() or not _IRI_FORBIDDEN.isdisjoint(value):
        return False
    if value.startswith(_WEB):
        return True
    colon = value.find(":")
    return colon > 0 and value[0].isalpha() and _SCHEME_CHARS.issuperset(value[:colon])


class _Run:
    """One validation: the walk's state and what it collected for the cross-node checks."""

    __slots__ = ("nodes", "pointers", "main_index", "max_nodes", "max_depth", "plan", "types",
                 "problems", "node_lineage", "refs", "edges", "edge_ptrs", "count", "stopped",
                 "deep_reported")

    def __init__(self, doc: Document, max_nodes: int, max_depth: int) -> None:
        graph = doc.envelope.get("@graph")
        self.nodes: list[Any] = graph if isinstance(graph, list) else []
        self.pointers = doc.node_pointers
        self.main_index = doc.main_index
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.plan = _plan()
        self.types = _type_table()
        self.problems: list[Problem] = []
        self.node_lineage: dict[str, frozenset[str] | None] = {}  # @id -> lineage, every node
        self.refs: list[_Ref] = []  # checked at the end, when every node's @id is known
        self.edges: dict[tuple[str, str], list[str]] = {}  # (node @id, property) -> targets
        self.edge_ptrs: dict[tuple[str, str], str] = {}
        self.count = len(self.nodes)
        self.stopped = False
        self.deep_reported = False

    def run(self) -> list[Problem]:
        if self.count > self.max_nodes:
            self._error("too-many-nodes", "/@graph",
                        f"The graph has {self.count} nodes; the limit is {self.max_nodes}.")
            return self.problems
        self._index_top_level()
        for node, ptr in zip(self.nodes, self.pointers, strict=True):
            if isinstance(node, dict):
                label = node.get("@id")
                self._node(node, ptr, 1, label if isinstance(label, str) else None)
        main = self._main()
        self._check_main(main)
        if self.refs:
            self._check_refs()
        if self.edges:
            self._check_inverses()
            self._check_framework_membership(main)
        if main is not None:
            self._check_recommended(main)
        return self.problems

    # -- the walk ------------------------------------------------------------------------------

    def _index_top_level(self) -> None:
        """Record every top-level @id and its classes, so references can be checked in any order."""
        for node, ptr in zip(self.nodes, self.pointers, strict=True):
            nid = node.get("@id") if isinstance(node, dict) else None
            if not isinstance(nid, str):
                continue
            if nid in self.node_lineage:
                self._error("duplicate-node-id", ptr + "/@id",
                            f"Another node of this graph already has the @id {nid}.", nid, "@id")
                continue
            self.node_lineage[nid] = self._lineage_of(node.get("@type"))

    def _node(self, node: dict[str, Any], ptr: str, depth: int,
              label: str | None) -> frozenset[str] | None:
        """Check a node and everything nested in it; return its lineage (None if unknown).

        The branches below are fast paths for the shapes nearly every value has; any other shape,
        and every problem, goes through _value with a pointer.
        """
        types = node.get("@type")
        info = self.types.get(types) if type(types) is str else None
        lineage, allowed = info if info is not None else self._check_types(types, ptr, label)
        plan = self.plan
        for key, value in node.items():
            entry = plan.get(key)
            if entry is None:  # a JSON-LD keyword, or a term the vocabulary lacks
                if key == "@id":
                    self._check_id(value, ptr, label)
                elif key == "@context":
                    self._check_nested_context(value, ptr, label)
                elif key not in _NODE_KEYWORDS:
                    self._error("unknown-property", _join(ptr, key), f"{_shorten(repr(key))} is "
                                "not a CTDL or CTDL-ASN property.", label, key)
                continue
            kind, p, tracked, seg = entry
            if allowed is not None and key not in allowed:
                self._domain_mismatch(node, key, ptr + seg, label)
            if tracked and label is not None:
                self.edges[(label, key)] = _targets(value)
                self.edge_ptrs[(label, key)] = ptr + seg
            tv = type(value)
            if kind == _LANG:
                if tv is str:
                    continue
                if tv is dict:
                    for lang, text in value.items():
                        if lang not in _GOOD_TAGS or (type(text) is not str and not _all_strings(text)):
                            break
                    else:
                        continue
            elif kind == _LITERAL:
                if tv is str or tv is float or tv is int or tv is bool:
                    continue
            elif kind == _IRI:
                if tv is list:
                    self._iris(p, key, value, ptr, seg, label, depth)
                    continue
                if tv is str:
                    if not is_iri(value):
                        self._value(p, value, ptr + seg, label, depth)
                    elif p.range_classes is not None:  # checked once all ids are known
                        self.refs.append((value, ptr, key, -1, label, p))
                    continue
                if tv is dict and "@type" in value and "@value" not in value:
                    self._nested(p, value, ptr + seg, depth)
                    continue
            elif kind == _CTID:
                self._check_ctid(value, ptr + seg, label)
                continue
            if tv is list:
                for i, x in enumerate(value):
                    self._value(p, x, f"{ptr}{seg}/{i}", label, depth)
            else:
                self._value(p, value, ptr + seg, label, depth)
        return lineage

    def _iris(self, p: schema.Property, key: str, values: list[Any], ptr: str, seg: str,
              label: str | None, depth: int) -> None:
        """The values of an IRI-valued property given as a list: references and embedded nodes."""
        i = -1
        for x in values:
            i += 1
            tx = type(x)
            if tx is str:
                if is_iri(x):
                    if p.range_classes is not None:  # checked once all ids are known
                        self.refs.append((x, ptr, key, i, label, p))
                    continue
            elif tx is dict and "@type" in x and "@value" not in x:
                self._nested(p, x, f"{ptr}{seg}/{i}", depth)
                continue
            self._value(p, x, f"{ptr}{seg}/{i}", label, depth)

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
        elif tx is list:  # a list in a list: only @list containers allow it; check the items
            self._items(p, x, ptr, label, depth)
        elif p.expects_iri:
            self._expected_iri(p, repr(x), ptr, label)

    def _items(self, p: schema.Property, items: list[Any], ptr: str, label: str | None,
               depth: int) -> None:
        """Values in a list within a list, or in an @list/@set: one more level of nesting."""
        if depth >= self.max_depth:
            self._over_limit(ptr, depth + 1)
            return
        for i, item in enumerate(items):
            self._value(p, item, f"{ptr}/{i}", label, depth + 1)

    def _ref(self, p: schema.Property, iri: str, ptr: str, label: str | None) -> None:
        if iri.startswith("_:") or (p.range_classes is not None and is_iri(iri)):
            self.refs.append((iri, ptr, "", -1, label, p))
        elif p.expects_iri and not is_iri(iri):
            self._expected_iri(p, repr(iri), ptr, label)

    def _object(self, p: schema.Property, x: dict[str, Any], ptr: str, label: str | None,
                depth: int) -> None:
        if "@value" in x:
            if p.expects_iri:
                self._expected_iri(p, "a literal value object", ptr, label)
            return
        if "@list" in x or "@set" in x:
            key = "@list" if "@list" in x else "@set"
            self._items(p, x[key] if isinstance(x[key], list) else [x[key]], f"{ptr}/{key}", label,
                        depth)
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
        self.count += 1
        if depth > self.max_depth or self.count > self.max_nodes:
            self._over_limit(ptr, depth)
            return
        nid = x.get("@id")
        label = nid if type(nid) is str else None
        lineage = self._node(x, ptr, depth, label)
        if label is not None:
            self.node_lineage.setdefault(label, lineage)
        rc = p.range_classes
        if rc is not None and lineage is not None and lineage.isdisjoint(rc):
            self._range_mismatch(p, _type_name(x.get("@type")), "an embedded node", ptr, label)

    def _over_limit(self, ptr: str, depth: int) -> None:
        """Report (once each) nesting or node count beyond the limits; the node is not walked."""
        if depth > self.max_depth and not self.deep_reported:
            self.deep_reported = True
            self._error("too-deep", ptr, f"Nodes are nested more than {self.max_depth} levels deep.")
        elif self.count > self.max_nodes and not self.stopped:
            self.stopped = True
            self._error("too-many-nodes", ptr,
                        f"The graph holds more than {self.max_nodes} nodes, nested ones included.")

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
            if lang != "@none" and _LANGUAGE_TAG.match(lang) is None:
                self._error("invalid-language-tag", _join(ptr, lang),
                            f"{lang!r} is not a language tag (BCP 47, e.g. 'en-US').", label, p.name)
            texts = text if isinstance(text, list) else [text]
            if not all(t is None or isinstance(t, str) for t in texts):
                self._error("expected-literal", _join(ptr, lang),
                            f"{p.name} takes language-tagged text; its {lang!r} entry is not "
                            "text.", label, p.name)

    # -- per-node checks -----------------------------------------------------------------------

    def _infos(self, types: Any) -> list[_TypeInfo | None]:
        items = types if isinstance(types, list) else [types]
        return [self.types.get(t) if isinstance(t, str) else None for t in items]

    def _lineage_of(self, types: Any) -> frozenset[str] | None:
        """The classes of a node with their ancestors; None if a type is missing or unknown."""
        if type(types) is str:
            return self.types.get(types, _NO_INFO)[0]
        infos = self._infos(types)
        if not infos or None in infos:
            return None
        return frozenset().union(*(info[0] for info in infos if info))

    def _check_types(self, types: Any, ptr: str,
                     label: str | None) -> _TypeInfo | tuple[None, None]:
        """Report a missing or unknown @type; return the node's lineage and admitted properties."""
        if types is None or types == []:
            self._error("missing-type", ptr, "This node has no @type; give it a CTDL class.",
                        label, "@type")
            return _NO_INFO
        many = isinstance(types, list)
        infos = self._infos(types)
        for i, info in enumerate(infos):
            if info is None:
                t = types[i] if many else types
                self._error("unknown-type", f"{ptr}/@type/{i}" if many else ptr + "/@type",
                            f"{_shorten(repr(t))} is not a CTDL or CTDL-ASN class.", label, "@type")
        if None in infos:
            return _NO_INFO
        return (frozenset().union(*(info[0] for info in infos if info)),
                frozenset().union(*(info[1] for info in infos if info)))

    def _check_nested_context(self, value: Any, ptr: str, label: str | None) -> None:
        # Definitions inside a node would change what its keys mean after they were checked
        # against CTDL's; only a repeat of a vendored context is harmless.
        if not (isinstance(value, str) and canonical_url(value) is not None):
            self._error("nested-context", _join(ptr, "@context"),
                        "A node may not carry its own @context: put CTDL's context URL in the "
                        "document's top-level @context.", label, "@context")

    def _check_id(self, value: Any, ptr: str, label: str | None) -> None:
        if not isinstance(value, str) or not (value.startswith("_:") or is_iri(value)):
            self._error("expected-iri", ptr + "/@id",
                        f"@id must be an absolute IRI or a blank-node label, not {value!r}.",
                        label, "@id")

    def _check_ctid(self, value: Any, ptr: str, label: str | None) -> None:
        if type(value) is list and len(value) == 1:
            value, ptr = value[0], ptr + "/0"
        if type(value) is dict and set(value) <= {"@value", "@type"} \
                and value.get("@type", "xsd:string") == "xsd:string":
            value, ptr = value.get("@value"), ptr + "/@value"  # as compacted from RDF
        if not isinstance(value, str):
            self._error("invalid-ctid", ptr, "ceterms:ctid must be one string: 'ce-' followed "
                        "by a UUID.", label, CTID_PROP)
            return
        if ctids.is_ctid(value):  # the common case: one match, no copy
            canonical: str | None = value
        else:  # upper case the parser left alone is still a CTID; anything else is not
            canonical = ctids.normalize(value)
        if canonical is None:
            if ctids.is_bare_uuid(value):
                message = (f"The CTID {value!r} is a bare UUID; a CTID starts with 'ce-': "
                           f"use 'ce-{value.lower()}'.")
            else:
                message = (f"{_shorten(repr(value))} is not a CTID: expected 'ce-' followed by "
                           "a lower-case UUID, e.g. 'ce-5e3de882-3b49-421b-b623-695c63587f4f'.")
            self._error("invalid-ctid", ptr, message, label, CTID_PROP)
        elif ctids.uuid_version(canonical) != 4:
            self._warning("ctid-not-uuid4", ptr,
                          f"The CTID {canonical} is a version {ctids.uuid_version(canonical)} UUID; "
                          "CTIDs should use random (version 4) UUIDs.", label, CTID_PROP)

    # -- cross-node checks ---------------------------------------------------------------------

    def _main(self) -> dict[str, Any] | None:
        index = self.main_index
        if index is None or not 0 <= index < len(self.nodes):
            return None
        main = self.nodes[index]
        return main if isinstance(main, dict) else None

    def _check_main(self, main: dict[str, Any] | None) -> None:
        if not self.nodes:
            return  # an empty graph has no main node to speak of
        if main is None:
            self._error("missing-ctid", "", "No node of this graph has a ceterms:ctid; the main "
                        "node needs one.", None, CTID_PROP)
        elif CTID_PROP not in main:
            label = main.get("@id")
            self._error("missing-ctid", self.pointers[self.main_index or 0],
                        "The main node has no ceterms:ctid; add 'ce-' followed by a UUID.",
                        label if isinstance(label, str) else None, CTID_PROP)

    def _check_refs(self) -> None:
        node_lineage = self.node_lineage
        for iri, base, key, index, label, p in self.refs:
            if iri not in node_lineage:
                if iri.startswith("_:"):
                    self._error("unresolved-blank-node", _ref_pointer(base, key, index),
                                f"{p.name} refers to the blank node {iri}, which is not in this "
                                "graph (a record taken from a registry's /resources/ view: publish "
                                "its /graph/ envelope, which holds its blank nodes).", label, p.name)
                continue
            lineage = node_lineage[iri]
            if lineage is not None and p.range_classes is not None \
                    and lineage.isdisjoint(p.range_classes):
                self._range_mismatch(p, self._type_of(iri), iri, _ref_pointer(base, key, index),
                                     label)

    def _check_inverses(self) -> None:
        """A p B while B q C (C not A), q being p's inverse: the two nodes disagree."""
        for (src, prop), targets in self.edges.items():
            inverse = self.plan[prop][1].inverse
            if inverse is None:
                continue
            for tgt in targets:
                back = self.edges.get((tgt, inverse))
                if back is not None and src not in back:
                    self._warning("inverse-mismatch", self.edge_ptrs[(tgt, inverse)],
                                  f"{src} lists {tgt} in {prop}, but its {inverse} names "
                                  f"{_names(back)} instead.", tgt, inverse)

    def _check_framework_membership(self, main: dict[str, Any] | None) -> None:
        """In a framework's graph, each competency's ceasn:isPartOf must name that framework."""
        framework = main.get("@id") if main is not None else None
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

    def _check_recommended(self, main: dict[str, Any]) -> None:
        types = main.get("@type")
        rules = _rules_for(types) if isinstance(types, str) else \
            _rules_for_lineage(self._lineage_of(types))
        if not rules:
            return
        label = main.get("@id") if isinstance(main.get("@id"), str) else None
        ptr = self.pointers[self.main_index or 0]
        for code, severity, cls, group in rules:
            for k in group:
                if main.get(k):  # present and not empty ("", [], {} or null)
                    break
            else:
                self._error(code, ptr, f"A {cls} should have {' or '.join(group)} (CTDL minimum "
                            "data policy).", label, group[0], severity)

    # -- problem builders ----------------------------------------------------------------------

    def _error(self, code: str, ptr: str, message: str, node: str | None = None,
               prop: str | None = None, severity: Severity = Severity.ERROR) -> None:
        self.problems.append(Problem(code, severity, ptr, message, node, prop))

    def _warning(self, code: str, ptr: str, message: str, node: str | None = None,
                 prop: str | None = None) -> None:
        self._error(code, ptr, message, node, prop, Severity.WARNING)

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
        types = [n.get("@type") for n in self.nodes if isinstance(n, dict) and n.get("@id") == iri]
        return _type_name(types[0]) if types else "node of another class"


# -- tables built once -------------------------------------------------------------------------

@cache
def _plan() -> dict[str, _PlanEntry]:
    """Per property: how the walk treats its values, its definition, whether the inverse checks
    need its targets (it has an inverse, or it is ceasn:isPartOf), and its pointer segment."""
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
        tracked = p.inverse is not None or name == _COMPETENCY_PART_OF
        plan[name] = (kind, p, tracked, _join("", name))
    return plan


@cache
def _type_table() -> Mapping[str, _TypeInfo]:
    """Per class: its lineage and the properties it may carry without a domain mismatch."""
    vocab = schema.vocabulary()
    return {c: (vocab.lineage[c], vocab.allowed[c]) for c in vocab.classes}


_Rule = tuple[str, Severity, str, _Group]


@cache
def _rules_for(cls: str) -> tuple[_Rule, ...]:
    return _rules_for_lineage(schema.vocabulary().lineage.get(cls))


def _rules_for_lineage(lineage: frozenset[str] | None) -> tuple[_Rule, ...]:
    """The minimum-data rules that apply to a main node of these classes."""
    if lineage is None:
        return ()
    out: list[_Rule] = []
    for table, severity, code in ((_RECOMMENDED, Severity.WARNING, "missing-recommended"),
                                  (_POLICY, Severity.INFO, "missing-policy-property")):
        for cls, groups in table:
            if cls in lineage:
                out.extend((code, severity, cls, group) for group in groups)
                break
    return tuple(out)


@cache
def _summary(prop: str, which: str) -> str:
    """The most general classes of a property's domain or range, those covering most first."""
    p = schema.prop(prop)
    terms = (p.domain if which == "domain" else (p.range_classes or p.range)) if p else frozenset()
    roots = [t for t in terms if not (schema.superclasses(t) & terms)]
    covered = {r: sum(r in schema.lineage(t) for t in terms) for r in roots}
    roots.sort(key=lambda r: (-covered[r], r))
    return ", ".join(roots[:3]) + (", …" if len(roots) > 3 else "")


# -- helpers -----------------------------------------------------------------------------------

def _targets(value: Any, through: bool = True) -> list[str]:
    """The @ids a property value points at, looking through condition profiles (one level:
    this runs before the depth limit is applied)."""
    out: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            nid = item.get("@id")
            if isinstance(nid, str):
                out.append(nid)
            elif through:
                for tp in _TARGET_PROPS:
                    out.extend(_targets(item.get(tp, []), through=False))
    return list(dict.fromkeys(out))


def _all_strings(value: Any) -> bool:
    return type(value) is list and all(type(t) is str for t in value)


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


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ref_pointer(base: str, key: str, index: int) -> str:
    """The pointer of a collected reference (see _Ref)."""
    ptr = _join(base, key) if key else base
    return f"{ptr}/{index}" if key and index >= 0 else ptr


def _join(ptr: str, key: str) -> str:
    """A pointer one step further, the key escaped as RFC 6901 requires."""
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return ptr + "/" + key
