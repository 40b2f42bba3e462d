"""The RDF projection and /sparql: read-your-writes, named graphs per record, skolemized blank
nodes, the metadata graph, the SPARQL 1.1 Protocol, negotiation, limits, and ordinary clients."""
from __future__ import annotations

import asyncio
import csv
import gzip
import io
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pyoxigraph as ox
import pytest
from starlette.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from registry.projections import Projector
from registry.rdfstore import TripleStore, meta_graph_iri
from registry.rdfstore.oxigraph import OxigraphStore
from registry.rdfstore.projection import RdfProjection, skolemize
from registry.rdfstore.remote import RemoteStore
from registry.service import Registry
from registry.sparql import analyze
from tests.conftest import BASE, ORG, graph, new_ctid, organization
from tests.servers import free_port
from tests.test_rdfstore import SLOW, oxigraph_server  # noqa: F401 - the session fixture

CT = "https://purl.org/ctdl/terms/"
META = meta_graph_iri(BASE)
SELECT_NAMES = f"SELECT ?s ?name WHERE {{ ?s <{CT}name> ?name }} ORDER BY ?name"
CONSTRUCT_NAMES = f"CONSTRUCT {{ ?s <{CT}name> ?name }} WHERE {{ ?s <{CT}name> ?name }}"
DESCRIBE_GAMMA = f'DESCRIBE ?s WHERE {{ ?s <{CT}name> "Gamma Coding"@en-us }}'


def publish(client: TestClient, headers: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    ctid = doc["@graph"][0]["ceterms:ctid"]
    response = client.put(f"/graph/{ctid}", content=orjson.dumps(doc),
                          headers={**headers, "Content-Type": "application/ld+json"})
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def sparql(client: TestClient, query: str, accept: str = "application/sparql-results+json",
           **params: Any) -> Any:
    return client.get("/sparql", params={"query": query, **params}, headers={"Accept": accept})


def bindings(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return [{k: v["value"] for k, v in b.items()} for b in response.json()["results"]["bindings"]]


def ask(client: TestClient, pattern: str) -> bool:
    response = sparql(client, f"ASK {{ {pattern} }}")
    assert response.status_code == 200, response.text
    return bool(response.json()["boolean"])


# --- the projection, on both backends ---------------------------------------------------------
@pytest.fixture(params=["embedded", "remote"])
def rdf_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Registry]]:
    settings = Settings(data_dir=tmp_path / "data", base_uri=BASE, durable=False)
    store: TripleStore
    if request.param == "embedded":
        store = OxigraphStore(tmp_path / "data" / "oxigraph", meta_graph=META,
                              dataset_iri=f"{BASE}/.well-known/void#dataset")
    else:
        store = RemoteStore(request.getfixturevalue("oxigraph_server"), meta_graph=META,
                            dataset_iri=f"{BASE}/.well-known/void#dataset")
        store.reset()
    registry = Registry(settings, projections=[RdfProjection(store, BASE)])
    with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as client:
        yield client, registry
    registry.close()


@pytest.fixture
def rdf_headers(rdf_client: tuple[TestClient, Registry]) -> dict[str, str]:
    from registry import auth

    key = auth.new_key()
    rdf_client[1].store.create_key(auth.key_hash(key), ORG, False, "test")
    return {"Authorization": f"Bearer {key}"}


def test_a_publish_is_queryable_when_it_returns(rdf_client: tuple[TestClient, Registry],
                                                rdf_headers: dict[str, str]) -> None:
    client, _ = rdf_client
    for i in range(5):
        ctid = new_ctid()
        publish(client, rdf_headers, graph(ctid, name=f"Welder {i}"))
        assert ask(client, f'GRAPH <{BASE}/graph/{ctid}> {{ ?s <{CT}name> "Welder {i}"@en-us }}')


def test_replacing_and_deleting_remove_old_triples(rdf_client: tuple[TestClient, Registry],
                                                   rdf_headers: dict[str, str]) -> None:
    client, _ = rdf_client
    ctid = new_ctid()
    etag = publish(client, rdf_headers, graph(ctid, name="Old name"))["etag"]
    response = client.put(f"/graph/{ctid}", content=orjson.dumps(graph(ctid, name="New name")),
                          headers={**rdf_headers, "If-Match": f'"{etag}"', "Content-Type": "application/ld+json"})
    assert response.status_code == 200
    assert not ask(client, f'?s <{CT}name> "Old name"@en-us')
    assert ask(client, f'?s <{CT}name> "New name"@en-us')
    etag = response.json()["etag"]
    assert client.delete(f"/graph/{ctid}", headers={**rdf_headers, "If-Match": f'"{etag}"'}).status_code == 200
    assert not ask(client, f'?s <{CT}name> "New name"@en-us')
    assert not ask(client, f"GRAPH <{BASE}/graph/{ctid}> {{ ?s ?p ?o }}")
    assert not ask(client, f"GRAPH <{META}> {{ <{BASE}/graph/{ctid}> ?p ?o }}")


