"""/.well-known/void: VoID and DCAT, content-negotiated, with counts that match the store."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pyoxigraph as ox
import pytest
from starlette.testclient import TestClient

from registry.dumps import write_dump
from registry.rdfstore.projection import RdfProjection
from registry.service import Registry
from registry.void import VoidStats
from tests.conftest import BASE, ORG, graph, new_ctid, organization

VOID = "http://rdfs.org/ns/void#"
DCAT = "http://www.w3.org/ns/dcat#"
SPDX = "http://spdx.org/rdf/terms#"
DATASET = ox.NamedNode(f"{BASE}/.well-known/void#dataset")
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


@pytest.fixture
def filled(registry: Registry) -> Registry:
    docs = [organization(), *(graph(name=f"Cert {i}") for i in range(4)),
            *(graph(type_="ceterms:Badge", name=f"Badge {i}") for i in range(2))]
    registry.import_many([(str(i), orjson.dumps(d)) for i, d in enumerate(docs)], lambda *a: None)
    return registry


def description(client: TestClient, accept: str = "text/turtle") -> set[ox.Triple]:
    response = client.get("/.well-known/void", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    fmt = ox.RdfFormat.from_media_type(response.headers["content-type"].split(";")[0])
    assert fmt is not None
    return {q.triple for q in ox.parse(response.content, format=fmt)}


def objects(triples: set[ox.Triple], subject: Any, predicate: str) -> list[Any]:
    return [t.object for t in triples if t.subject == subject and t.predicate == ox.NamedNode(predicate)]


def number(triples: set[ox.Triple], subject: Any, predicate: str) -> int:
    (value,) = objects(triples, subject, predicate)
    return int(value.value)


@pytest.mark.parametrize(("accept", "media"), [
    ("application/ld+json", "application/ld+json"), ("text/turtle", "text/turtle"),
    ("application/n-triples", "application/n-triples"), ("application/rdf+xml", "application/rdf+xml"),
    ("application/n-quads", "application/n-quads"), ("*/*", "application/ld+json"),
    ("text/turtle;q=0.4, application/n-triples;q=0.8", "application/n-triples"),
])
def test_the_description_is_negotiated(client: TestClient, filled: Registry, accept: str, media: str) -> None:
    response = client.get("/.well-known/void", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media
    assert "Accept" in response.headers["vary"]
    assert (ox.Triple(DATASET, RDF_TYPE, ox.NamedNode(VOID + "Dataset"))
            in description(client, media))


def test_html_406_and_format(client: TestClient, filled: Registry) -> None:
    html = client.get("/.well-known/void", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and b"Certification" in html.content
    assert client.get("/.well-known/void", headers={"Accept": "image/png"}).status_code == 406
    turtle = client.get("/.well-known/void?format=turtle", headers={"Accept": "text/html"})
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert client.get("/.well-known/void?format=nope").status_code == 400


def test_counts_match_the_store(client: TestClient, filled: Registry) -> None:
    triples = description(client)
    records = list(filled.store.iter_current())
    expected = sum(len(r.ntriples.splitlines()) for r in records)
    assert number(triples, DATASET, VOID + "triples") == expected
    assert number(triples, DATASET, VOID + "documents") == len(records)
    partitions = {}
    for part in objects(triples, DATASET, VOID + "classPartition"):
        (cls,) = objects(triples, part, VOID + "class")
        partitions[cls.value] = number(triples, part, VOID + "entities")
    assert partitions["https://purl.org/ctdl/terms/Certification"] == 4
    assert partitions["https://purl.org/ctdl/terms/Badge"] == 2
    assert partitions["https://purl.org/ctdl/terms/CredentialOrganization"] == 1
    assert number(triples, DATASET, VOID + "classes") == len(partitions)
    # every rdf:type in the record graphs, counted independently from the stored N-Triples
    typed = Counter(line.split(" ")[2][1:-1] for r in records for line in r.ntriples.splitlines()
                    if " <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> " in line)
    assert partitions == dict(typed)


def test_endpoint_uri_space_and_dumps(client: TestClient, filled: Registry) -> None:
    triples = description(client)
    assert objects(triples, DATASET, VOID + "sparqlEndpoint") == [ox.NamedNode(f"{BASE}/sparql")]
    assert objects(triples, DATASET, VOID + "uriSpace") == []  # the spaces are the subsets' (below)
    dumps = {o.value for o in objects(triples, DATASET, VOID + "dataDump")}
    assert dumps == {f"{BASE}/dumps/latest.nq.gz", f"{BASE}/dumps/latest.jsonld.zip"}
    assert objects(triples, DATASET, DCAT + "distribution") == []  # no dump written yet
    dump = write_dump(filled)
    triples = description(client)
    distributions = objects(triples, DATASET, DCAT + "distribution")
    assert len(distributions) == 2
    checksums = {}
    for dist in distributions:
        (node,) = objects(triples, dist, SPDX + "checksum")
        (value,) = objects(triples, node, SPDX + "checksumValue")
        checksums[dist.value.rsplit("/", 1)[1]] = value.value
    assert checksums == {f["name"]: f["sha256"] for f in dump.files.values()}
    service = ox.NamedNode(f"{BASE}/sparql")
    assert objects(triples, service, DCAT + "servesDataset") == [DATASET]


def test_the_description_follows_writes(client: TestClient, filled: Registry, org_headers: dict[str, str]) -> None:
    before = number(description(client), DATASET, VOID + "documents")
    ctid = new_ctid()
    client.put(f"/graph/{ctid}", content=orjson.dumps(graph(ctid)),
               headers={**org_headers, "Content-Type": "application/ld+json"})
    assert number(description(client), DATASET, VOID + "documents") == before + 1


def _publish_one(client: TestClient, org_headers: dict[str, str]) -> None:
    ctid = new_ctid()
    response = client.put(f"/graph/{ctid}", content=orjson.dumps(graph(ctid)),
                          headers={**org_headers, "Content-Type": "application/ld+json"})
    assert response.status_code == 201, response.text
    client.get("/sparql", params={"query": "ASK {}"})  # the read barrier: the write is projected


def test_a_large_slow_store_serves_recent_counts_and_a_small_one_follows_writes(
        client: TestClient, filled: Registry, org_headers: dict[str, str]) -> None:
    store = next(p for p in filled.projector.projections if isinstance(p, RdfProjection)).store
    # Every computation counts as slow and every store as large, and a result may be very old:
    # the last result is served...
    patient = VoidStats(store, 30, slow_s=0.0, large_triples=0, patience=1e9)
    small = VoidStats(store, 30)  # the defaults: this store is small, so it always recomputes
    before_patient, before_small = patient.get(), small.get()
    _publish_one(client, org_headers)
    assert patient.get() is before_patient
    after = small.get()
    assert after.graphs == before_small.graphs + 1 and after.position > before_small.position
    # ...while the last computation counts as slow; once it does not, the next read recomputes.
    patient.slow_s = float("inf")
    assert patient.get().graphs == before_patient.graphs + 1


def test_the_metadata_graph_says_what_it_holds(client: TestClient, filled: Registry) -> None:
    """The metadata subset names its vocabularies and the terms a client counts records with, and
    those terms are what the store holds for each record (one dcterms:type, one primaryTopic)."""
    triples = description(client)
    meta = ox.NamedNode(f"{BASE}/.well-known/void#records")
    assert meta in objects(triples, DATASET, VOID + "subset")
    vocabularies = {o.value for o in objects(triples, meta, VOID + "vocabulary")}
    assert {"http://purl.org/dc/terms/", "http://xmlns.com/foaf/0.1/", "http://www.w3.org/ns/prov#"} <= vocabularies
    (text,) = objects(triples, meta, "http://purl.org/dc/terms/description")
    assert "dcterms:type" in text.value and "foaf:primaryTopic" in text.value
    query = (f"SELECT ?type (COUNT(?r) AS ?n) WHERE {{ GRAPH <{meta.value}> {{ ?r <http://purl.org/dc/terms/type> "
             "?type ; <http://xmlns.com/foaf/0.1/primaryTopic> ?main } } GROUP BY ?type")
    response = client.get("/sparql", params={"query": query})
    assert response.status_code == 200, response.text
    counts = {b["type"]["value"]: int(b["n"]["value"]) for b in response.json()["results"]["bindings"]}
    expected = Counter("https://purl.org/ctdl/terms/" + r.type.split(":", 1)[1] for r in filled.store.iter_current())
    assert counts == dict(expected)



CE = "https://credentialengineregistry.org/resources/"
SANDBOX = "https://sandbox.credentialengineregistry.org/resources/"


def under(space: str, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with its resource, and its owner, named in `space` (as Credential Engine's data is)."""
    node = doc["@graph"][0]
    node["@id"] = space + node["ceterms:ctid"]
    if "ceterms:ownedBy" in node:
        node["ceterms:ownedBy"] = [CE + ORG]
    return doc


