"""The HTTP API: publishing, reading, history, change log, errors."""
from __future__ import annotations

import orjson
import pyoxigraph as ox
import pytest
from pyld import jsonld
from rdflib import Graph
from rdflib.compare import isomorphic
from starlette.testclient import TestClient

from ctdl.context import document_loader
from tests.conftest import BASE, ORG, OTHER_ORG, graph, new_ctid, organization

JSONLD = {"Content-Type": "application/ld+json"}


def put(client: TestClient, doc: dict, headers: dict, **extra: str):  # type: ignore[no-untyped-def,type-arg]
    ctid = doc["@graph"][0]["ceterms:ctid"]
    return client.put(f"/graph/{ctid}", content=orjson.dumps(doc), headers={**JSONLD, **headers,
                                                                            **extra})


def test_put_creates_then_replace_needs_if_match(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    created = put(client, doc, org_headers)
    assert created.status_code == 201 and created.json()["version"] == 1
    etag = created.headers["etag"]

    changed = graph(ctid, name="Welding Level 2")
    assert put(client, changed, org_headers).status_code == 428
    assert put(client, changed, org_headers, **{"If-Match": '"stale"'}).status_code == 412
    replaced = put(client, changed, org_headers, **{"If-Match": etag})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert replaced.headers["etag"] != etag


def test_republishing_the_same_graph_is_unchanged(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    etag = put(client, doc, org_headers).headers["etag"]
    again = put(client, doc, org_headers, **{"If-Match": etag})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["version"] == 1


def test_post_creates_from_the_envelope_ctid(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    response = client.post("/graph", content=orjson.dumps(doc), headers={**JSONLD, **org_headers})
    assert response.status_code == 201
    assert response.headers["location"] == f"/graph/{doc['@graph'][0]['ceterms:ctid']}"
    conflict = client.post("/graph", content=orjson.dumps(doc), headers={**JSONLD, **org_headers})
    assert conflict.status_code == 409


def test_path_ctid_must_match_the_graph(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    response = client.put(f"/graph/{new_ctid()}", content=orjson.dumps(graph()),
                          headers={**JSONLD, **org_headers})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_delete_leaves_a_tombstone(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    etag = put(client, doc, org_headers).headers["etag"]
    assert client.delete(f"/graph/{ctid}", headers=org_headers).status_code == 428
    deleted = client.delete(f"/graph/{ctid}", headers={**org_headers, "If-Match": etag})
    assert deleted.status_code == 200
    gone = client.get(f"/graph/{ctid}")
    assert gone.status_code == 410 and gone.json()["type"].endswith("gone")
    assert client.get(f"/resources/{ctid}").status_code == 410
    history = client.get(f"/graph/{ctid}/versions").json()["versions"]
    assert [v["action"] for v in history] == ["create", "delete"]
    # a later publish recreates it with the next version number
    again = put(client, doc, org_headers)
    assert again.status_code == 201 and again.json()["version"] == 3


def test_admin_purge_removes_physically(client: TestClient, org_headers: dict,  # type: ignore[type-arg]
                                        admin_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    put(client, doc, org_headers)
    assert client.delete(f"/graph/{ctid}?purge=true", headers=org_headers).status_code == 403
    assert client.delete(f"/graph/{ctid}?purge=true", headers=admin_headers).status_code == 204
    assert client.get(f"/graph/{ctid}").status_code == 404
    assert client.get(f"/graph/{ctid}/versions").status_code == 404


def test_versions_serve_each_past_graph(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    etag = put(client, doc, org_headers).headers["etag"]
    put(client, graph(ctid, name="Renamed"), org_headers, **{"If-Match": etag})
    first = client.get(f"/graph/{ctid}/versions/1")
    assert first.json()["@graph"][0]["ceterms:name"] == {"en-US": "Welding Level 1"}
    turtle = client.get(f"/graph/{ctid}/versions/2", headers={"Accept": "text/turtle"})
    assert turtle.status_code == 200 and "Renamed" in turtle.text
    assert client.get(f"/graph/{ctid}/versions/9").status_code == 404


def test_changes_feed_pages_with_cursor(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    ctids = []
    for _ in range(5):
        doc = graph()
        ctids.append(doc["@graph"][0]["ceterms:ctid"])
        put(client, doc, org_headers)
    page = client.get("/changes?after=0&limit=2")
    assert page.status_code == 200 and 'rel="next"' in page.headers["link"]
    seen = [c["ctid"] for c in page.json()["changes"]]
    url = page.json()["next"]
    while url:
        page = client.get(url)
        seen += [c["ctid"] for c in page.json()["changes"]]
        url = page.json()["next"]
    assert seen == ctids
    assert client.get("/changes?limit=0").status_code == 400
    assert client.get("/changes?after=x").status_code == 400


@pytest.mark.parametrize("accept, media", [
    ("application/ld+json", "application/ld+json"),
    ("text/turtle", "text/turtle; charset=utf-8"),
    ("application/n-triples", "application/n-triples; charset=utf-8"),
    ("application/n-quads", "application/n-quads; charset=utf-8"),
    ("text/html", "text/html; charset=utf-8"),
    ("*/*", "application/ld+json"),
    ("text/html;q=0.5, text/turtle;q=0.9", "text/turtle; charset=utf-8"),
    ("application/*", "application/ld+json"),
    ("text/turtle;q=0, */*;q=0.1", "application/ld+json"),
])
def test_content_negotiation(client: TestClient, org_headers: dict, accept: str,  # type: ignore[type-arg]
                             media: str) -> None:
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    put(client, doc, org_headers)
    for path in (f"/graph/{ctid}", f"/resources/{ctid}"):
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media
        assert "Accept" in [v.strip() for v in response.headers["vary"].split(",")]
        assert 'rel="alternate"; type="text/turtle"' in response.headers["link"]
        assert response.headers["etag"] and response.headers["last-modified"]


def test_unacceptable_accept_is_406_listing_offers(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    put(client, doc, org_headers)
    response = client.get(f"/graph/{doc['@graph'][0]['ceterms:ctid']}",
                          headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert "text/turtle" in response.json()["offered"]


def test_every_rdf_format_is_the_same_graph(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    put(client, doc, org_headers)
    graphs = []
    for accept, fmt in (("application/ld+json", None), ("text/turtle", ox.RdfFormat.TURTLE),
                        ("application/n-triples", ox.RdfFormat.N_TRIPLES),
                        ("application/n-quads", ox.RdfFormat.N_QUADS)):
        text = client.get(f"/graph/{ctid}", headers={"Accept": accept}).text
        if fmt is None:  # JSON-LD, read by the reference processor
            text = jsonld.to_rdf(orjson.loads(text), {"format": "application/n-quads",
                                                      "documentLoader": document_loader})
            fmt = ox.RdfFormat.N_QUADS
        quads = ox.parse(text.encode(), format=fmt)
        triples = [ox.Triple(q.subject, q.predicate, q.object) for q in quads]
        nt = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES).decode()
        graphs.append(Graph().parse(data=nt, format="nt"))
    assert len(graphs[0]) > 5
    assert all(isomorphic(graphs[0], g) for g in graphs[1:])


def test_expanded_profile(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    put(client, doc, org_headers)
    response = client.get(f"/graph/{ctid}", headers={
        "Accept": 'application/ld+json; profile="http://www.w3.org/ns/json-ld#expanded"'})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert "https://purl.org/ctdl/terms/name" in orjson.dumps(body).decode()


def test_conditional_get_answers_304(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    etag = put(client, doc, org_headers).headers["etag"]
    assert client.get(f"/graph/{ctid}", headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/graph/{ctid}", headers={"If-None-Match": '"x"'}).status_code == 200


def test_same_graph_in_any_serialization_has_the_same_etag(client: TestClient,  # type: ignore[type-arg]
                                                           org_headers: dict) -> None:
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    etag = put(client, doc, org_headers).headers["etag"]
    turtle = client.get(f"/graph/{ctid}", headers={"Accept": "text/turtle"}).content
    other = graph()
    other_ctid = other["@graph"][0]["ceterms:ctid"]
    # the same graph sent as Turtle: unchanged, same ETag
    again = client.put(f"/graph/{ctid}", content=turtle, headers={
        **org_headers, "Content-Type": "text/turtle", "If-Match": etag})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.headers["etag"] == etag
    # and a fresh graph published as N-Triples is stored and served back as JSON-LD
    nt = client.app.state.registry.prepare(orjson.dumps(other)).ntriples  # type: ignore[attr-defined]
    created = client.put(f"/graph/{other_ctid}", content=nt.encode(), headers={
        **org_headers, "Content-Type": "application/n-triples"})
    assert created.status_code == 201, created.text
    served = client.get(f"/graph/{other_ctid}").json()
    assert served["@graph"][0]["ceterms:ctid"] == other_ctid


def test_resource_embeds_referenced_blank_nodes(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    ctid = new_ctid()
    doc = graph(ctid, **{"ceterms:estimatedCost": ["_:cost"]})
    doc["@graph"].append({"@id": "_:cost", "@type": "ceterms:CostProfile",
                          "ceterms:price": 120.0, "ceterms:currency": "USD"})
    assert put(client, doc, org_headers).status_code == 201
    resource = client.get(f"/resources/{ctid}").json()
    assert resource["ceterms:ctid"] == ctid
    assert resource["ceterms:estimatedCost"][0]["ceterms:price"] == 120.0
    assert resource["@context"] == "https://credreg.net/ctdl/schema/context/json"


def test_main_node_without_id_gets_the_registry_uri(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0].pop("ceterms:ctid")
    doc["@graph"][0].pop("@id")
    doc["@graph"][0]["ceterms:ctid"] = ctid
    del doc["@id"]
    assert put(client, doc, org_headers).status_code == 201
    served = client.get(f"/graph/{ctid}").json()
    assert served["@graph"][0]["@id"] == f"{BASE}/resources/{ctid}"
    assert served["@id"] == f"{BASE}/graph/{ctid}"


def test_foreign_uris_are_kept(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    ctid = new_ctid()
    doc = graph(ctid)
    doc["@id"] = f"https://credentialengineregistry.org/graph/{ctid}"
    doc["@graph"][0]["@id"] = f"https://credentialengineregistry.org/resources/{ctid}"
    assert put(client, doc, org_headers).status_code == 201
    served = client.get(f"/resources/{ctid}").json()
    assert served["@id"] == f"https://credentialengineregistry.org/resources/{ctid}"


def test_single_node_documents_are_wrapped(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    node = {"@context": doc["@context"], **doc["@graph"][0]}
    response = client.post("/graph", content=orjson.dumps(node), headers={**JSONLD, **org_headers})
    assert response.status_code == 201
    served = client.get(f"/graph/{response.json()['ctid']}").json()
    assert "@graph" in served and len(served["@graph"]) == 1


def test_upper_case_ctid_is_normalized(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    doc["@graph"][0]["ceterms:ctid"] = ctid.upper().replace("CE-", "ce-")
    response = client.post("/graph", content=orjson.dumps(doc), headers={**JSONLD, **org_headers})
    assert response.status_code == 201 and response.json()["ctid"] == ctid
    assert any(p["code"] == "ctid-normalized" for p in response.json()["problems"])
    assert client.get(f"/graph/{ctid.upper().replace('CE-', 'ce-')}").status_code == 200


def test_invalid_graph_is_422_listing_every_problem(client: TestClient,  # type: ignore[type-arg]
                                                    org_headers: dict) -> None:
    doc = graph()
    node = doc["@graph"][0]
    node["ceterms:notAProperty"] = "x"
    node["ceterms:ownedBy"] = ["_:nowhere"]
    response = put(client, doc, org_headers)
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:credreg:problem:validation-failed"
    codes = {p["code"] for p in body["problems"]}
    assert {"unknown-property", "unresolved-blank-node"} <= codes
    pointers = {p["pointer"] for p in body["problems"]}
    assert "/@graph/0/ceterms:notAProperty" in pointers
    assert client.get(f"/graph/{node['ceterms:ctid']}").status_code == 404  # nothing stored


@pytest.mark.parametrize("body, code", [
    (b"{not json", "malformed-json"),
    (b"[1, 2]", "not-a-json-ld-object"),
    (b'{"@context": "https://example.org/ctx", "@graph": []}', "remote-context-refused"),
])
def test_malformed_input_is_a_clear_problem(client: TestClient, org_headers: dict,  # type: ignore[type-arg]
                                            body: bytes, code: str) -> None:
    response = client.post("/graph", content=body, headers={**JSONLD, **org_headers})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [p["code"] for p in response.json()["problems"]] == [code]


def test_validate_is_a_dry_run(client: TestClient) -> None:
    doc = graph()
    report = client.post("/validate", content=orjson.dumps(doc), headers=JSONLD).json()
    assert report["valid"] is True and report["ctid"] == doc["@graph"][0]["ceterms:ctid"]
    assert client.get(f"/graph/{report['ctid']}").status_code == 404
    doc["@graph"][0]["@type"] = "ceterms:NoSuchType"
    bad = client.post("/validate", content=orjson.dumps(doc), headers=JSONLD).json()
    assert bad["valid"] is False and bad["problems"][0]["code"] == "unknown-type"


@pytest.mark.parametrize("request_args, status, slug", [
    (("GET", "/nowhere"), 404, "not-found"),
    (("PATCH", "/graph/ce-00000000-0000-4000-8000-000000000009"), 405, "method-not-allowed"),
    (("GET", "/graph/not-a-ctid"), 404, "not-found"),
    (("POST", "/graph"), 401, "unauthorized"),
])
def test_errors_are_problem_json(client: TestClient, request_args: tuple[str, str], status: int,
                                 slug: str) -> None:
    response = client.request(*request_args)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:credreg:problem:{slug}" and body["status"] == status
    assert "Traceback" not in response.text


def test_unsupported_media_type_is_415(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    response = client.post("/graph", content=b"x", headers={**org_headers,
                                                            "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


def test_body_over_the_limit_is_413(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    limit = client.app.state.registry.settings.max_body_bytes  # type: ignore[attr-defined]
    response = client.post("/graph", content=b" " * (limit + 1), headers={**JSONLD, **org_headers})
    assert response.status_code == 413
    assert response.json()["type"] == "urn:credreg:problem:payload-too-large"


def test_unexpected_failure_is_a_500_problem_without_trace(client: TestClient,  # type: ignore[type-arg]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.registry.store, "count", boom)  # type: ignore[attr-defined]
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    routes = {r.path for r in client.app.routes}  # type: ignore[attr-defined]
    documented = {p.replace("{n}", "{n:int}") for p in spec["paths"]}
    assert routes <= documented
    assert "text/turtle" in spec["paths"]["/graph/{ctid}"]["get"]["responses"]["200"]["content"]


def test_third_party_publishing_needs_a_grant(client: TestClient, make_key, registry) -> None:  # type: ignore[no-untyped-def]
    other = {"Authorization": f"Bearer {make_key(OTHER_ORG)}"}
    doc = graph(owned_by=ORG)
    assert put(client, doc, other).status_code == 403
    registry.store.grant(ORG, OTHER_ORG)
    created = put(client, doc, other)
    assert created.status_code == 201
    versions = client.get(f"/graph/{doc['@graph'][0]['ceterms:ctid']}/versions").json()
    assert versions["versions"][0]["publisher"] == OTHER_ORG


def test_a_key_cannot_take_over_another_organizations_record(client: TestClient, make_key,  # type: ignore[no-untyped-def]
                                                            org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph(owned_by=ORG)
    ctid = doc["@graph"][0]["ceterms:ctid"]
    etag = put(client, doc, org_headers).headers["etag"]
    thief = {"Authorization": f"Bearer {make_key(OTHER_ORG)}"}
    hijack = graph(ctid, owned_by=OTHER_ORG)
    assert put(client, hijack, thief, **{"If-Match": etag}).status_code == 403
    assert client.delete(f"/graph/{ctid}", headers={**thief, "If-Match": etag}).status_code == 403


def test_an_organization_publishes_its_own_record(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    assert put(client, organization(ORG), org_headers).status_code == 201
    assert put(client, organization(OTHER_ORG), org_headers).status_code == 403


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_writes_need_a_valid_key(client: TestClient, header: str | None) -> None:
    headers = {**JSONLD, **({"Authorization": header} if header else {})}
    response = client.post("/graph", content=orjson.dumps(graph()), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_revoked_key_is_refused(client: TestClient, make_key, registry) -> None:  # type: ignore[no-untyped-def]
    key = make_key(ORG)
    from registry.auth import key_hash
    registry.store.revoke_key(registry.store.find_key(key_hash(key)).id)
    response = client.post("/graph", content=orjson.dumps(graph()), headers={
        **JSONLD, "Authorization": f"Bearer {key}"})
    assert response.status_code == 401


def test_admin_key_writes_anything(client: TestClient, admin_headers: dict) -> None:  # type: ignore[type-arg]
    assert put(client, graph(owned_by=OTHER_ORG), admin_headers).status_code == 201


def test_reads_are_open_to_browsers(client: TestClient, org_headers: dict) -> None:  # type: ignore[type-arg]
    doc = graph()
    put(client, doc, org_headers)
    response = client.get(f"/graph/{doc['@graph'][0]['ceterms:ctid']}", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]



def test_a_large_graph_is_checked_off_the_event_loop_and_stored(client: TestClient,  # type: ignore[type-arg]
                                                               org_headers: dict) -> None:
    doc = graph(name="Welding " + "x" * 200_000)
    assert client.post("/validate", content=orjson.dumps(doc), headers=JSONLD).json()["valid"] is True
    created = put(client, doc, org_headers)
    assert created.status_code == 201
    stored = client.get(f"/graph/{doc['@graph'][0]['ceterms:ctid']}").json()
    assert len(stored["@graph"][0]["ceterms:name"]["en-US"]) == 200_008