def test_blank_nodes_are_skolemized_per_record(rdf_client: tuple[TestClient, Registry],
                                               rdf_headers: dict[str, str]) -> None:
    client, _ = rdf_client
    a, b = new_ctid(), new_ctid()
    for ctid, price in ((a, 100), (b, 200)):  # both documents label their cost profile "_:b0"
        doc = graph(ctid, **{"ceterms:estimatedCost": ["_:b0"]})
        doc["@graph"].append({"@id": "_:b0", "@type": "ceterms:CostProfile", "ceterms:price": price,
                              "ceterms:currency": "USD"})
        publish(client, rdf_headers, doc)
    rows = bindings(sparql(client, f"SELECT ?cost ?price WHERE {{ ?c <{CT}estimatedCost> ?cost . "
                                   f"?cost <{CT}price> ?price }}"))
    assert len(rows) == 2  # not merged: two cost nodes, one price each
    costs = sorted(r["cost"] for r in rows)
    prefixes = sorted(f"{BASE}/.well-known/genid/{c}/" for c in (a, b))
    assert [c[:len(p)] for c, p in zip(costs, prefixes, strict=True)] == prefixes
    assert not ask(client, "?s ?p ?o FILTER(isBlank(?s) || isBlank(?o))")


def test_the_metadata_graph_describes_each_record(rdf_client: tuple[TestClient, Registry],
                                                  rdf_headers: dict[str, str]) -> None:
    client, registry = rdf_client
    ctid = new_ctid()
    publish(client, rdf_headers, organization())
    result = publish(client, rdf_headers, graph(ctid))
    g = f"{BASE}/graph/{ctid}"
    rows = bindings(sparql(client, f"SELECT ?p ?o WHERE {{ GRAPH <{META}> {{ <{g}> ?p ?o }} }}"))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["p"], set()).add(row["o"])
    assert found["http://purl.org/dc/terms/identifier"] == {ctid}
    assert found["http://purl.org/dc/terms/publisher"] == {f"{BASE}/resources/{ORG}"}
    assert found["http://www.w3.org/ns/prov#wasAttributedTo"] == {f"{BASE}/resources/{ORG}"}
    assert found["http://www.w3.org/2002/07/owl#versionInfo"] == {"1"}
    assert found["http://xmlns.com/foaf/0.1/primaryTopic"] == {f"{BASE}/resources/{ctid}"}
    assert found["http://purl.org/dc/terms/type"] == {f"{CT}Certification"}
    record = registry.store.get(ctid)
    assert record is not None
    assert {"http://purl.org/dc/terms/created", "http://purl.org/dc/terms/modified"} <= found.keys()
    checksum = bindings(sparql(client, f"SELECT ?v WHERE {{ <{g}> <http://spdx.org/rdf/terms#checksum> ?c . "
                                       "?c <http://spdx.org/rdf/terms#checksumValue> ?v }"))
    assert [r["v"] for r in checksum] == [result["etag"]]
    assert registry.projector.projections[0].position() == registry.store.last_seq()


def test_reindex_rebuilds_the_same_triples(rdf_client: tuple[TestClient, Registry],
                                           rdf_headers: dict[str, str]) -> None:
    client, registry = rdf_client
    for i in range(4):
        publish(client, rdf_headers, graph(name=f"Course {i}"))
    query = "SELECT ?g ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g ?s ?p ?o"
    before = bindings(sparql(client, query))
    projection = registry.projector.projections[0]
    projection.reset()
    assert not ask(client, "?s ?p ?o")
    registry.projector.catch_up()
    assert bindings(sparql(client, query)) == before


def _quads(store: TripleStore) -> list[tuple[str, ...]]:
    result = store.query("SELECT ?g ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } }", max_results=10**6)
    return sorted((b["g"]["value"], b["s"]["value"], b["p"]["value"], b["o"]["value"])
                  for b in orjson.loads(result.body)["results"]["bindings"])


