"""Search documents derived from real published records (Credential Engine's samples) and from the
variants seen in the wild: states by name or code, durations in weeks or hours, prices as strings,
"US Dollar", O*NET codes, CIP with a dash, QA bodies as blank nodes, several languages."""
from __future__ import annotations

from pathlib import Path

import pytest

from registry.service import Registry
from search import taxonomy, timeline
from search.documents import SearchDocument, derive
from search.graph import Graph
from search.places import state_code
from search.summary import Summary, summarize
from tests.conftest import SAMPLES, need_shared
from tests.search_fixtures import collection, credential, ctid, organization, place, transfer_value

TODAY = timeline.parse_day("2026-11-23")
RA = SAMPLES / "registry-assistant"


class Resolver:
    def __init__(self, *graphs: dict) -> None:
        self.summaries: dict[str, Summary] = {}
        for g in graphs:
            s = summarize(Graph(g))
            self.summaries[s.ctid] = s
        self.read: list[str] = []

    def summary(self, ctid: str) -> Summary | None:
        self.read.append(ctid)
        return self.summaries.get(ctid)

    def inbound(self, ctid: str) -> list[Summary]:
        return [s for s in self.summaries.values() if s.relations_to(ctid)]


def doc_of(registry: Registry, path: Path, resolver: Resolver | None = None) -> SearchDocument:
    need_shared(path)
    prepared = registry.prepare(path.read_bytes())
    found = derive(Graph.from_bytes(prepared.body), prepared.ctid, "2026-01-02T03:04:05.000006Z",
                   resolver or Resolver(), TODAY)
    assert found is not None
    return found


def test_learning_opportunity_with_blank_node_organizations(registry: Registry) -> None:
    d = doc_of(registry, RA / "LearningOpportunity_160-Driving-Academy_published.json")
    assert d.kind == "learning_opportunity" and "ceterms:LearningOpportunityProfile" in d.types
    assert d.state == ["IL"]  # three Illinois addresses
    assert d.cost == 4695.0 and d.card["cost"] == {"price": 4695.0, "currency": "USD"}
    assert d.duration == pytest.approx(160 / 730.5, abs=1e-3)  # PT160H is shorter than P4W
    assert d.delivery == ["InPerson", "OnlineOnly"]
    assert d.soc == ["53-3032"] and d.soc_group == ["53"]
    assert d.cip == ["49", "49.02", "49.0205"]  # published as 49-0205
    assert [q["name"] for q in d.card["qa"]] == ["Illinois Community College Board", "Illinois Secretary of State",
                                                 "Industry Standard: Illinois Secretary of State Licensed Facility"]
    assert d.card["owner"] == [{"ctid": None, "name": "160 Driving Academy"}]
    assert d.organizations.count("160 Driving Academy") == 1


def test_degree_with_cip_audience_and_currency_words(registry: Registry) -> None:
    d = doc_of(registry, RA / "Indiana-University-South-Bend-B.S.-in-Nursing-Pre-Licensure-_API_Output_CTDL.json")
    assert d.kind == "credential" and {"ceterms:Degree", "ceterms:Credential"} <= set(d.types)
    assert d.state == ["IN"] and d.points == [(41.6652955, -86.2220432)]
    assert d.cost == 97.12 and d.card["cost"]["currency"] == "USD"  # "US Dollar"
    assert d.audience == ["BachelorsDegreeLevel"] and d.cip == ["51", "51.38", "51.3801"]
    assert d.soc == ["29-1141"] and d.card["occupations"][0]["title"] == "Registered Nurses"
    assert d.card["qa"][0]["name"] == "Commission on Collegiate Nursing Education (CCNE)"


def test_names_and_languages(registry: Registry) -> None:
    d = doc_of(registry, RA / "CredentialWithMultipleLanguages_Api_output.json")
    assert set(d.names) == {"Bachelor of Science in Accounting", "بكالوريوس العلوم في المحاسبة"}
    assert d.name == "Bachelor of Science in Accounting"  # English is shown when there is one
    assert d.card["names"]["ar-sa"] == "بكالوريوس العلوم في المحاسبة"
    assert d.lang == ["ar", "en"]
    assert d.duration == pytest.approx(8 * 7 / (365.25 / 12), abs=1e-3)  # minimum of P8W..P12W


def test_occupations_industries_and_jurisdiction_exceptions(registry: Registry) -> None:
    d = doc_of(registry, RA / "Credential_PublishDetailedRecord_API_output.json")
    assert d.soc[:2] == ["15-1122", "15-1152"]  # SOC 2010 codes as published (O*NET .00 dropped)
    assert {"code": "15-1122", "title": "Information Security Analysts"} in d.card["occupations"]
    assert {"92", "928110", "926120", "9271"} <= set(d.naics)
    assert d.state == []  # Oregon is a jurisdiction *exception*, not where it is offered


