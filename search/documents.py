"""One search document per searchable record, derived from its graph and the summaries of the
records it references or that reference it (see search/summary.py). Pure: what it reads from other
records goes through a `Resolver`, which is how the projection learns the dependencies."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from ctdl import schema
from search import geo, taxonomy, timeline
from search.graph import (
    Graph,
    Node,
    as_list,
    by_language,
    concept_names,
    first_text,
    number,
    ref_ctid,
    string,
    texts,
)
from search.places import state_code
from search.summary import (
    HAS_PART,
    IS_PART_OF,
    MEMBER,
    PREPARED_FROM,
    PREPARES_FOR,
    TRANSFER,
    Summary,
    summarize,
)
from search.text import sort_text

CTDL_PREFIXES = ("ceterms:", "ceasn:", "qdata:", "asn:")
QA_RELATIONS = (("accredited", "ceterms:accreditedBy", "ceterms:accreditedIn"),
                ("approved", "ceterms:approvedBy", "ceterms:approvedIn"),
                ("recognized", "ceterms:recognizedBy", "ceterms:recognizedIn"),
                ("regulated", "ceterms:regulatedBy", "ceterms:regulatedIn"))
_PLACE_PROPS = ("ceterms:availableAt", "ceterms:address")
_DELIVERY_PROPS = ("ceterms:learningDeliveryType", "ceterms:deliveryType",
                   "ceterms:assessmentDeliveryType")
_STATUS_PROPS = ("ceterms:credentialStatusType", "ceterms:lifeCycleStatusType")
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?"
                       r"(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                       r"(?:(\d+(?:\.\d+)?)S)?)?$")
_MONTH_DAYS = 365.25 / 12
_MONTHS_PER = (12.0, 1.0, 7 / _MONTH_DAYS, 1 / _MONTH_DAYS, 1 / (24 * _MONTH_DAYS),
               1 / (1440 * _MONTH_DAYS), 1 / (86400 * _MONTH_DAYS))
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_DOLLARS = {"usd", "us dollar", "us dollars", "u.s. dollar", "dollar", "dollars", "$"}
DESCRIPTION_CHARS = 400


class Resolver(Protocol):
    def summary(self, ctid: str) -> Summary | None:
        """The summary of another record, or None if it is not (or no longer) published."""
        ...

    def inbound(self, ctid: str) -> list[Summary]:
        """Summaries of the records with a link (Summary.links) to `ctid`."""
        ...


@dataclass(slots=True)
class SearchDocument:
    ctid: str
    kind: str
    type: str
    types: list[str]  # the record's classes and their superclasses
    name: str
    # full text
    names: list[str]
    description: list[str]
    keywords: list[str]
    occupations: list[str]
    organizations: list[str]
    # exact-match filters and facets
    owner: list[str] = field(default_factory=list)
    soc: list[str] = field(default_factory=list)
    soc_group: list[str] = field(default_factory=list)
    naics: list[str] = field(default_factory=list)
    cip: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    delivery: list[str] = field(default_factory=list)
    audience: list[str] = field(default_factory=list)
    lang: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    qa: list[str] = field(default_factory=list)
    list_at: list[str] = field(default_factory=list)  # search/timeline.py terms
    lists_now: list[str] = field(default_factory=list)  # lists it is on the day it was derived
    geo: list[str] = field(default_factory=list)  # search/geo.py cell terms
    points: list[tuple[float, float]] = field(default_factory=list)
    cost: float | None = None
    duration: float | None = None
    credits: float | None = None
    modified: str = ""
    sort_name: str = ""  # the name folded for sorting
    modified_us: int = 0  # microseconds since the epoch, for "newest first"
    # dependency tracking (search/projection.py)
    link_dst: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    valid_until: int = timeline.OPEN_END
    summary: bytes = b""
    card: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # the record's own @type values


def derive(graph: Graph, ctid: str, modified: str, resolver: Resolver,
           today: int | None = None, summary: Summary | None = None) -> SearchDocument | None:
    """The search document of a record, or None if its type is not searchable. `summary`, if
    given, is `summarize(graph, ctid)` computed already."""
    if summary is None:
        summary = summarize(graph, ctid)
    if summary.kind is None:
        return None
    return _Builder(graph, summary, modified, resolver,
                    timeline.today() if today is None else today).build()


def references(graph: Graph, summary: Summary) -> list[str]:
    """The records `derive` may read a summary of, besides those that reference this one (so a
    caller can fetch them all at once)."""
    main = graph.main
    values = as_list(main.get("ceterms:ownedBy")) + as_list(main.get("ceterms:offeredBy"))
    for _, by_prop, in_prop in QA_RELATIONS:
        values += as_list(main.get(by_prop))
        for jurisdiction in graph.nodes_of(main, in_prop):
            values += as_list(jurisdiction.get("ceterms:assertedBy"))
    out = [c for c in map(ref_ctid, values) if c]
    out += summary.prepares_for + summary.prepared_from + summary.has_part + summary.is_part_of
    return out + summary.transfer_from


class _Builder:
    def __init__(self, graph: Graph, summary: Summary, modified: str, resolver: Resolver,
                 today: int) -> None:
        self.g, self.s, self.main, self.r, self.today = graph, summary, graph.main, resolver, today
        self.valid_until = timeline.OPEN_END
        assert summary.kind is not None
        self.doc = SearchDocument(
            ctid=summary.ctid, kind=summary.kind, type=summary.type, types=self._types(),
            name=summary.name or summary.ctid, names=summary.names,
            description=[t for _, t in texts(self.main.get("ceterms:description"))],
            keywords=[t for _, t in texts(self.main.get("ceterms:keyword"))]
            + [t for _, t in texts(self.main.get("ceterms:subject"))],
            occupations=[], organizations=[], modified=modified,
            link_dst=list(dict.fromkeys(t for _, t in summary.links())), summary=summary.to_json())
        # Records that state something about this one, by relation (a list it is on, ...).
        self.sources: dict[str, list[Summary]] = {}
        # By CTID: the same document whichever order the sources were found in.
        for source in sorted(resolver.inbound(summary.ctid), key=lambda s: s.ctid):
            if source.ctid != summary.ctid:
                for relation in source.relations_to(summary.ctid):
                    self.sources.setdefault(relation, []).append(source)

    def _types(self) -> list[str]:
        return list(_ctdl_types(tuple(t for t in as_list(self.main.get("@type")) if isinstance(t, str))))

    def build(self) -> SearchDocument:
        d, main = self.doc, self.main
        card: dict[str, Any] = {
            "ctid": d.ctid, "type": d.type, "kind": d.kind, "name": d.name,
            "names": by_language(main.get("ceterms:name")),
            "description": _truncate(first_text(main.get("ceterms:description"))),
            "url": string(main.get("ceterms:subjectWebpage")), "modified": d.modified}
        d.owner = list(self.s.owners)
        card["owner"] = self._agents(main.get("ceterms:ownedBy"))
        card["offered_by"] = self._agents(main.get("ceterms:offeredBy"))
        card["qa"] = self._quality_assurance()
        card["occupations"], card["soc_groups"] = self._occupations()
        card["industries"] = self._industries()
        card["programs"] = self._programs()
        card["locations"] = self._places()
        card["states"] = d.state
        card["cost"] = self._cost()
        d.duration = self._duration()
        card["duration_months"] = d.duration
        d.delivery = [c for p in _DELIVERY_PROPS for c in concept_names(main, p)]
        d.audience = concept_names(main, "ceterms:audienceLevelType")
        d.status = [c for p in _STATUS_PROPS for c in concept_names(main, p)]
        d.lang = self._languages()
        card.update(delivery=d.delivery, audience=d.audience, status=d.status[0] if d.status else None,
                    languages=d.lang)
        card["lists"] = self._lists()
        card["credit"] = self._credit()
        card.update(self._stacking())
        if d.kind == "transfer_value":
            card["transfer"] = self._transfer()
        if d.kind == "collection":
            card["member_count"] = len({m[0] for m in self.s.members})
        d.valid_until = self.valid_until
        d.sort_name = sort_text(d.name)
        d.classes = [t for t in as_list(main.get("@type")) if isinstance(t, str)]
        d.modified_us = _micros(d.modified)
        d.card = card
        return d

    # --- references ----------------------------------------------------------------------------
    def _name_of(self, ctid: str) -> str | None:
        other = self.r.summary(ctid)
        return other.name if other is not None else None

    def _agents(self, value: Any) -> list[dict[str, Any]]:
        """Organizations a property names, as {ctid, name}: other records (named from their
        summary) or organization nodes embedded in this graph."""
        out = []
        for v in as_list(value):
            ctid = ref_ctid(v)
            node = self.g.node(v)
            name = first_text(node.get("ceterms:name")) if node else None
            if ctid and name is None:
                name = self._name_of(ctid)
            if ctid or name:
                out.append({"ctid": ctid, "name": name})
                if name and name not in self.doc.organizations:
                    self.doc.organizations.append(name)
        return out

    def _quality_assurance(self) -> list[dict[str, Any]]:
        out = []
        for relation, by_prop, in_prop in QA_RELATIONS:
            agents = self._agents(self.main.get(by_prop))
            for jurisdiction in self.g.nodes_of(self.main, in_prop):
                agents += self._agents(jurisdiction.get("ceterms:assertedBy"))
            for agent in agents:
                out.append({"relation": relation, **agent})
                if agent["ctid"] and agent["ctid"] not in self.doc.qa:
                    self.doc.qa.append(agent["ctid"])
        return out

    # --- alignments ----------------------------------------------------------------------------
    def _alignments(self, prop: str) -> list[Node]:
        return list(self.g.nodes_of(self.main, prop))

    def _occupations(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        occupations, groups = [], []
        for node in self._alignments("ceterms:occupationType"):
            given = first_text(node.get("ceterms:targetNodeName"))
            code = taxonomy.soc_code(string(node.get("ceterms:codedNotation")),
                                     string(node.get("ceterms:targetNode")))
            title = (taxonomy.soc_title(code) if code else None) or given
            for text in dict.fromkeys(t for t in (title, given) if t):
                self.doc.occupations.append(text)
            if code is None:
                continue
            if code not in self.doc.soc:
                self.doc.soc.append(code)
                occupations.append({"code": code, "title": title or code})
            group = code[:2]
            if group not in self.doc.soc_group:
                self.doc.soc_group.append(group)
                groups.append({"code": group, "title": taxonomy.soc_group_title(group) or group})
        return occupations, groups

    def _industries(self) -> list[dict[str, str]]:
        found: dict[str, str | None] = {}
        for node in self._alignments("ceterms:industryType"):
            code = taxonomy.naics_code(string(node.get("ceterms:codedNotation")))
            given = first_text(node.get("ceterms:targetNodeName"))
            if given:
                self.doc.keywords.append(given)
            if code:
                found.setdefault(code, given)
        for value in as_list(self.main.get("ceterms:naics")):
            code = taxonomy.naics_code(value if isinstance(value, str) else None)
            if code:
                found.setdefault(code, None)
        out = []
        for code, given in found.items():
            title = taxonomy.naics_title(code) or given or code
            out.append({"code": code, "title": title})
            for term in taxonomy.naics_terms(code):
                if term not in self.doc.naics:
                    self.doc.naics.append(term)
        return out

    def _programs(self) -> list[dict[str, str]]:
        out = []
        for node in self._alignments("ceterms:instructionalProgramType"):
            code = taxonomy.cip_code(string(node.get("ceterms:codedNotation")))
            title = first_text(node.get("ceterms:targetNodeName"))
            if title:
                self.doc.keywords.append(title)
            if code is None:
                continue
            out.append({"code": code, "title": title or code})
            for term in taxonomy.cip_terms(code):
                if term not in self.doc.cip:
                    self.doc.cip.append(term)
        return out

    # --- places, cost, time --------------------------------------------------------------------
    def _places(self) -> list[dict[str, Any]]:
        """Where the record is offered or located (`availableAt`, addresses): states, the points
        `near` matches and the card's locations. Jurisdictions add states only (`_jurisdictions`)."""
        d = self.doc
        out = []
        for place in (p for prop in _PLACE_PROPS for p in self.g.nodes_of(self.main, prop)):
            country = first_text(place.get("ceterms:addressCountry"))
            state = state_code(first_text(place.get("ceterms:addressRegion")), country)
            if state and state not in d.state:
                d.state.append(state)
            lat, lon = number(place.get("ceterms:latitude")), number(place.get("ceterms:longitude"))
            point = None
            if lat is not None and lon is not None and geo.valid_point(lat, lon):
                point = (lat, lon)
                if point not in d.points:
                    d.points.append(point)
                    d.geo.extend(t for t in geo.cell_terms(lat, lon) if t not in d.geo)
            locality = first_text(place.get("ceterms:addressLocality"))
            if state or locality or point:
                out.append({"locality": locality, "state": state,
                            "lat": point[0] if point else None, "lon": point[1] if point else None})
        self._jurisdictions()
        return out[:20]

    def _jurisdictions(self) -> None:
        """States of the record's main jurisdictions, where it applies (`jurisdiction`) and where it
        is offered (`offeredIn`). A jurisdiction is an area, so its coordinates (a region's
        centroid: "North America" lies in North Dakota) are no point for `near`; its exceptions
        add nothing, nor does a global one."""
        for profile in [*self.g.nodes_of(self.main, "ceterms:jurisdiction"),
                        *self.g.nodes_of(self.main, "ceterms:offeredIn")]:
            if _true(profile.get("ceterms:globalJurisdiction")):
                continue
            for place in self.g.nodes_of(profile, "ceterms:mainJurisdiction"):
                state = _jurisdiction_state(place)
                if state and state not in self.doc.state:
                    self.doc.state.append(state)

    def _cost(self) -> dict[str, Any] | None:
        best: tuple[float, str | None] | None = None
        for node in self.g.nodes_of(self.main, "ceterms:estimatedCost"):
            price = number(node.get("ceterms:price"))
            if price is None or price < 0:
                continue
            if best is None or price < best[0]:
                best = (price, _currency(string(node.get("ceterms:currency"))))
        if best is None:
            return None
        self.doc.cost = best[0]
        return {"price": best[0], "currency": best[1]}

    def _duration(self) -> float | None:
        months = []
        for node in self.g.nodes_of(self.main, "ceterms:estimatedDuration"):
            for prop in ("ceterms:exactDuration", "ceterms:minimumDuration", "ceterms:maximumDuration"):
                value = _months(string(node.get(prop)))
                if value is not None:
                    months.append(value)
                    break
        return round(min(months), 3) if months else None

    def _languages(self) -> list[str]:
        tags = [v for v in as_list(self.main.get("ceterms:inLanguage"))
                if isinstance(v, str) and _LANGUAGE_TAG.match(v.strip())]
        if not tags:  # no (usable) inLanguage: the languages the record is named in
            tags = [lang for lang in by_language(self.main.get("ceterms:name")) if _LANGUAGE_TAG.match(lang)]
        return list(dict.fromkeys(t.strip().split("-")[0].lower() for t in tags))

    # --- facts other records state about this one ----------------------------------------------
    def _sources(self, relation: str) -> list[Summary]:
        return self.sources.get(relation, [])

    def _lists(self) -> list[dict[str, Any]]:
        out = []
        for collection in self._sources(MEMBER):
            intervals = timeline.merge([
                (start or 0, timeline.OPEN_END if end is None else end)
                for start, end in collection.intervals_of(self.s.ctid)])
            self.doc.list_at += timeline.interval_terms(collection.ctid, intervals)
            # Evaluate every interval: _active also notes when membership next changes.
            if [self._active(s, e) for s, e in intervals].count(True):
                self.doc.lists_now.append(collection.ctid)
            out.append({"ctid": collection.ctid, "name": collection.name, "intervals": [
                [timeline.to_date(s) if s else None, None if e == timeline.OPEN_END else timeline.to_date(e)]
                for s, e in intervals]})
        return out

    def _active(self, start: int | None, end: int | None) -> bool:
        """Whether a dated fact holds today; remembers the next day that answer changes."""
        lo, hi = start or 0, timeline.OPEN_END if end is None else end
        for boundary in (lo, hi + 1):
            if boundary > self.today:
                self.valid_until = min(self.valid_until, boundary)
        return lo <= self.today <= hi

    def _credit(self) -> dict[str, Any] | None:
        offers, best = [], None
        for tvp in self._sources(TRANSFER):
            active = self._active(tvp.start, tvp.end)
            colleges = [{"ctid": c, "name": self._name_of(c)} for c in tvp.owners]
            offers.append({"ctid": tvp.ctid, "name": tvp.name, "credits": tvp.credits,
                           "unit": tvp.credit_unit, "colleges": colleges, "for": tvp.transfer_for,
                           "start": _date(tvp.start), "end": _date(tvp.end), "active": active})
            if active and tvp.credits is not None:
                best = tvp.credits if best is None else max(best, tvp.credits)
        if self.s.kind == "transfer_value" and self._active(self.s.start, self.s.end):
            best = self.s.credits
        self.doc.credits = best
        if not offers:
            return None if best is None else {"max": best, "offers": []}
        return {"max": best, "offers": offers}

    def _related(self, own: list[str], inverse_relation: str) -> list[dict[str, Any]]:
        ctids = list(dict.fromkeys(own + [s.ctid for s in self._sources(inverse_relation)]))
        out = []
        for ctid in ctids:
            other = self.r.summary(ctid)
            out.append({"ctid": ctid, "name": other.name if other else None,
                        "type": other.type if other else None})
        return out

    def _stacking(self) -> dict[str, list[dict[str, Any]]]:
        s = self.s
        return {"prepares_for": self._related(s.prepares_for, PREPARED_FROM),
                "prepared_by": self._related(s.prepared_from, PREPARES_FOR),
                "part_of": self._related(s.is_part_of, HAS_PART),
                "has_part": self._related(s.has_part, IS_PART_OF)}

    def _transfer(self) -> dict[str, Any]:
        s = self.s
        return {"credits": s.credits, "unit": s.credit_unit, "for": s.transfer_for,
                "start": _date(s.start), "end": _date(s.end),
                "from": [{"ctid": c, "name": self._name_of(c)} for c in s.transfer_from]}