def test_the_projection_resumes_from_its_position(tmp_path: Path) -> None:
    """Stopped part-way through the change log (here: after 7 of the changes, then a new store
    object on the same files), the projection continues from the stored position and ends with
    exactly the triples of a rebuild in one pass, on both write paths (diff and bulk)."""
    settings = Settings(data_dir=tmp_path / "d", base_uri=BASE, durable=False)
    registry = Registry(settings, projections=[])
    try:
        registry.import_many([(str(i), orjson.dumps(d)) for i, d in enumerate(
            [organization(), *(graph(name=f"Course {i}") for i in range(12))])], lambda *a: None)
        ctid = next(r.ctid for r in registry.store.iter_current() if r.type == "ceterms:Certification")
        registry.delete(ctid, None, None)
        changes = registry.store.changes(0, 1000)
        meta, ds = META, f"{BASE}/.well-known/void#dataset"

        def fresh(name: str, bulk_quads: int) -> OxigraphStore:
            store = OxigraphStore(tmp_path / name, meta_graph=meta, dataset_iri=ds, workers=1)
            store.bulk_quads = bulk_quads
            return store

        whole = fresh("whole", 10**9)
        RdfProjection(whole, BASE).apply(changes, registry.store)
        expected = _quads(whole)
        whole.close()
        for bulk_quads in (10**9, 1):
            name = f"resumed-{bulk_quads}"
            first = fresh(name, bulk_quads)
            RdfProjection(first, BASE).apply(changes[:7], registry.store)
            first.close()
            again = fresh(name, bulk_quads)
            again.compact_after = 1  # any bulk load is followed by a compaction once caught up
            assert again.position() == changes[6].seq
            projection = RdfProjection(again, BASE)
            Projector(registry.store, [projection], batch=3).catch_up()
            # the catch-up ended by compacting (in the background) if (and only if) it bulk-loaded
            assert again.wait_settled(60)
            assert (again.compaction_seconds is not None) == (bulk_quads == 1)
            Projector(registry.store, [projection], batch=3).catch_up()  # nothing left: no change
            assert again.position() == registry.store.last_seq()
            assert _quads(again) == expected
            assert not any(g == f"{BASE}/graph/{ctid}" for g, *_ in expected)
            again.close()
    finally:
        registry.close()


def test_a_publish_is_queryable_while_the_store_compacts(tmp_path: Path) -> None:
    """The compaction after a bulk load runs beside the projector: a record published while it
    runs is queryable when its call returns, and close() waits for the compaction to end. The
    real compaction is held at its start (a hook around the real call) so that it is still
    running, observably, while the publish goes through."""
    settings = Settings(data_dir=tmp_path / "data", base_uri=BASE, durable=False)
    store = OxigraphStore(tmp_path / "data" / "oxigraph", meta_graph=META,
                          dataset_iri=f"{BASE}/.well-known/void#dataset", workers=1)
    store.bulk_quads = store.compact_after = 1  # the import below is bulk-loaded, then compacted
    started, release = threading.Event(), threading.Event()
    real_optimize = store._optimize

    def held_optimize() -> None:
        started.set()
        assert release.wait(120), "the compaction was held for too long"
        real_optimize()

    store._optimize = held_optimize  # type: ignore[method-assign]
    registry = Registry(settings, projections=[RdfProjection(store, BASE)])
    closing: threading.Thread | None = None
    try:
        imported = [organization(), *(graph(name=f"Course {i}") for i in range(5))]
        registry.import_many([(str(i), orjson.dumps(d)) for i, d in enumerate(imported)], lambda *a: None)
        assert started.wait(10) and store.compacting()
        store.bulk_quads = 20_000  # publishes take the diff path, as in service
        with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as client:
            from registry import auth

            key = auth.new_key()
            registry.store.create_key(auth.key_hash(key), ORG, False, "test")
            ctid = new_ctid()
            publish(client, {"Authorization": f"Bearer {key}"}, graph(ctid, name="Published meanwhile"))
            assert ask(client, f'GRAPH <{BASE}/graph/{ctid}> {{ ?s <{CT}name> "Published meanwhile"@en-us }}')
            assert ask(client, f'?s <{CT}name> "Course 4"@en-us')
            assert store.compacting() and store.compaction_seconds is None
        closing = threading.Thread(target=registry.close)
        closing.start()
        closing.join(0.5)
        assert closing.is_alive()  # close waits for the compaction
        release.set()
        closing.join(30)
        assert not closing.is_alive() and store.compaction_seconds is not None
    finally:
        release.set()
        if closing is None:
            registry.close()


def test_credreg_reindex_rebuilds_the_triple_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from registry.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("CREDREG_DATA_DIR", str(data))
    monkeypatch.setenv("CREDREG_BASE_URI", BASE)
    monkeypatch.setenv("CREDREG_DURABLE", "false")
    registry = Registry(Settings(data_dir=data, base_uri=BASE, durable=False))
    try:
        registry.import_many([(str(i), orjson.dumps(graph(name=f"Reindexed {i}"))) for i in range(5)],
                             lambda *a: None)
        store = next(p for p in registry.projector.projections if isinstance(p, RdfProjection)).store
        before = _quads(store)
        assert len({g for g, *_ in before}) == 6  # five records and the metadata graph
    finally:
        registry.close()
    oxigraph_dir = data / "oxigraph"
    stray = ox.Quad(ox.NamedNode(f"{BASE}/resources/stray"), ox.NamedNode(f"{CT}name"), ox.Literal("stray"),
                    ox.NamedNode(before[0][0]))
    damaged = ox.Store(str(oxigraph_dir))  # drift the change log cannot repair: only a rebuild can
    damaged.add(stray)
    del damaged
    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    again = OxigraphStore(oxigraph_dir, meta_graph=META, dataset_iri=f"{BASE}/.well-known/void#dataset", workers=1)
    try:
        assert _quads(again) == before  # the stray quad is gone
    finally:
        again.close()


