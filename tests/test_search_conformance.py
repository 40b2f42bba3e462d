"""The search conformance suite: the same cases and the same expected results against every
backend (Tantivy always; Elasticsearch when CREDREG_TEST_ELASTICSEARCH_URL names a server)."""
from __future__ import annotations

from typing import Any

import pytest

from search import tantivy_query
from search.geo import haversine_km
from tests.search_fixtures import (  # noqa: F401 - env is a fixture
    Env,
    collection,
    credential,
    ctid,
    env,
    organization,
    place,
    transfer_value,
)

DAYTON, COLUMBUS = (39.7589, -84.1916), (39.9612, -82.9988)
LOUISVILLE, INDIANAPOLIS, SALEM = (38.2527, -85.7585), (39.7684, -86.1581), (44.9429, -123.0351)


class Catalog:
    """A small registry: two organizations, a QA body, a state agency, six credentials, a state
    list with dated members, two transfer values (one expired)."""

    def __init__(self) -> None:
        self.college, self.board, self.qa, self.agency = ctid(), ctid(), ctid(), ctid()
        self.nurse, self.rn, self.weld, self.weld2, self.typo, self.bach = (ctid() for _ in range(6))
        self.ohio_list, self.tv_weld, self.tv_nurse = ctid(), ctid(), ctid()

    def graphs(self) -> list[dict[str, Any]]:
        c = self
        return [
            organization(c.college, "Buckeye Technical College", region="Ohio"),
            organization(c.board, "National Welding Board"),
            organization(c.qa, "Accreditation Council for Healthcare", type_="ceterms:QACredentialOrganization"),
            organization(c.agency, "Ohio Workforce Council", type_="ceterms:QACredentialOrganization",
                         region="OH"),
            credential(c.nurse, "Nursing Assistant Certificate", c.college, soc=[("31-1131", "Nursing Assistants")],
                       naics=["621610"], cip=["51.3902"], places=[place("Ohio", *DAYTON, locality="Dayton")],
                       price=1200, duration="P6M", delivery=["InPerson"], audience=["PostSecondaryLevel"],
                       **{"ceterms:accreditedBy": [f"http://registry.test/resources/{c.qa}"]}),
            credential(c.rn, "Registered Nursing Associate Degree", c.college,
                       type_="ceterms:AssociateOfAppliedScienceDegree", soc=[("29-1141.00", "Registered Nurses")],
                       naics=["622110"], cip=["51.3801"], places=[place("Ohio", *COLUMBUS, locality="Columbus")],
                       price=9500, duration="P2Y", delivery=["BlendedDelivery"],
                       audience=["AssociatesDegreeLevel"]),
            credential(c.weld, "Welding Level 1 Certification", c.board, type_="ceterms:Certification",
                       soc=[("51-4121", "Welders, Cutters, Solderers, and Brazers")], naics=["333992"],
                       places=[place("Kentucky", *LOUISVILLE, locality="Louisville")], price=300,
                       duration="P3M", delivery=["InPerson"], keywords=["welding", "fabrication"]),
            credential(c.weld2, "Welding Level 2 Certification", c.board, type_="ceterms:Certification",
                       soc=[("51-4121", "Welders, Cutters, Solderers, and Brazers")],
                       places=[place("KY", *LOUISVILLE, locality="Louisville")], price=450, duration="P6M",
                       **{"ceterms:preparationFrom": [{"@type": "ceterms:ConditionProfile",
                                                      "ceterms:targetCredential": [
                                                          f"http://registry.test/resources/{c.weld}"]}]}),
            credential(c.typo, "Nursng Home Aide Badge", c.college, type_="ceterms:DigitalBadge",
                       places=[place("Indiana", *INDIANAPOLIS, locality="Indianapolis")],
                       delivery=["OnlineOnly"], languages=["es"]),
            credential(c.bach, "Bachelor of Science in Nursing", c.college, type_="ceterms:BachelorDegree",
                       places=[place("Oregon", *SALEM, locality="Salem")], price=40000, duration="P4Y",
                       status="Deprecated"),
            collection(c.ohio_list, "Ohio Approved Credentials", c.agency, region="Ohio", members=[
                (c.nurse, "2019-07-01", None), (c.weld, "2020-07-01", "2024-06-30"),
                (c.rn, "2030-01-01", None)]),
            transfer_value(c.tv_weld, c.college, c.weld, 6),
            transfer_value(c.tv_nurse, c.college, c.nurse, 3, start="2015-01-01", end="2019-12-31"),
        ]

    @property
    def credentials(self) -> set[str]:
        return {self.nurse, self.rn, self.weld, self.weld2, self.typo, self.bach}