def jurisdiction(*main: dict, exceptions: list[dict] = (), global_: bool | None = False) -> dict:
    out: dict = {"@type": "ceterms:JurisdictionProfile", "ceterms:mainJurisdiction": list(main)}
    if global_ is not None:
        out["ceterms:globalJurisdiction"] = global_
    if exceptions:
        out["ceterms:jurisdictionException"] = list(exceptions)
    return out


def named_place(name: str, geonames: int, **props: object) -> dict:
    return {"@type": "ceterms:Place", "ceterms:name": {"en-US": name},
            "ceterms:geoURI": f"http://geonames.org/{geonames}/", **props}


def doc_with(**props: object) -> SearchDocument:
    org, cred = ctid(), ctid()
    found = derive(Graph(credential(cred, "Welding", org, **props)), cred, "2026-01-01T00:00:00Z",
                   Resolver(organization(org, "College")), TODAY)
    assert found is not None
    return found


def test_jurisdiction_states_from_region_or_name() -> None:
    d = doc_with(**{"ceterms:jurisdiction": [
        jurisdiction(named_place("Ohio", 5165418), named_place("DC", 4138106),
                     named_place("Commonwealth of Puerto Rico", 4566966),
                     exceptions=[named_place("Kentucky", 6254925)]),
        jurisdiction({"@type": "ceterms:Place", "ceterms:addressRegion": {"en-US": "Indiana"},
                      "ceterms:name": {"en-US": "Hoosier State"}}),
        jurisdiction(named_place("Ontario", 6093943, **{"ceterms:addressCountry": {"en-US": "Canada"}}),
                     named_place("United States", 6252001), global_=None)]})
    assert d.state == ["OH", "DC", "PR", "IN"] and d.card["states"] == d.state
    assert d.points == [] and d.geo == [] and d.card["locations"] == []


def test_states_where_it_is_offered() -> None:
    d = doc_with(**{"ceterms:offeredIn": [jurisdiction(named_place("Kentucky", 6254925),
                                                       exceptions=[named_place("Ohio", 5165418)])]})
    assert d.state == ["KY"]


def test_global_jurisdiction_adds_no_state() -> None:
    d = doc_with(**{"ceterms:jurisdiction": [jurisdiction(place("Texas"), global_=True)]})
    assert d.state == []


def test_jurisdiction_coordinates_are_no_point_for_near() -> None:
    # A region's centroid, as published (credential-registry/4_import.json): "North America" at a
    # point in North Dakota. The credential is not offered there; only its campus is a point.
    north_america = {"@type": "ceterms:GeoCoordinates", "ceterms:geoURI": "http://geonames.org/6255149/",
                     "ceterms:latitude": "46.07323", "ceterms:longitude": "-100.54688"}
    d = doc_with(**{"ceterms:jurisdiction": [jurisdiction(north_america)],
                    "ceterms:availableAt": [place("Ohio", 39.7, -84.2, locality="Dayton")]})
    assert d.points == [(39.7, -84.2)] and d.state == ["OH"]
    assert d.card["locations"] == [{"locality": "Dayton", "state": "OH", "lat": 39.7, "lon": -84.2}]


def test_region_as_code(registry: Registry) -> None:
    d = doc_of(registry, RA / "CareerBridge_Credential_WithAggregateDataProfile_API_Output.json")
    assert d.state == ["WA"] and d.duration == 9.0 and d.status == ["Active"]


@pytest.mark.parametrize("region, country, expected", [
    ("Ohio", None, "OH"), ("OH", "USA", "OH"), ("oh", "United States", "OH"), ("State of Ohio", None, "OH"),
    ("N. Carolina", None, "NC"), ("District of Columbia", None, "DC"), ("Puerto Rico", "US", "PR"),
    ("Ontario", "Canada", None), ("ON", None, None), ("Texas", "Mexico", None), ("", None, None),
])
def test_state_codes(region: str, country: str | None, expected: str | None) -> None:
    assert state_code(region, country) == expected


def test_taxonomy_codes() -> None:
    assert taxonomy.soc_code("29-1141.00") == "29-1141"
    assert taxonomy.soc_code(None, "https://www.onetonline.org/link/summary/53-3032.00") == "53-3032"
    assert taxonomy.naics_terms("336111") == ("31-33", "336", "3361", "33611", "336111")
    assert taxonomy.normalize_naics_filter("45") == "44-45"
    assert taxonomy.cip_code("51.3801") == "51.3801" and taxonomy.cip_code("49-0205") == "49.0205"
    assert taxonomy.soc_group_title("29") == "Healthcare Practitioners and Technical Occupations"


