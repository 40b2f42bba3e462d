"""GET /search and /search/suggest at the HTTP edge: every bad parameter is a 400 problem that
names it, limits hold, cursors belong to their search and are validated, and the routes are in /openapi.json."""
from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest
from starlette.testclient import TestClient

from search.query import MAX_QUERY_CHARS, encode_cursor, parse
from tests.search_fixtures import credential, ctid, organization, ref

BAD = [
    ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
    ({"q": " ".join(f"w{i}" for i in range(13))}, "q"),
    ({"type": "ceterms:Credentail"}, "type"),
    ({"kind": "widget"}, "kind"),
    ({"soc": "291141"}, "soc"),
    ({"soc_group": "2"}, "soc_group"),
    ({"naics": "1234567"}, "naics"),
    ({"cip": "51.3"}, "cip"),
    ({"state": "Atlantis"}, "state"),
    ({"state": ",".join(["OH"] * 21)}, "state"),
    ({"delivery": "in person"}, "delivery"),
    ({"lang": "english!"}, "lang"),
    ({"qa": "ce-nope"}, "qa"),
    ({"owner": "not-a-ctid"}, "owner"),
    ({"list": "12"}, "list"),
    ({"list_as_of": "2024-13-01"}, "list_as_of"),
    ({"cost_max": "cheap"}, "cost_max"),
    ({"cost_max": "-1"}, "cost_max"),
    ({"cost_max": "nan"}, "cost_max"),
    ({"duration_max_months": "inf"}, "duration_max_months"),
    ({"credit_min": "-3"}, "credit_min"),
    ({"near": "39.7"}, "near"),
    ({"near": "91,0"}, "near"),
    ({"near": "39.7,-84.2", "radius_km": "5000"}, "radius_km"),
    ({"radius_km": "10"}, "radius_km"),
    ({"sort": "random"}, "sort"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"facets": "color"}, "facets"),
    ({"facets": ",".join(["state", "type", "soc", "soc_group", "naics", "cip", "delivery", "audience",
                          "status", "lang", "qa", "owner", "list"])}, "facets"),
    ({"facets": "near"}, "facets"),
    ({"facet_size": "1000"}, "facet_size"),
    ({"cursor": "!!!"}, "cursor"),
    ({"cursor": "x" * 3000}, "cursor"),
    ({"stat": "OH"}, "stat"),
]