@pytest.fixture
def cat(env: Env) -> Catalog:  # noqa: F811
    catalog = Catalog()
    env.publish(*catalog.graphs())
    return catalog


def names(body: dict[str, Any]) -> list[str]:
    return [r["name"] for r in body["results"]]


# --- full text ---------------------------------------------------------------------------------
def test_text_matches_every_word(env: Env, cat: Catalog) -> None:  # noqa: F811
    assert env.ctids(q="welding certification") == {cat.weld, cat.weld2}
    assert env.ctids(q="welding associate") == set()
    assert env.ctids(q="fabrication") == {cat.weld}  # keywords
    assert env.ctids(q="brazers") == {cat.weld, cat.weld2}  # occupation titles
    assert cat.rn in env.ctids(q="buckeye")  # organization names


def test_typo_one_edit_away_matches_and_ranks_below_exact(env: Env, cat: Catalog) -> None:  # noqa: F811
    body = env.search(q="nursing", kind="credential")
    assert set(r["ctid"] for r in body["results"]) == {cat.nurse, cat.rn, cat.bach, cat.typo}
    assert body["results"][-1]["ctid"] == cat.typo  # "Nursng" is one edit away
    body = env.search(q="nursng", kind="credential")
    assert body["results"][0]["ctid"] == cat.typo  # exact on the misspelled name comes first
    assert {r["ctid"] for r in body["results"][1:]} == {cat.nurse, cat.rn, cat.bach}
    assert env.ctids(q="nusring", kind="credential") >= {cat.nurse, cat.rn}  # a transposition
    assert env.ctids(q="nrsg") == set()  # two edits


def test_every_exact_match_ranks_above_every_match_one_edit_away(env: Env, cat: Catalog) -> None:  # noqa: F811
    # "nursing" only in a description still ranks above "Nursng" in a name (the name field's
    # boost must not lift a typo over an exact match elsewhere).
    care = ctid()
    env.publish(credential(care, "Patient Care Technician", cat.college,
                           description="A first step towards nursing careers in hospitals."))
    order = [r["ctid"] for r in env.search(q="nursing", kind="credential")["results"]]
    assert order[-1] == cat.typo
    assert set(order) == {cat.nurse, cat.rn, cat.bach, care, cat.typo}


def test_typos_are_forgiven_in_every_text_field(env: Env, cat: Catalog) -> None:  # noqa: F811
    assert cat.rn in env.ctids(q="buckey")  # organization name "Buckeye Technical College"
    assert env.ctids(q="hadns", kind="credential") == cat.credentials  # descriptions: "hands-on training"
    assert env.ctids(q="fabricaton") == {cat.weld}  # keywords
    assert env.ctids(q="brazres") == {cat.weld, cat.weld2}  # occupation titles, a transposition