@lru_cache(maxsize=4096)
def _ctdl_types(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The CTDL classes among `classes` and their CTDL superclasses (schema.org and Dublin Core
    ones, such as schema:CreativeWork, are not CTDL types and would only add a value to count to
    every facet computation)."""
    out: set[str] = set()
    for t in classes:
        out |= schema.lineage(t) or {t}
    return tuple(sorted(t for t in out if t.startswith(CTDL_PREFIXES)))


def _jurisdiction_state(place: Node) -> str | None:
    """The state a jurisdiction's place is: its address region or, without one, its name
    (jurisdictions are usually a named place with a GeoNames URI: "Ohio")."""
    country = first_text(place.get("ceterms:addressCountry"))
    if state := state_code(first_text(place.get("ceterms:addressRegion")), country):
        return state
    for _, name in texts(place.get("ceterms:name")):
        if state := state_code(name, country):
            return state
    return None


def _true(value: Any) -> bool:
    return any(v is True or (isinstance(v, str) and v.strip().lower() == "true") for v in as_list(value))


def _date(day: int | None) -> str | None:
    return None if day is None else timeline.to_date(day)


def _truncate(text: str | None) -> str | None:
    if text is None or len(text) <= DESCRIPTION_CHARS:
        return text
    return text[:DESCRIPTION_CHARS].rsplit(" ", 1)[0] + "…"


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) == 3 and value.isalpha():
        return value.upper()
    return "USD" if value.strip().lower() in _DOLLARS else value


def _months(value: str | None) -> float | None:
    """Months in an ISO 8601 duration (P1Y6M, P12W, PT160H, ...), or None."""
    if not value:
        return None
    return _months_of(value)


@lru_cache(maxsize=4096)
def _months_of(value: str) -> float | None:
    m = _DURATION.match(value.strip().upper())
    if not m or not any(m.groups()):
        return None
    return sum(float(g) * per for g, per in zip(m.groups(), _MONTHS_PER, strict=True) if g)


def _micros(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)
    except ValueError:
        return 0