def test_facts_stated_by_other_records() -> None:
    college, board, agency, cred, nxt, tv, old_tv, lst = (ctid() for _ in range(8))
    graphs = [
        organization(college, "Sinclair College"), organization(board, "Welding Board"),
        organization(agency, "Ohio Agency"),
        credential(cred, "Welding Level 1", board, places=[place("Ohio", 39.7, -84.2)]),
        credential(nxt, "Welding Level 2", board, **{"ceterms:preparationFrom": [
            {"@type": "ceterms:ConditionProfile",
             "ceterms:targetCredential": [f"http://registry.test/resources/{cred}"]}]}),
        transfer_value(tv, college, cred, 9, start="2020-01-01", end="2027-06-30"),
        transfer_value(old_tv, college, cred, 30, start="2010-01-01", end="2015-06-30"),
        collection(lst, "Ohio list", agency, [(cred, "2019-07-01", "2021-06-30"), (cred, "2021-07-01", None),
                                              (cred, "2023-01-01", None)]),
    ]
    resolver = Resolver(*graphs)
    d = derive(Graph(graphs[3]), cred, "2026-01-01T00:00:00Z", resolver, TODAY)
    assert d is not None
    assert d.credits == 9.0  # the 30-credit offer ended in 2015
    assert d.valid_until == timeline.parse_day("2027-07-01")  # when the 9-credit offer ends
    assert d.card["credit"]["offers"][0]["colleges"] == [{"ctid": college, "name": "Sinclair College"}]
    assert [p["ctid"] for p in d.card["prepares_for"]] == [nxt]
    # Adjacent and overlapping memberships merge into one interval.
    assert d.card["lists"] == [{"ctid": lst, "name": "Ohio list", "intervals": [["2019-07-01", None]]}]
    assert set(d.link_dst) == set() and college in resolver.read and board in resolver.read
    assert set(timeline.day_terms(lst, TODAY)) & set(d.list_at)
    tv_doc = derive(Graph(graphs[5]), tv, "2026-01-01T00:00:00Z", resolver, TODAY)
    assert tv_doc is not None and tv_doc.kind == "transfer_value" and tv_doc.link_dst == [cred]
    assert tv_doc.credits == 9.0 and tv_doc.card["transfer"]["from"] == [{"ctid": cred, "name": "Welding Level 1"}]


def test_assessment_with_an_embedded_owner(registry: Registry) -> None:
    d = doc_of(registry, SAMPLES / "credential-registry" / "2_import.json")
    assert d.kind == "assessment" and d.type == "ceterms:AssessmentProfile"
    assert d.types == ["ceterms:AssessmentProfile"] and d.name == "Pharmacy Technician Program"
    assert d.card["owner"] == [{"ctid": None, "name": "Indiana Board of Pharmacy"}]
    assert d.organizations == ["Indiana Board of Pharmacy"] and d.owner == []
    assert d.card["description"].startswith("You will be prepared to sit for the Pharmacy Technician")
    assert d.lang == []  # "English" is no language tag, and the name has no language


def test_assessment_delivery_status_and_cost() -> None:
    org, exam = ctid(), ctid()
    graph = credential(exam, "Welding Performance Test", org, type_="ceterms:AssessmentProfile", status=None,
                       places=[place("Ohio", 39.7, -84.2)], price=150, duration="P3M", **{
                           "ceterms:assessmentDeliveryType": [{"@type": "ceterms:CredentialAlignmentObject",
                                                               "ceterms:targetNode": "deliveryType:InPerson"}],
                           "ceterms:lifeCycleStatusType": {"@type": "ceterms:CredentialAlignmentObject",
                                                           "ceterms:targetNode": "lifeCycle:Active"}})
    d = derive(Graph(graph), exam, "2026-01-01T00:00:00Z", Resolver(organization(org, "Welding Board")), TODAY)
    assert d is not None and d.kind == "assessment"
    assert d.delivery == ["InPerson"] and d.status == ["Active"] and d.card["status"] == "Active"
    assert d.owner == [org] and d.card["owner"] == [{"ctid": org, "name": "Welding Board"}]
    assert d.state == ["OH"] and d.points == [(39.7, -84.2)] and d.cost == 150.0
    assert d.duration == 3.0


def test_records_without_search_documents() -> None:
    framework = {"@context": "https://credreg.net/ctdl/schema/context/json", "@graph": [{
        "@id": "http://registry.test/resources/ce-5e3de882-3b49-421b-b623-695c63587f4f",
        "@type": "ceasn:CompetencyFramework", "ceterms:ctid": "ce-5e3de882-3b49-421b-b623-695c63587f4f"}]}
    assert derive(Graph(framework), "ce-5e3de882-3b49-421b-b623-695c63587f4f", "", Resolver(), TODAY) is None