@pytest.mark.parametrize("regex_from", [tantivy_query.REGEX_POSTINGS_PER_LETTER, 0])
def test_long_words_are_typo_tolerant_too(env: Env, cat: Catalog, regex_from: int,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # With 0, Tantivy tries the typo regex for every word: a 34-letter word's is past its size
    # limit, so the fuzzy query stands in, the first time and the next.
    monkeypatch.setattr(tantivy_query, "REGEX_POSTINGS_PER_LETTER", regex_from)
    long = ctid()
    env.publish(credential(long, "Supercalifragilisticexpialidocious Award", cat.college))
    assert env.ctids(q="supercalifragilisticexpialidocious") == {long}
    for _ in range(2):
        assert env.ctids(q="supercalifragilisticexpialidocous") == {long}  # one letter left out
    assert env.ctids(q="supercalifragilisticexpialidoc") == set()  # four


def test_highlights(env: Env, cat: Catalog) -> None:  # noqa: F811
    body = env.search(q="nursing assistant")
    first = body["results"][0]
    assert first["ctid"] == cat.nurse
    assert first["highlights"]["name"] == "<em>Nursing</em> <em>Assistant</em> Certificate"


# --- filters -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, expected", [
    ({"type": "Degree"}, {"rn", "bach"}),
    ({"type": "ceterms:AssociateDegree"}, {"rn"}),
    ({"type": "ceterms:Credential"}, {"nurse", "rn", "weld", "weld2", "typo", "bach"}),
    ({"type": "Certification,DigitalBadge"}, {"weld", "weld2", "typo"}),
    ({"kind": "transfer_value"}, {"tv_weld", "tv_nurse"}),
    ({"kind": "collection"}, {"ohio_list"}),
    ({"soc": "29-1141"}, {"rn"}),
    ({"soc": "29-1141.00"}, {"rn"}),
    ({"soc_group": "51"}, {"weld", "weld2"}),
    ({"soc_group": "29-0000"}, {"rn"}),
    ({"naics": "62"}, {"nurse", "rn"}),
    ({"naics": "6216"}, {"nurse"}),
    ({"naics": "33"}, {"weld"}),
    ({"naics": "31-33"}, {"weld"}),
    ({"cip": "51"}, {"nurse", "rn"}),
    ({"cip": "51.38"}, {"rn"}),
    ({"cip": "51.3902"}, {"nurse"}),
    ({"state": "OH", "kind": "credential"}, {"nurse", "rn"}),
    ({"state": "Ohio"}, {"nurse", "rn", "college", "agency", "ohio_list"}),
    ({"state": "KY,IN"}, {"weld", "weld2", "typo"}),
    ({"delivery": "InPerson"}, {"nurse", "weld"}),
    ({"delivery": "deliveryType:OnlineOnly"}, {"typo"}),
    ({"audience": "AssociatesDegreeLevel"}, {"rn"}),
    ({"status": "Deprecated"}, {"bach"}),
    ({"lang": "es"}, {"typo"}),
    ({"owner": "board"}, {"weld", "weld2"}),
    ({"qa": "qa"}, {"nurse"}),
    ({"cost_max": "450"}, {"weld", "weld2"}),
    ({"cost_max": "449.99"}, {"weld"}),
    ({"duration_max_months": "6"}, {"nurse", "weld", "weld2"}),
    ({"credit_min": "1"}, {"weld", "tv_weld"}),
    ({"credit_min": "6.5"}, set()),
    ({"state": "OH", "type": "Degree", "cost_max": "10000"}, {"rn"}),
])
def test_filters(env: Env, cat: Catalog, params: dict[str, str], expected: set[str]) -> None:  # noqa: F811
    resolved = {k: ",".join(getattr(cat, v, v) for v in value.split(",")) for k, value in params.items()}
    assert env.ctids(**resolved) == {getattr(cat, e) for e in expected}
    assert env.search(**resolved)["total"] == len(expected)


def test_near_radius(env: Env, cat: Catalog) -> None:  # noqa: F811
    to_columbus = haversine_km(*DAYTON, *COLUMBUS)
    near = f"{DAYTON[0]},{DAYTON[1]}"
    assert env.ctids(near=near, radius_km=to_columbus - 1) == {cat.nurse}
    assert env.ctids(near=near, radius_km=to_columbus + 1) == {cat.nurse, cat.rn}
    assert env.ctids(near=near, radius_km=1000, kind="credential") == cat.credentials - {cat.bach}