def test_a_record_the_engine_rejects_does_not_block_the_others(rdf_client: tuple[TestClient, Registry]) -> None:
    client, registry = rdf_client
    from registry.store import Record

    good, bad = new_ctid(), new_ctid()
    with registry.store.batch() as batch:
        for ctid, triples in ((good, f'<{BASE}/resources/{good}> <{CT}name> "fine" .\n'),
                              (bad, f'<{BASE}/resources/{bad}> <{CT}name> "broken .\n')):
            batch.write(Record(ctid=ctid, version=1, etag="x" * 64, body=b"{}", ntriples=triples,
                               type="ceterms:Certification", owners=(), publisher=None,
                               created="2025-01-01T00:00:00Z", modified="2025-01-01T00:00:00Z"), "create")
    registry.projector.catch_up()
    assert ask(client, f'?s <{CT}name> "fine"')
    assert not ask(client, f"GRAPH <{BASE}/graph/{bad}> {{ ?s ?p ?o }}")
    assert registry.projector.projections[0].position() == registry.store.last_seq()


def test_skolemize_leaves_literals_alone() -> None:
    nt = ('_:b0 <http://p> "text with _:b1 inside" .\n<http://s> <http://q> _:b0 .\n'
          '_:x.y-z <http://p> "a _:b2 ." .\n')
    out = skolemize(nt, "http://r", "ce-1")
    assert out == ('<http://r/.well-known/genid/ce-1/b0> <http://p> "text with _:b1 inside" .\n'
                   '<http://s> <http://q> <http://r/.well-known/genid/ce-1/b0> .\n'
                   '<http://r/.well-known/genid/ce-1/x.y-z> <http://p> "a _:b2 ." .\n')


def _skolemized_by_oxigraph(ntriples: str, base: str, ctid: str) -> set[ox.Triple]:
    """The reference: every blank node that Oxigraph's parser reads, as its skolem IRI."""
    def term(t: Any) -> Any:
        return ox.NamedNode(f"{base}/.well-known/genid/{ctid}/{t.value}") if isinstance(t, ox.BlankNode) else t
    return {ox.Triple(term(q.subject), q.predicate, term(q.object))
            for q in ox.parse(ntriples, format=ox.RdfFormat.N_TRIPLES)}


@pytest.mark.parametrize("line", [
    '<http://s> <http://p> "Welding level _:b1"@en-us .',
    '<http://s> <http://p> "ends in _:x" .',
    '<http://s> <http://p> "ends in _:x"@en .',
    '<http://s> <http://p> "ends in _:x"^^<http://www.w3.org/2001/XMLSchema#string> .',
    '<http://s> <http://p> "a _:b1 . in the middle" .',
    '<http://s> <http://p> "two\\n_:b1 <http://p> _:b2 .\\n lines" .',
    '<http://s> <http://p> <http://x/_:b1> .',
    '<http://s> <http://p> <urn:x:_:b1> .',
    '<http://s/_:b0> <http://p> "x"^^<http://d/_:b1> .',
    '_:b0 <http://p> "_:b1" .',
    '_:a.b-c <http://p> _:\u00e9t\u00e9_1 .',
    '_:b0 <http://p> "x _:b1" .\n_:b1 <http://p> _:b0 .',
])
def test_skolemize_rewrites_blank_nodes_only(line: str) -> None:
    nt = line + "\n"
    out = skolemize(nt, "http://r", "ce-1")
    assert {q.triple for q in ox.parse(out, format=ox.RdfFormat.N_TRIPLES)} == _skolemized_by_oxigraph(
        nt, "http://r", "ce-1")


def test_a_name_ending_in_a_blank_node_label_is_published_and_dumped(
        rdf_client: tuple[TestClient, Registry], rdf_headers: dict[str, str], tmp_path: Path) -> None:
    from registry.dumps import write_dump

    client, registry = rdf_client
    ctid = new_ctid()
    publish(client, rdf_headers, graph(ctid, name="Welding level _:b1"))
    assert ask(client, f'GRAPH <{BASE}/graph/{ctid}> {{ ?s <{CT}name> "Welding level _:b1"@en-us }}')
    dump = write_dump(registry, tmp_path / "dumps")
    with gzip.open(tmp_path / "dumps" / dump.files["nquads"]["name"], "rb") as fh:
        quads = list(ox.parse(fh.read(), format=ox.RdfFormat.N_QUADS))
    assert ox.Literal("Welding level _:b1", language="en-us") in {
        q.object for q in quads if q.graph_name == ox.NamedNode(f"{BASE}/graph/{ctid}")}


# --- the protocol -------------------------------------------------------------------------------
@pytest.fixture
def loaded(client: TestClient, org_headers: dict[str, str]) -> TestClient:
    publish(client, org_headers, organization())
    for name in ("Alpha Welding", "Beta Nursing", "Gamma Coding"):
        publish(client, org_headers, graph(name=name))
    return client