@pytest.mark.parametrize("params, parameter", BAD, ids=[p for _, p in BAD])
def test_bad_parameters_are_400_problems_naming_them(client: TestClient, params: dict[str, str],
                                                     parameter: str) -> None:
    response = client.get("/search", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["parameter"] == parameter
    assert problem["type"] == "urn:credreg:problem:bad-request" and problem["detail"]


def test_repeated_single_parameter_is_refused(client: TestClient) -> None:
    response = client.get("/search?sort=name&sort=cost")
    assert response.status_code == 400 and response.json()["parameter"] == "sort"


def test_a_query_word_no_document_holds_ranks_its_typo_matches_by_field(client: TestClient) -> None:
    # Tantivy: "nursinng" is in no document, so every match is one edit away; they rank by the
    # field it is in (the name first), not in index order (the description-only one came first).
    org, described, named = ctid(), ctid(), ctid()
    registry = client.app.state.registry
    for graph in (organization(org, "College"),
                  credential(described, "Patient Care Technician", org, description="A first step towards nursing."),
                  credential(named, "Nursing Aide", org)):
        registry.publish(registry.prepare(orjson.dumps(graph)), None, mode="import")
    body = client.get("/search", params={"q": "nursinng", "kind": "credential"}).json()
    assert [r["ctid"] for r in body["results"]] == [named, described]
    body = client.get("/search", params={"q": "nursing", "kind": "credential"}).json()
    assert [r["ctid"] for r in body["results"]] == [named, described]


def test_cursor_of_another_search_is_refused(client: TestClient) -> None:
    org = ctid()
    ids = [ctid() for _ in range(3)]
    for i, c in enumerate([organization(org, "College"), *(credential(x, f"Cert {n}", org) for n, x in
                                                            enumerate(ids))]):
        client.app.state.registry.publish(client.app.state.registry.prepare(orjson.dumps(c)), None,
                                          mode="import")
        assert i >= 0
    first = client.get("/search", params={"kind": "credential", "limit": 1}).json()
    assert first["next"]
    other = client.get("/search", params={"kind": "organization", "limit": 1, "cursor": first["next"]})
    assert other.status_code == 400 and other.json()["parameter"] == "cursor"
    forged = base64.urlsafe_b64encode(orjson.dumps({"f": "0" * 16, "a": 0, "o": 0})).decode()
    response = client.get("/search", params={"kind": "credential", "cursor": forged})
    assert response.status_code == 400 and response.json()["parameter"] == "cursor"
    second = client.get("/search", params={"kind": "credential", "limit": 1, "cursor": first["next"]})
    assert second.status_code == 200 and second.json()["results"][0]["ctid"] != first["results"][0]["ctid"]
    # A resume point of the Elasticsearch shape, for this very search: not an offset.
    query = parse([("kind", "credential"), ("limit", "1")], 100)
    shaped = client.get("/search", params={"kind": "credential", "limit": 1,
                                           "cursor": encode_cursor(query, ["cert 0", ids[0]], 1)})
    assert shaped.status_code == 400 and shaped.json()["parameter"] == "cursor"


def test_suggest_parameters(client: TestClient) -> None:
    assert client.get("/search/suggest", params={"q": "x" * 101}).json()["parameter"] == "q"
    assert client.get("/search/suggest", params={"q": "nur", "limit": "50"}).json()["parameter"] == "limit"
    assert client.get("/search/suggest", params={"prefix": "nur"}).json()["parameter"] == "prefix"
    assert client.get("/search/suggest", params={"q": ""}).json() == {"q": "", "suggestions": []}


def test_empty_index_answers(client: TestClient) -> None:
    body = client.get("/search", params={"q": "anything", "facets": "state,cost_max,list"}).json()
    assert body["total"] == 0 and body["results"] == [] and body["next"] is None
    assert body["facets"]["state"] == {} and body["facets"]["list"] == {}
    assert set(body["facets"]["cost_max"].values()) == {0}


def test_openapi_describes_search(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    search = paths["/search"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"q", "type", "soc", "naics", "cip", "state", "near", "radius_km", "cost_max",
            "duration_max_months", "delivery", "audience", "qa", "list", "list_as_of", "credit_min",
            "owner", "status", "lang", "sort", "facets", "cursor", "limit"} <= names
    assert "400" in search["responses"] and "/search/suggest" in paths


def test_parse_defaults_and_normalization() -> None:
    q = parse([("q", "Nursing  Assistant!"), ("state", "ohio,KY"), ("soc", "29-1141.00"),
               ("type", "Degree"), ("naics", "31"), ("lang", "en-US")], 50)
    assert q.terms == ("nursing", "assistant") and q.sort == "relevance" and q.limit == 20
    assert q.filters == {"type": ("ceterms:Degree",), "soc": ("29-1141",), "naics": ("31-33",),
                         "state": ("OH", "KY"), "lang": ("en",)}
    assert parse([], 10).limit == 10 and parse([], 10).sort == "name"
    assert parse([("sort", "relevance")], 10).sort == "name"  # nothing to score without q


def test_facet_labels_follow_a_rename(client: TestClient) -> None:
    # Labels of organizations and lists are kept per index generation: a commit renaming one
    # must show the new name on the next search.
    registry = client.app.state.registry
    org, cred = ctid(), ctid()
    for doc in (organization(org, "Old College Name"), credential(cred, "Welding Cert", org)):
        registry.publish(registry.prepare(orjson.dumps(doc)), None, mode="import")
    params = {"kind": "credential", "facets": "owner"}
    assert client.get("/search", params=params).json()["labels"]["owner"][org] == "Old College Name"
    registry.publish(registry.prepare(orjson.dumps(organization(org, "New College Name"))), None, mode="import")
    assert client.get("/search", params=params).json()["labels"]["owner"][org] == "New College Name"


def test_search_reads_its_own_writes_through_http_publishes(client: TestClient,
                                                            make_key: Callable[..., str]) -> None:
    # The search routes wait at the projector's barrier (registry/wiring.py), so what a PUT or
    # DELETE has answered is in the very next search, a rename of the owner included.
    org, cred = ctid(), ctid()
    headers = {"Authorization": f"Bearer {make_key(org)}", "Content-Type": "application/ld+json"}

    def put(doc: dict, **extra: str) -> str:
        response = client.put(f"/graph/{doc['@graph'][0]['ceterms:ctid']}", content=orjson.dumps(doc),
                              headers={**headers, **extra})
        assert response.status_code in (200, 201), response.text
        return response.headers["etag"]

    def found() -> list[dict]:
        response = client.get("/search", params={"q": "welding", "kind": "credential"})
        assert response.status_code == 200, response.text
        return response.json()["results"]

    org_etag = put(organization(org, "Old College Name"))
    cred_etag = put(credential(cred, "Welding Cert", org))
    assert [(r["ctid"], r["owner"]) for r in found()] == [(cred, [{"ctid": org, "name": "Old College Name"}])]
    put(organization(org, "New College Name"), **{"If-Match": org_etag})
    assert [r["owner"] for r in found()] == [[{"ctid": org, "name": "New College Name"}]]
    deleted = client.delete(f"/graph/{cred}", headers={**headers, "If-Match": cred_etag})
    assert deleted.status_code == 200, deleted.text
    assert found() == []


def publish_all(client: TestClient, *graphs: dict) -> None:
    registry = client.app.state.registry
    for graph in graphs:
        registry.publish(registry.prepare(orjson.dumps(graph)), None, mode="import")


def ctids_of(client: TestClient, **params: str) -> set[str]:
    response = client.get("/search", params={"limit": "100", **params})
    assert response.status_code == 200, response.text
    return {r["ctid"] for r in response.json()["results"]}


def test_cip_and_audience_filters_and_facets(client: TestClient) -> None:
    org, rn, aide, weld = ctid(), ctid(), ctid(), ctid()
    publish_all(client, organization(org, "College"),
                credential(rn, "Registered Nursing", org, cip=["51.3801"], audience=["AssociatesDegreeLevel"]),
                credential(aide, "Nurse Aide", org, cip=["51-3902"],
                           audience=["PostSecondaryLevel", "AssociatesDegreeLevel"]),
                credential(weld, "Welding", org, cip=["48.0508"]))
    assert ctids_of(client, cip="51") == {rn, aide} and ctids_of(client, cip="51.39") == {aide}
    assert ctids_of(client, cip="48.0508") == {weld}
    assert ctids_of(client, audience="AssociatesDegreeLevel") == {rn, aide}
    assert ctids_of(client, audience="audLevel:PostSecondaryLevel") == {aide}
    facets = client.get("/search", params={"kind": "credential", "facets": "cip,audience"}).json()["facets"]
    assert facets["cip"] == {"51": 2, "48": 1}  # families only
    assert facets["audience"] == {"AssociatesDegreeLevel": 2, "PostSecondaryLevel": 1}
    # Multi-select: the cip facet ignores its own filter, the audience facet counts within it.
    body = client.get("/search", params={"cip": "48", "facets": "cip,audience"}).json()
    assert body["total"] == 1 and body["facets"]["cip"] == {"51": 2, "48": 1}
    assert body["facets"]["audience"] == {}


def test_alternate_names_are_found_by_q(client: TestClient) -> None:
    org, cna = ctid(), ctid()
    publish_all(client, organization(org, "College"), credential(
        cna, "Certified Nursing Assistant", org,
        **{"ceterms:alternateName": {"en-US": ["STNA", "State Tested Nurse Aide"], "es": ["Auxiliar"]}}))
    assert ctids_of(client, q="stna") == {cna}
    assert ctids_of(client, q="tested aide") == {cna}
    assert ctids_of(client, q="auxiliar") == {cna}
    assert [s["ctid"] for s in client.get("/search/suggest", params={"q": "stn"}).json()["suggestions"]] == [cna]


def test_quality_assurance_by_recognition_and_regulation(client: TestClient) -> None:
    college, board, state, recognized, regulated, plain = (ctid() for _ in range(6))
    qa_type = "ceterms:QACredentialOrganization"
    publish_all(
        client, organization(college, "College"),
        organization(board, "National Nursing Board", type_=qa_type),
        organization(state, "Ohio Board of Nursing", type_=qa_type),
        credential(recognized, "Nurse Aide", college, **{"ceterms:recognizedBy": [ref(board)]}),
        credential(regulated, "Practical Nurse License", college, type_="ceterms:License", **{
            "ceterms:regulatedIn": [{"@type": "ceterms:JurisdictionProfile",
                                     "ceterms:mainJurisdiction": [{"@type": "ceterms:Place",
                                                                   "ceterms:name": {"en-US": "Ohio"}}],
                                     "ceterms:assertedBy": [ref(state)]}]}),
        credential(plain, "Phlebotomy", college, **{"ceterms:regulatedBy": [ref(state)]}))
    assert ctids_of(client, qa=board) == {recognized}
    assert ctids_of(client, qa=state) == {regulated, plain}
    assert ctids_of(client, qa=f"{board},{state}") == {recognized, regulated, plain}
    body = client.get("/search", params={"kind": "credential", "facets": "qa"}).json()
    assert body["facets"]["qa"] == {state: 2, board: 1}
    assert body["labels"]["qa"] == {state: "Ohio Board of Nursing", board: "National Nursing Board"}
    cards = {r["ctid"]: r["qa"] for r in body["results"]}
    assert cards[recognized] == [{"relation": "recognized", "ctid": board, "name": "National Nursing Board"}]
    assert cards[regulated] == [{"relation": "regulated", "ctid": state, "name": "Ohio Board of Nursing"}]
    assert cards[plain] == [{"relation": "regulated", "ctid": state, "name": "Ohio Board of Nursing"}]