def test_lists_today_and_as_of(env: Env, cat: Catalog) -> None:  # noqa: F811
    assert env.ctids(list=cat.ohio_list) == {cat.nurse}  # the welding member ended in 2024
    assert env.ctids(list=cat.ohio_list, list_as_of="2021-01-01") == {cat.nurse, cat.weld}
    assert env.ctids(list=cat.ohio_list, list_as_of="2024-06-30") == {cat.nurse, cat.weld}
    assert env.ctids(list=cat.ohio_list, list_as_of="2024-07-01") == {cat.nurse}
    assert env.ctids(list=cat.ohio_list, list_as_of="2031-01-01") == {cat.nurse, cat.rn}
    assert env.ctids(list=cat.ohio_list, list_as_of="2019-06-30") == set()
    card = env.search(q="nursing assistant")["results"][0]
    assert card["lists"] == [{"ctid": cat.ohio_list, "name": "Ohio Approved Credentials",
                              "added": "2019-07-01", "until": None}]
    weld = next(r for r in env.search(q="welding", list_as_of="2022-01-01")["results"] if r["ctid"] == cat.weld)
    assert weld["lists"][0]["added"] == "2020-07-01"
    assert weld["list_history"][0]["intervals"] == [["2020-07-01", "2024-06-30"]]


# --- facets ------------------------------------------------------------------------------------
def test_facets_count_values_of_the_result_set(env: Env, cat: Catalog) -> None:  # noqa: F811
    body = env.search(kind="credential", facets="state,soc_group,delivery,type,cost_max,credit_min")
    f = body["facets"]
    assert f["state"] == {"OH": 2, "KY": 2, "IN": 1, "OR": 1}
    assert f["soc_group"] == {"51": 2, "29": 1, "31": 1}
    assert f["delivery"] == {"InPerson": 2, "BlendedDelivery": 1, "OnlineOnly": 1}
    assert f["type"]["ceterms:Credential"] == 6 and f["type"]["ceterms:Degree"] == 2
    assert f["cost_max"] == {"100": 0, "250": 0, "500": 2, "1000": 2, "2500": 3, "5000": 3,
                             "10000": 4, "25000": 4}
    assert f["credit_min"]["1"] == 1 and f["credit_min"]["6"] == 1 and f["credit_min"]["12"] == 0
    assert body["labels"]["state"]["OH"] == "Ohio"
    assert body["labels"]["soc_group"]["51"] == "Production Occupations"


def test_facets_are_multi_select(env: Env, cat: Catalog) -> None:  # noqa: F811
    body = env.search(kind="credential", state="OH", facets="state,type")
    assert body["total"] == 2
    # The state facet ignores the state filter (other states stay selectable) ...
    assert body["facets"]["state"] == {"OH": 2, "KY": 2, "IN": 1, "OR": 1}
    # ... while every other facet counts within it.
    assert body["facets"]["type"]["ceterms:Credential"] == 2
    assert body["facets"]["type"]["ceterms:AssociateDegree"] == 1
    body = env.search(kind="credential", state="OH,KY", cost_max="1000", facets="state,cost_max")
    assert body["facets"]["state"] == {"KY": 2}  # the Ohio ones cost more than 1,000
    assert body["facets"]["cost_max"]["1000"] == 2 and body["facets"]["cost_max"]["10000"] == 4


def test_list_facet_counts_members_on_the_day(env: Env, cat: Catalog) -> None:  # noqa: F811
    assert env.search(facets="list")["facets"]["list"] == {cat.ohio_list: 1}
    assert env.search(facets="list", list_as_of="2022-01-01")["facets"]["list"] == {cat.ohio_list: 2}
    body = env.search(facets="list,owner,qa", list_as_of="2031-01-01")
    assert body["facets"]["list"] == {cat.ohio_list: 2}
    assert body["labels"]["list"][cat.ohio_list] == "Ohio Approved Credentials"
    assert body["labels"]["qa"][cat.qa] == "Accreditation Council for Healthcare"