@pytest.mark.parametrize(("accept", "media"), [
    ("application/sparql-results+json", "application/sparql-results+json"),
    ("application/json", "application/sparql-results+json"),
    ("application/sparql-results+xml", "application/sparql-results+xml"),
    ("text/csv", "text/csv"),
    ("text/tab-separated-values", "text/tab-separated-values"),
    ("text/csv;q=0.5, application/sparql-results+xml;q=0.9", "application/sparql-results+xml"),
    ("*/*", "application/sparql-results+json"),
    ("", "application/sparql-results+json"),
])
def test_select_results_are_negotiated(loaded: TestClient, accept: str, media: str) -> None:
    response = sparql(loaded, SELECT_NAMES, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media
    assert "Accept" in response.headers["vary"]
    if media.endswith("json"):
        values = [b["name"]["value"] for b in response.json()["results"]["bindings"]]
    elif media.endswith("xml"):
        values = [s["name"].value for s in ox.parse_query_results(response.content, format=ox.QueryResultsFormat.XML)]
    elif media == "text/csv":
        values = [row[1] for row in list(csv.reader(io.StringIO(response.text)))[1:]]
    else:
        values = [s["name"].value for s in ox.parse_query_results(response.content, format=ox.QueryResultsFormat.TSV)]
    assert values[:3] == ["Alpha Welding", "Beta Nursing", "Example College"]


@pytest.mark.parametrize(("accept", "media"), [
    ("text/turtle", "text/turtle"), ("application/n-triples", "application/n-triples"),
    ("application/n-quads", "application/n-quads"), ("application/ld+json", "application/ld+json"),
    ("application/rdf+xml", "application/rdf+xml"),
    ("application/sparql-results+xml, application/rdf+xml", "application/rdf+xml"),  # rdflib's Accept
    ("*/*", "text/turtle"),
    ("text/turtle;q=0.1, application/ld+json;q=0.9", "application/ld+json"),
])
@pytest.mark.parametrize("query", [CONSTRUCT_NAMES, DESCRIBE_GAMMA], ids=["construct", "describe"])
def test_graph_results_are_negotiated(loaded: TestClient, accept: str, media: str, query: str) -> None:
    response = sparql(loaded, query, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media
    triples = list(ox.parse(response.content, format=ox.RdfFormat.from_media_type(media)))
    assert ox.Literal("Gamma Coding", language="en-us") in {q.object for q in triples}


@pytest.mark.parametrize("query", [SELECT_NAMES, CONSTRUCT_NAMES])
def test_an_unacceptable_format_is_406(loaded: TestClient, query: str) -> None:
    response = sparql(loaded, query, "image/png")
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/problem+json"


def test_post_forms_and_sparql_query_bodies(loaded: TestClient) -> None:
    form = loaded.post("/sparql", data={"query": SELECT_NAMES},
                       headers={"Accept": "application/sparql-results+json"})
    direct = loaded.post("/sparql", content=SELECT_NAMES.encode(),
                         headers={"Content-Type": "application/sparql-query",
                                  "Accept": "application/sparql-results+json"})
    assert bindings(form) == bindings(direct) == bindings(sparql(loaded, SELECT_NAMES))
    assert loaded.post("/sparql", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert loaded.post("/sparql", data={"nothing": "here"}).status_code == 400
    two = loaded.get("/sparql", params=[("query", "ASK {}"), ("query", "ASK {}")])
    assert two.status_code == 400


def test_ask(loaded: TestClient) -> None:
    assert ask(loaded, f'?s <{CT}name> "Beta Nursing"@en-us')
    xml = sparql(loaded, "ASK { ?s ?p ?o }", "application/sparql-results+xml")
    assert b"<boolean>true</boolean>" in xml.content


def test_dataset_parameters_and_from(loaded: TestClient, registry: Registry) -> None:
    ctid = next(r.ctid for r in registry.store.iter_current() if r.type == "ceterms:Certification")
    g = f"{BASE}/graph/{ctid}"
    one = bindings(sparql(loaded, SELECT_NAMES, **{"default-graph-uri": g}))
    assert len(one) == 1
    named = bindings(sparql(loaded, "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }",
                            **{"named-graph-uri": g}))
    assert [r["g"] for r in named] == [g]
    from_clause = bindings(sparql(loaded, f"SELECT ?name FROM <{g}> WHERE {{ ?s <{CT}name> ?name }}"))
    assert from_clause == [{"name": one[0]["name"]}]
    bad = sparql(loaded, SELECT_NAMES, **{"default-graph-uri": "not an iri"})
    assert bad.status_code == 400
    # The same dataset given with a POST: in the form, or in the URL beside a query body.
    json_accept = {"Accept": "application/sparql-results+json"}
    form = loaded.post("/sparql", data={"query": SELECT_NAMES, "default-graph-uri": g}, headers=json_accept)
    direct = loaded.post("/sparql", params={"default-graph-uri": g}, content=SELECT_NAMES.encode(),
                         headers={"Content-Type": "application/sparql-query", **json_accept})
    assert bindings(form) == bindings(direct) == one


def test_the_default_graph_is_the_union_of_record_graphs(loaded: TestClient) -> None:
    in_graphs = bindings(sparql(loaded, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH ?g {{ ?s ?p ?o }} "
                                        f"FILTER(?g != <{META}>) }}"))
    union = bindings(sparql(loaded, f"SELECT (COUNT(*) AS ?n) WHERE {{ ?s ?p ?o FILTER NOT EXISTS "
                                    f"{{ GRAPH <{META}> {{ ?s ?p ?o }} }} }}"))
    assert int(in_graphs[0]["n"]) == int(union[0]["n"]) > 20


@pytest.mark.parametrize(("method", "kwargs"), [
    ("post", {"content": b'INSERT DATA { <http://a> <http://b> "c" }',
              "headers": {"Content-Type": "application/sparql-update"}}),
    ("post", {"data": {"update": 'INSERT DATA { <http://a> <http://b> "c" }'}}),
    ("get", {"params": {"query": 'PREFIX x: <http://x/> # a comment\nINSERT DATA { <http://a> <http://b> "c" }'}}),
    ("get", {"params": {"query": "DROP ALL"}}),
])
def test_updates_are_refused(loaded: TestClient, method: str, kwargs: dict[str, Any]) -> None:
    response = getattr(loaded, method)("/sparql", **kwargs)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:credreg:problem:sparql-update-refused"
    assert not ask(loaded, '<http://a> <http://b> "c"')


def test_a_malformed_query_gets_400_with_the_parsers_message(loaded: TestClient) -> None:
    response = sparql(loaded, "SELECT ?x WHERE { ?x ?p }")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:credreg:problem:malformed-query"
    assert "1:" in response.json()["detail"]
    assert sparql(loaded, "  ").status_code == 400


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A real TCP listener on a free 127.0.0.1 port, keeping what every connection sent."""
    received: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(2)
            try:
                received.append(self.request.recv(65536))
            except OSError:
                received.append(b"")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sparql", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("template", "named"), [
    ("SELECT * WHERE {{ SERVICE <{url}> {{ ?s ?p ?o }} }}", "<{url}>"),
    ("select * where {{ ?a ?b ?c OPTIONAL {{ service silent <{url}> {{ ?s ?p ?o }} }} }}", "<{url}>"),
    ("PREFIX x: <{url}#> SELECT * WHERE {{ SERVICE x:e {{ ?s ?p ?o }} }}", "x:e"),
    ("SELECT * WHERE {{ VALUES ?e {{ <{url}> }} SERVICE ?e {{ ?s ?p ?o }} }}", "?e"),
    ("ASK {{ SERVICE<{url}>{{ ?s ?p ?o }} }}", "<{url}>"),
])
def test_federated_queries_are_refused_before_they_reach_the_store(
        rdf_client: tuple[TestClient, Registry], listener: tuple[str, list[bytes]], template: str,
        named: str) -> None:
    client, _ = rdf_client
    url, received = listener
    query, named = template.format(url=url), named.format(url=url)
    for response in (sparql(client, query),
                     client.post("/sparql", content=query, headers={"Content-Type": "application/sparql-query"})):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "urn:credreg:problem:sparql-service-refused"
        assert problem["service"] == named and named in problem["detail"]
    time.sleep(0.3)
    assert received == []


@pytest.mark.parametrize("template", [
    'SELECT ?n WHERE {{ ?s <{ct}name> ?n FILTER(?n != "SERVICE <{url}> {{ }}") }}',
    "SELECT ?n WHERE {{ ?s <{ct}name> ?n }} # SERVICE <{url}> {{ ?s ?p ?o }}",
    "SELECT ?n WHERE {{ ?s <{ct}name> ?n FILTER(?s != <{url}/SERVICE>) }}",
    "PREFIX service: <{url}#> SELECT ?service WHERE {{ ?service <{ct}name> ?n FILTER(?n != service:x) }}",
    "SELECT ?n WHERE {{ ?s <{ct}name> ?n FILTER(?n != 'x'@service) }}",
])
def test_service_in_a_string_an_iri_a_name_or_a_comment_is_not_refused(
        rdf_client: tuple[TestClient, Registry], rdf_headers: dict[str, str],
        listener: tuple[str, list[bytes]], template: str) -> None:
    client, _ = rdf_client
    url, received = listener
    publish(client, rdf_headers, graph(name="Welding"))
    assert bindings(sparql(client, template.format(url=url, ct=CT)))
    assert received == []


@pytest.mark.parametrize("query", ["\x00\x01", "SELECT * WHERE { ?s ?p \"\\uD800\" }", "(((((" * 2000,
                                   "SELECT * WHERE { <" + "a" * 10000, "PREFIX : <http://x/> SELECT ?from WHERE {}"])
def test_no_input_crashes_the_endpoint(loaded: TestClient, query: str) -> None:
    response = sparql(loaded, query)
    assert response.status_code in (200, 400)


def test_the_service_description(loaded: TestClient) -> None:
    response = loaded.get("/sparql", headers={"Accept": "text/turtle"})
    assert response.status_code == 200
    triples = {q.triple for q in ox.parse(response.content, format=ox.RdfFormat.TURTLE)}
    sd = "http://www.w3.org/ns/sparql-service-description#"
    service = ox.NamedNode(f"{BASE}/sparql")
    assert ox.Triple(service, ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type"),
                     ox.NamedNode(sd + "Service")) in triples
    assert ox.Triple(service, ox.NamedNode(sd + "feature"), ox.NamedNode(sd + "UnionDefaultGraph")) in triples
    assert ox.Triple(service, ox.NamedNode(sd + "feature"), ox.NamedNode(sd + "BasicFederatedQuery")) not in triples
    html = loaded.get("/sparql", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and b"<form" in html.content
    assert loaded.get("/sparql", headers={"Accept": "application/ld+json"}).json()


def test_the_result_cap(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", base_uri=BASE, durable=False, sparql_max_results=2)
    registry = Registry(settings)
    try:
        with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as client:
            registry.import_many([("a", orjson.dumps(graph(name=f"N{i}"))) for i in range(3)], lambda *a: None)
            response = sparql(client, SELECT_NAMES)
            assert response.status_code == 400
            assert response.json()["type"] == "urn:credreg:problem:result-too-large"
            assert sparql(client, SELECT_NAMES + " LIMIT 2").status_code == 200
    finally:
        registry.close()


def test_a_slow_query_is_stopped_and_does_not_block_other_requests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", base_uri=BASE, durable=False, sparql_timeout_s=2)
    registry = Registry(settings)
    try:
        items = [("a", orjson.dumps(graph(name=f"N{i}"))) for i in range(60)]
        registry.import_many(items, lambda *a: None)

        async def scenario() -> tuple[Any, float, float]:
            transport = httpx2.ASGITransport(app=create_app(registry))
            async with httpx2.AsyncClient(transport=transport, base_url=BASE, timeout=60) as http:
                start = time.monotonic()
                slow = asyncio.create_task(http.get("/sparql", params={"query": SLOW}))
                await asyncio.sleep(0.3)
                health = await http.get("/health")
                assert health.status_code == 200
                fast_done = time.monotonic() - start
                response = await slow
                return response, fast_done, time.monotonic() - start

        response, fast_done, slow_done = asyncio.run(scenario())
        assert response.status_code == 503
        assert response.json()["type"] == "urn:credreg:problem:query-timeout"
        assert fast_done < 1.5 < slow_done < 8
    finally:
        registry.close()


def test_sparql_workers_and_queue_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CREDREG_SPARQL_WORKERS=1 and CREDREG_SPARQL_QUEUE=0: while one slow query runs, the next
    gets 503 with Retry-After at once instead of waiting out the time limit."""
    monkeypatch.setenv("CREDREG_SPARQL_WORKERS", "1")
    monkeypatch.setenv("CREDREG_SPARQL_QUEUE", "0")
    settings = Settings(data_dir=tmp_path / "d", base_uri=BASE, durable=False, sparql_timeout_s=3)
    assert (settings.sparql_workers, settings.sparql_queue) == (1, 0)
    registry = Registry(settings)
    try:
        registry.import_many([("a", orjson.dumps(graph(name=f"N{i}"))) for i in range(60)], lambda *a: None)

        async def scenario() -> tuple[Any, float, Any, Any]:
            transport = httpx2.ASGITransport(app=create_app(registry))
            async with httpx2.AsyncClient(transport=transport, base_url=BASE, timeout=60) as http:
                assert (await http.get("/sparql", params={"query": "ASK {}"})).status_code == 200
                slow = asyncio.create_task(http.get("/sparql", params={"query": SLOW}))
                await asyncio.sleep(0.5)
                start = time.monotonic()
                busy = await http.get("/sparql", params={"query": "ASK { ?s ?p ?o }"})
                busy_after = time.monotonic() - start
                slow_response = await slow
                return busy, busy_after, slow_response, await http.get("/sparql", params={"query": "ASK {}"})

        busy, busy_after, slow_response, later = asyncio.run(scenario())
        assert busy.status_code == 503 and busy_after < 1
        assert busy.headers["content-type"] == "application/problem+json"
        assert busy.json()["type"] == "urn:credreg:problem:sparql-busy"
        assert int(busy.headers["Retry-After"]) > 0
        assert slow_response.json()["type"] == "urn:credreg:problem:query-timeout"
        assert later.status_code == 200
    finally:
        registry.close()


def test_the_default_number_of_query_workers_is_unchanged() -> None:
    settings = Settings(base_uri=BASE)
    assert settings.sparql_workers == 0  # OxigraphStore: min(4, max(2, CPUs))
    from registry.rdfstore.oxigraph import default_workers

    assert default_workers() == min(4, max(2, os.cpu_count() or 2))


@pytest.mark.parametrize(("query", "form", "dataset"), [
    ("SELECT * WHERE { ?s ?p ?o }", "SELECT", False),
    ("prefix ex: <http://e/> # comment with FROM\nconstruct { ?s ex:p ?o } from <http://g> where { ?s ?p ?o }",
     "CONSTRUCT", True),
    ("BASE <http://b/> PREFIX : <x#> ASK FROM NAMED <g> { GRAPH ?g {} }", "ASK", True),
    ('SELECT ?from WHERE { ?s ?p "FROM" }', "SELECT", False),
    ("SELECT * WHERE { { SELECT * WHERE { ?s ?p ?o } } }", "SELECT", False),
    ("DESCRIBE <http://x>", "DESCRIBE", False),
    ("WITH <http://g> DELETE { ?s ?p ?o } WHERE { ?s ?p ?o }", "WITH", False),
])
def test_analyze(query: str, form: str, dataset: bool) -> None:
    shape = analyze(query)
    assert (shape.form, shape.has_dataset) == (form, dataset)


@pytest.mark.parametrize(("query", "service"), [
    ("SELECT * WHERE { SERVICE <http://127.0.0.1:1/> { ?s ?p ?o } }", "<http://127.0.0.1:1/>"),
    ("SELECT * FROM <http://g> WHERE { ?a ?b ?c { Service Silent ?e { } } }", "?e"),
    ("PREFIX e: <http://e/> SELECT * WHERE { service e:x {} SERVICE <http://y> {} }", "e:x"),
    ("SELECT * WHERE { SERVICE", "SERVICE"),
    ('SELECT * WHERE { ?s ?p "SERVICE <http://x> {}" } # SERVICE <http://x> {}', None),
    ("SELECT ?service WHERE { <http://x/SERVICE> e:SERVICE _:SERVICE FILTER(?o = 'a'@service) }", None),
    ("SELECT * WHERE { ?s ?p '''\nSERVICE <http://x> {}\n''' }", None),
])
def test_analyze_finds_service(query: str, service: str | None) -> None:
    assert analyze(query).service == service


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/sparql", "/dumps", "/dumps/latest.nq.gz", "/dumps/latest.jsonld.zip", "/.well-known/void"} <= paths.keys()


# --- ordinary clients against a live `credreg serve` ----------------------------------------------
@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("live")
    port = free_port()
    env = {**os.environ, "CREDREG_DATA_DIR": str(data), "CREDREG_PORT": str(port),
           "CREDREG_LOG_LEVEL": "warning", "CREDREG_DURABLE": "false"}
    credreg = str(Path(sys.executable).parent / "credreg")
    proc = subprocess.Popen([credreg, "serve", "--demo"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("credreg serve exited")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_sparqlwrapper(live_server: str) -> None:
    from SPARQLWrapper import JSON, N3, TURTLE, XML, SPARQLWrapper

    endpoint = SPARQLWrapper(f"{live_server}/sparql")
    endpoint.setQuery(f"SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE {{ ?s a <{CT}Collection> }}")
    for fmt in (JSON, XML):
        endpoint.setReturnFormat(fmt)
        result = endpoint.query().convert()
        if fmt == JSON:
            assert int(result["results"]["bindings"][0]["n"]["value"]) >= 0
        else:
            assert result.getElementsByTagName("literal")
    endpoint.setQuery(f"CONSTRUCT WHERE {{ ?s a <{CT}Collection> }}")
    for fmt in (TURTLE, N3, XML):
        endpoint.setReturnFormat(fmt)
        with warnings.catch_warnings():  # SPARQLWrapper 2.0 builds an rdflib ConjunctiveGraph
            warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
            assert len(endpoint.query().convert()) > 0
    endpoint.setMethod("POST")
    endpoint.setQuery("ASK { ?s ?p ?o }")
    endpoint.setReturnFormat(JSON)
    assert endpoint.query().convert()["boolean"] is True


def test_rdflib_sparqlstore(live_server: str) -> None:
    from rdflib import Graph
    from rdflib.plugins.stores.sparqlstore import SPARQLStore

    store = SPARQLStore(f"{live_server}/sparql")
    g = Graph(store=store)
    rows = list(g.query(f"SELECT ?s ?name WHERE {{ ?s <{CT}name> ?name }} LIMIT 5"))
    assert len(rows) == 5
    constructed = g.query(f"CONSTRUCT {{ ?s <{CT}name> ?name }} WHERE {{ ?s <{CT}name> ?name }} LIMIT 5")
    assert len(constructed.graph) == 5
    assert g.query("ASK { ?s ?p ?o }").askAnswer is True
    store.close()


def test_curl(live_server: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(["curl", "-sf", "-H", "Accept: text/csv", "--data-urlencode",
                          "query=SELECT ?s WHERE { ?s ?p ?o } LIMIT 3", f"{live_server}/sparql"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 4


def test_a_query_body_over_the_size_limit_is_413(rdf_client: tuple[TestClient, Registry]) -> None:
    client, registry = rdf_client
    query = "ASK {}" + " " * registry.settings.max_body_bytes
    response = client.post("/sparql", content=query, headers={"Content-Type": "application/sparql-query"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