def test_the_uri_spaces_are_those_of_the_data(client: TestClient, registry: Registry,
                                              org_headers: dict[str, str]) -> None:
    """Records keep their publishers' URIs: each space the resources with a CTID use is a subset
    with its void:uriSpace and count, none is claimed that the data does not use, and the dataset's
    void:uriRegexPattern matches every resource URI with a CTID and every skolem IRI."""
    place = {"ceterms:address": [{"@type": "ceterms:Place", "ceterms:addressRegion": {"en-US": "Ohio"}}]}
    docs = [under(CE, organization()), *(under(CE, graph(name=f"Cert {i}")) for i in range(3)),
            *(under(SANDBOX, graph(name=f"Sandbox {i}", **place)) for i in range(2))]
    counts = registry.import_many([(str(i), orjson.dumps(d)) for i, d in enumerate(docs)], lambda *a: None)
    assert counts["rejected"] == 0

    def spaces() -> tuple[set[ox.Triple], dict[str, int]]:
        triples = description(client)
        found = {}
        for subset in objects(triples, DATASET, VOID + "subset"):
            for space in objects(triples, subset, VOID + "uriSpace"):
                entities = objects(triples, subset, VOID + "entities")
                found[space.value] = int(entities[0].value) if entities else -1
        return triples, found

    triples, found = spaces()
    skolem = f"{BASE}/.well-known/genid/"
    assert found == {CE: 4, SANDBOX: 2, skolem: -1}  # the skolem IRIs' subset is not counted
    assert objects(triples, DATASET, VOID + "uriSpace") == []  # no one prefix is common to all
    (pattern,) = objects(triples, DATASET, VOID + "uriRegexPattern")
    query = ("SELECT DISTINCT ?s WHERE { GRAPH ?g { ?s ?p ?o } "
             "FILTER(?g != <" + f"{BASE}/.well-known/void#records" + ">) }")
    rows = client.get("/sparql", params={"query": query}).json()["results"]["bindings"]
    subjects = [row["s"]["value"] for row in rows]
    assert any(s.startswith(skolem) for s in subjects) and len(subjects) == 8
    assert all(re.match(pattern.value, s) for s in subjects), (pattern.value, subjects)
    assert not re.match(pattern.value, f"{BASE}/resources/{new_ctid()}")
    assert not re.match(pattern.value, "https://credentialengineregistryXorg/resources/")
    # A record under a third space: the description follows (recomputed with the counts).
    ctid = new_ctid()
    response = client.put(f"/graph/{ctid}", content=orjson.dumps(graph(ctid)),
                          headers={**org_headers, "Content-Type": "application/ld+json"})
    assert response.status_code == 201, response.text
    assert spaces()[1] == {CE: 4, SANDBOX: 2, f"{BASE}/resources/": 1, skolem: -1}