# --- order and pages ---------------------------------------------------------------------------
def test_sorts(env: Env, cat: Catalog) -> None:  # noqa: F811
    assert [r["ctid"] for r in env.search(kind="credential", sort="cost")["results"]] == [
        cat.weld, cat.weld2, cat.nurse, cat.rn, cat.bach, cat.typo]
    assert [r["ctid"] for r in env.search(kind="credential", sort="duration")["results"]][:4] == [
        cat.weld, cat.nurse, cat.weld2, cat.rn] or [r["ctid"] for r in env.search(
            kind="credential", sort="duration")["results"]][:4] == [cat.weld, cat.weld2, cat.nurse, cat.rn]
    assert names(env.search(kind="credential", sort="name")) == sorted(names(env.search(kind="credential")),
                                                                       key=str.lower)
    newest = env.search(sort="newest")["results"]
    assert [r["modified"] for r in newest] == sorted((r["modified"] for r in newest), reverse=True)


def test_cursor_pages_cover_the_results_once(env: Env, cat: Catalog) -> None:  # noqa: F811
    seen: list[str] = []
    params: dict[str, Any] = {"kind": "credential", "limit": 2, "sort": "name"}
    pages = 0
    while True:
        response = env.client.get("/search", params=params)
        body = response.json()
        pages += 1
        assert body["total"] == 6
        seen += [r["ctid"] for r in body["results"]]
        if not body["next"]:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith('>; rel="next"')
        params["cursor"] = body["next"]
    assert pages == 3 and len(seen) == 6 and set(seen) == cat.credentials


@pytest.mark.parametrize("sort", ["name", "newest", "cost", "duration"])
def test_paging_through_everything_in_any_order(env: Env, cat: Catalog, sort: str) -> None:  # noqa: F811
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3, "sort": sort}
    while True:
        body = env.search(**params)
        assert body["total"] == 13
        seen += [r["ctid"] for r in body["results"]]
        if not body["next"]:
            break
        params["cursor"] = body["next"]
    assert len(seen) == len(set(seen)) == 13


def test_result_cards_render_without_another_request(env: Env, cat: Catalog) -> None:  # noqa: F811
    card = env.search(q="welding level 1")["results"][0]
    assert card["ctid"] == cat.weld and card["type"] == "ceterms:Certification"
    assert card["name"] == "Welding Level 1 Certification"
    assert card["owner"] == [{"ctid": cat.board, "name": "National Welding Board"}]
    assert card["occupations"] == [{"code": "51-4121", "title": "Welders, Cutters, Solderers, and Brazers"}]
    assert card["states"] == ["KY"] and card["cost"] == {"price": 300.0, "currency": "USD"}
    assert card["duration_months"] == 3.0 and card["delivery"] == ["InPerson"]
    assert card["credit"]["max"] == 6.0
    offer = card["credit"]["offers"][0]
    assert offer["colleges"] == [{"ctid": cat.college, "name": "Buckeye Technical College"}]
    assert offer["for"] == ["Associate of Applied Science in Nursing"] and offer["end"] == "2099-06-30"
    assert card["prepares_for"] == [{"ctid": cat.weld2, "name": "Welding Level 2 Certification",
                                     "type": "ceterms:Certification"}]
    nurse = env.search(q="nursing assistant")["results"][0]
    assert nurse["credit"]["max"] is None and nurse["credit"]["offers"][0]["active"] is False
    assert nurse["qa"] == [{"relation": "accredited", "ctid": cat.qa,
                            "name": "Accreditation Council for Healthcare"}]


