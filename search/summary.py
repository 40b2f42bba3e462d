"""What a record contributes to the search documents of *other* records: its name and owners,
and its links that put facts on their targets (a list's members, a transfer value's credential,
stacking). A search document is derived from its own graph and the summaries it reads; the
summaries are stored with each indexed document so dependants never re-parse the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ctdl import schema
from search.graph import Graph, as_list, concept_names, first_text, number, ref_ctid, texts
from search.timeline import parse_day

# Kinds of searchable record, tested in this order against the type's lineage.
KINDS = (
    ("credential", "ceterms:Credential"),
    ("organization", "ceterms:Organization"),
    ("learning_opportunity", "ceterms:LearningOpportunityProfile"),
    ("assessment", "ceterms:AssessmentProfile"),
    ("transfer_value", "ceterms:TransferValueProfile"),
    ("collection", "ceterms:Collection"),
)
KIND_NAMES = tuple(k for k, _ in KINDS)
# Link relations whose target's document shows something about the source (its inbound facts).
MEMBER, TRANSFER = "member", "transfer"
PREPARES_FOR, PREPARED_FROM = "prepares_for", "prepared_from"
HAS_PART, IS_PART_OF = "has_part", "is_part_of"
_TARGET_PROPS = ("ceterms:targetCredential", "ceterms:targetLearningOpportunity",
                 "ceterms:targetAssessment")


def kind_of(type_: str) -> str | None:
    if type_ == "ceterms:Collection":
        return "collection"
    lineage = schema.lineage(type_)
    for kind, cls in KINDS:
        # Credential Engine's class tree puts competency frameworks and pathway sets under
        # ceterms:Collection; only the lists themselves are searched as collections.
        if cls in lineage and kind != "collection":
            return kind
    return None


@dataclass(slots=True)
class Summary:
    ctid: str
    type: str
    kind: str | None
    name: str
    names: list[str]  # every name and alternate name, every language
    owners: list[str]
    # ceterms:Collection: (member CTID, start day, end day) per ceterms:CollectionMember
    members: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    # ceterms:TransferValueProfile
    credits: float | None = None
    credit_unit: str | None = None
    transfer_from: list[str] = field(default_factory=list)
    transfer_for: list[str] = field(default_factory=list)  # names of what the credit counts toward
    start: int | None = None
    end: int | None = None
    # stacking
    prepares_for: list[str] = field(default_factory=list)
    prepared_from: list[str] = field(default_factory=list)
    has_part: list[str] = field(default_factory=list)
    is_part_of: list[str] = field(default_factory=list)
    # target CTID -> relations, and member CTID -> (start, end) intervals; built on first use
    # (a list's summary is read once per member when the list changes)
    _relations: dict[str, set[str]] | None = field(default=None, repr=False, compare=False)
    _intervals: dict[str, list[tuple[int | None, int | None]]] | None = field(
        default=None, repr=False, compare=False)

    def relations_to(self, ctid: str) -> set[str]:
        if self._relations is None:
            self._relations = {}
            for rel, target in self.links():
                self._relations.setdefault(target, set()).add(rel)
        return self._relations.get(ctid, set())

    def intervals_of(self, member: str) -> list[tuple[int | None, int | None]]:
        if self._intervals is None:
            self._intervals = {}
            for m, start, end in self.members:
                self._intervals.setdefault(m, []).append((start, end))
        return self._intervals.get(member, [])

    def links(self) -> list[tuple[str, str]]:
        """(relation, target CTID) of every link that shows on the target's document."""
        out = [(MEMBER, m[0]) for m in self.members]
        out += [(TRANSFER, c) for c in self.transfer_from]
        for rel, targets in ((PREPARES_FOR, self.prepares_for), (PREPARED_FROM, self.prepared_from),
                             (HAS_PART, self.has_part), (IS_PART_OF, self.is_part_of)):
            out += [(rel, t) for t in targets]
        return [(rel, t) for rel, t in dict.fromkeys(out) if t != self.ctid]

    def to_json(self) -> bytes:
        return orjson.dumps({k: getattr(self, k) for k in _FIELDS})

    @classmethod
    def from_json(cls, data: bytes | str) -> Summary:
        raw: dict[str, Any] = orjson.loads(data)
        raw["members"] = [tuple(m) for m in raw.get("members", [])]
        return cls(**raw)