# --- autocomplete ------------------------------------------------------------------------------
def test_suggest(env: Env, cat: Catalog) -> None:  # noqa: F811
    body = env.client.get("/search/suggest", params={"q": "weld"}).json()
    texts = [s["text"] for s in body["suggestions"]]
    assert texts[:2] == ["Welding Level 1 Certification", "Welding Level 2 Certification"]
    occupations = [s for s in body["suggestions"] if s["kind"] == "occupation"]
    assert occupations[0] == {"text": "Welders, Cutters, Solderers, and Brazers", "kind": "occupation",
                              "code": "51-4121", "count": 2}
    body = env.client.get("/search/suggest", params={"q": "buck"}).json()
    assert body["suggestions"][0] == {"text": "Buckeye Technical College", "kind": "organization",
                                      "ctid": cat.college}
    body = env.client.get("/search/suggest", params={"q": "nursing as"}).json()
    assert [s["text"] for s in body["suggestions"]] == [
        "Nursing Assistant Certificate", "Registered Nursing Associate Degree",  # names first
        "Nursing Assistants"]  # then occupations in the index
    one_letter = env.client.get("/search/suggest", params={"q": "nursing a"}).json()["suggestions"]
    assert one_letter == env.client.get("/search/suggest", params={"q": "nursing"}).json()["suggestions"]


# --- the index follows what the results depend on ---------------------------------------------
def test_publish_is_searchable_when_the_call_returns(env: Env, cat: Catalog) -> None:  # noqa: F811
    new = ctid()
    env.publish(credential(new, "Phlebotomy Technician Certificate", cat.college))
    assert env.ctids(q="phlebotomy") == {new}


def test_organization_rename_updates_its_credentials(env: Env, cat: Catalog) -> None:  # noqa: F811
    env.publish(organization(cat.board, "American Welding Society"))
    assert env.ctids(q="american welding society", kind="credential") == {cat.weld, cat.weld2}
    card = env.search(q="welding level 2")["results"][0]
    assert card["owner"][0]["name"] == "American Welding Society"


def test_list_changes_update_members(env: Env, cat: Catalog) -> None:  # noqa: F811
    env.publish(collection(cat.ohio_list, "Ohio Approved Credentials", cat.agency, region="Ohio", members=[
        (cat.nurse, "2019-07-01", "2025-06-30"), (cat.weld2, "2025-07-01", None)]))
    assert env.ctids(list=cat.ohio_list) == {cat.weld2}
    assert env.ctids(list=cat.ohio_list, list_as_of="2022-01-01") == {cat.nurse}
    assert env.search(q="nursing assistant")["results"][0]["lists"] == []


def test_transfer_value_and_college_rename_update_the_credential(env: Env, cat: Catalog) -> None:  # noqa: F811
    env.publish(transfer_value(ctid(), cat.board, cat.weld2, 12))
    assert env.ctids(credit_min="10") == {cat.weld2} | {
        r["ctid"] for r in env.search(kind="transfer_value", credit_min="10")["results"]}
    env.publish(organization(cat.board, "Welding Institute"))
    card = env.search(q="welding level 2")["results"][0]
    assert card["credit"]["offers"][0]["colleges"][0]["name"] == "Welding Institute"


def test_stacking_links_show_on_both_ends(env: Env, cat: Catalog) -> None:  # noqa: F811
    level3 = ctid()
    env.publish(credential(level3, "Welding Level 3 Certification", cat.board, **{
        "ceterms:preparationFrom": [{"@type": "ceterms:ConditionProfile", "ceterms:targetCredential": [
            f"http://registry.test/resources/{cat.weld2}"]}]}))
    card = env.search(q="welding level 2")["results"][0]
    assert card["prepares_for"][0]["ctid"] == level3
    assert card["prepared_by"][0]["ctid"] == cat.weld


def test_deletes_leave_the_index(env: Env, cat: Catalog) -> None:  # noqa: F811
    env.registry.delete(cat.weld2, None, None)
    assert env.ctids(q="welding", kind="credential") == {cat.weld}
    assert env.search(q="welding level 1")["results"][0]["prepares_for"] == []
    env.registry.delete(cat.board, None, None)
    assert env.search(q="welding level 1")["results"][0]["owner"] == [{"ctid": cat.board, "name": None}]
    env.registry.purge(cat.tv_weld, None)
    assert env.ctids(credit_min="1") == set()