_FIELDS = tuple(f for f in Summary.__dataclass_fields__ if not f.startswith("_"))


def _targets(graph: Graph, prop: str) -> list[str]:
    """CTIDs a stacking property names: directly, or through condition profiles' targets."""
    out: list[str] = []
    for value in as_list(graph.main.get(prop)):
        direct = ref_ctid(value)
        if direct:
            out.append(direct)
            continue
        node = graph.node(value)
        if node is None:
            continue
        for target_prop in _TARGET_PROPS:
            out.extend(c for c in map(ref_ctid, as_list(node.get(target_prop))) if c)
    return list(dict.fromkeys(out))


def summarize(graph: Graph, ctid: str | None = None) -> Summary:
    main = graph.main
    ctid = ctid or graph.ctid or ""
    type_ = graph.type
    names = [t for _, t in texts(main.get("ceterms:name"))]
    names += [t for _, t in texts(main.get("ceterms:alternateName"))]
    summary = Summary(
        ctid=ctid, type=type_, kind=kind_of(type_), name=first_text(main.get("ceterms:name")) or "",
        names=list(dict.fromkeys(names)),
        owners=[c for c in map(ref_ctid, as_list(main.get("ceterms:ownedBy"))) if c],
        prepares_for=_targets(graph, "ceterms:isPreparationFor"),
        prepared_from=_targets(graph, "ceterms:preparationFrom"),
        has_part=_targets(graph, "ceterms:hasPart"),
        is_part_of=_targets(graph, "ceterms:isPartOf"),
    )
    if summary.kind == "collection":
        summary.members = _members(graph)
    elif summary.kind == "transfer_value":
        _transfer(graph, summary)
    return summary


def _members(graph: Graph) -> list[tuple[str, int | None, int | None]]:
    out: list[tuple[str, int | None, int | None]] = []
    for value in as_list(graph.main.get("ceterms:hasMember")):
        node = graph.node(value)
        if node is None:  # a plain reference: a member with no dates
            member = ref_ctid(value)
            if member:
                out.append((member, None, None))
            continue
        for proxy in as_list(node.get("ceterms:proxyFor")):
            member = ref_ctid(proxy)
            if member:
                out.append((member, parse_day(_date(node.get("ceterms:startDate"))),
                            parse_day(_date(node.get("ceterms:endDate")))))
    return out


def _date(value: Any) -> str | None:
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("@value")
        if isinstance(v, str):
            return v
    return None


def _transfer(graph: Graph, summary: Summary) -> None:
    main = graph.main
    credits: list[float] = []
    for node in graph.nodes_of(main, "ceterms:transferValue"):
        for prop in ("schema:value", "ceterms:value", "schema:maxValue", "ceterms:maxValue",
                     "schema:minValue", "ceterms:minValue"):
            value = number(node.get(prop))
            if value is not None:
                credits.append(value)
        if summary.credit_unit is None:
            units = concept_names(node, "ceterms:creditUnitType")
            summary.credit_unit = units[0] if units else None
    summary.credits = max(credits) if credits else None
    summary.transfer_from = [c for c in map(ref_ctid, as_list(main.get("ceterms:transferValueFrom")))
                             if c]
    for value in as_list(main.get("ceterms:transferValueFor")):
        program = graph.node(value)
        name = first_text(program.get("ceterms:name")) if program else None
        if name is None and (target := ref_ctid(value)):
            name = target
        if name:
            summary.transfer_for.append(name)
    summary.start = parse_day(_date(main.get("ceterms:startDate")))
    summary.end = parse_day(_date(main.get("ceterms:endDate")))
