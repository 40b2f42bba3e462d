"""One conformance suite for the TripleStore protocol, run against every backend: embedded
pyoxigraph, a real Oxigraph server (`oxigraph serve`) and a real Virtuoso 7 (`virtuoso-t`, Debian's
virtuoso-opensource-7-bin) started on 127.0.0.1 for the session (tests/virtuoso.py, conftest.py)."""
from __future__ import annotations

import csv
import gc
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import orjson
import pyoxigraph as ox
import pytest

from registry.rdfstore import (
    CSV,
    GRAPH_FORMATS,
    RESULTS_JSON,
    RESULTS_XML,
    TSV,
    Counts,
    Dataset,
    Group,
    QuerySyntaxError,
    QueryTimeout,
    RdfDataError,
    ResultTooLarge,
    StoreBusy,
    StoreUnavailable,
    TripleStore,
    dataset_iri,
    meta_graph_iri,
)
from registry.rdfstore.oxigraph import OxigraphStore
from registry.rdfstore.remote import RemoteStore
from tests.servers import free_port, wait_until_answering
from tests.virtuoso import VIRTUOSO_OWN, VIRTUOSO_PASSWORD, isql, running_virtuoso

BASE = "http://registry.test"
META = meta_graph_iri(BASE)
DS = dataset_iri(BASE)
G1, G2, G3 = (f"{BASE}/graph/ce-0000000{i}-0000-4000-8000-000000000000" for i in (1, 2, 3))
P = "https://purl.org/ctdl/terms/name"
# A query that cannot finish in seconds: a cross product of five patterns.
SLOW = ("SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n2 ?o . "
        "FILTER(STR(?c) != STR(?o)) }")


def oxigraph_binary() -> str | None:
    beside = Path(sys.executable).parent / "oxigraph"
    return str(beside) if beside.exists() else shutil.which("oxigraph")


@pytest.fixture(scope="session")
def oxigraph_server() -> Iterator[str]:
    """A real Oxigraph server on a free port of 127.0.0.1, stopped at the end of the session."""
    binary = oxigraph_binary()
    if binary is None:
        pytest.skip("the Oxigraph server binary is not installed (pip install oxigraph, a dev dependency)")
    data = Path(tempfile.mkdtemp(prefix="credreg-oxigraph-"))
    port = free_port()
    log = open(data / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "serve", "--location", str(data / "db"), "--bind",
                             f"127.0.0.1:{port}", "--timeout-s", "5"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/query?query=ASK%7B%7D", proc, data / "server.log", "oxigraph serve", 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["embedded", "remote", "virtuoso"])
def triple_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TripleStore]:
    store: TripleStore
    if request.param == "embedded":
        store = OxigraphStore(tmp_path / "oxigraph", meta_graph=META, dataset_iri=DS, workers=2)
    else:
        server = "oxigraph_server" if request.param == "remote" else "virtuoso_server"
        store = RemoteStore(request.getfixturevalue(server), meta_graph=META, dataset_iri=DS)
        store.reset()  # the server is shared by the session: start each test empty
    yield store
    store.close()


def nt(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def record(graph: str, name: str) -> str:
    return nt(f'<{graph}#it> <{P}> "{name}"@en .', f"<{graph}#it> <{P}x> <{graph}#other> .")


def rows(store: TripleStore, sparql: str, **kwargs: object) -> list[dict[str, str]]:
    result = store.query(sparql, **kwargs)  # type: ignore[arg-type]
    assert result.kind == "solutions"
    return [{k: v["value"] for k, v in b.items()} for b in orjson.loads(result.body)["results"]["bindings"]]


def names(store: TripleStore, **kwargs: object) -> list[str]:
    return sorted(r["n"] for r in rows(store, f"SELECT ?n WHERE {{ ?s <{P}> ?n }}", **kwargs))


def load_two(store: TripleStore, position: int = 2) -> None:
    store.apply(Group(position=position, drop=[G1, G2], meta_subjects=[G1, G2],
                      graphs=[(G1, record(G1, "one")), (G2, record(G2, "two"))],
                      metadata=[nt(f'<{G1}> <{P}meta> "m1" .', f'<{G2}> <{P}meta> "m2" .')]))


# --- writes -------------------------------------------------------------------------------------
def test_a_group_is_visible_in_the_union_default_graph_and_as_named_graphs(triple_store: TripleStore) -> None:
    load_two(triple_store)
    assert names(triple_store) == ["one", "two"]
    graphs = {r["g"] for r in rows(triple_store, "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")}
    if isinstance(triple_store, RemoteStore) and triple_store.virtuoso:
        # Virtuoso answers this one query shape from its list of graphs, which names its private
        # ones (not their triples; README, Virtuoso). Any other shape leaves them out.
        assert graphs - {G1, G2, META} <= VIRTUOSO_OWN
        graphs = {r["g"] for r in rows(triple_store, "SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g")}
    assert graphs == {G1, G2, META}
    assert triple_store.position() == 2
    meta = rows(triple_store, f"SELECT ?s ?o WHERE {{ GRAPH <{META}> {{ ?s <{P}meta> ?o }} }}")
    assert sorted((r["s"], r["o"]) for r in meta) == [(G1, "m1"), (G2, "m2")]


def test_replacing_a_graph_removes_its_old_triples(triple_store: TripleStore) -> None:
    load_two(triple_store)
    triple_store.apply(Group(position=3, drop=[G1], meta_subjects=[G1], graphs=[(G1, record(G1, "uno"))],
                             metadata=[nt(f'<{G1}> <{P}meta> "m1b" .')]))
    assert names(triple_store) == ["two", "uno"]
    meta = rows(triple_store, f"SELECT ?o WHERE {{ GRAPH <{META}> {{ <{G1}> <{P}meta> ?o }} }}")
    assert [r["o"] for r in meta] == ["m1b"]


def test_a_deletion_removes_the_graph_and_its_metadata(triple_store: TripleStore) -> None:
    load_two(triple_store)
    triple_store.apply(Group(position=3, drop=[G2], meta_subjects=[G2]))
    assert names(triple_store) == ["one"]
    assert triple_store.graph_ntriples(G2) == ""
    assert rows(triple_store, f"SELECT ?o WHERE {{ GRAPH <{META}> {{ <{G2}> ?p ?o }} }}") == []
    assert triple_store.position() == 3


def test_applying_a_group_twice_is_harmless(triple_store: TripleStore) -> None:
    load_two(triple_store)
    before = triple_store.counts()
    load_two(triple_store)
    assert triple_store.counts() == before
    assert names(triple_store) == ["one", "two"]


def test_a_rejected_group_changes_nothing(triple_store: TripleStore) -> None:
    load_two(triple_store)
    with pytest.raises(RdfDataError):
        triple_store.apply(Group(position=9, drop=[G1], meta_subjects=[G1],
                                 graphs=[(G1, '<http://x> <http://p> "unterminated .\n')]))
    assert names(triple_store) == ["one", "two"]
    assert triple_store.position() == 2


def test_a_large_group_is_applied_whole(triple_store: TripleStore) -> None:
    """Past what one request or one block may hold on some servers (Virtuoso: about 5,000 triples
    a block, a few MB a request): a record of 6,000 triples and 4 MB in all."""
    graphs = [f"{BASE}/graph/large-{i}" for i in range(40)]
    body = [nt(*(f'<{g}#n{j}> <{P}> "node {j} of the large group, padded to about a hundred bytes" .'
                 for j in range(6000 if i == 0 else 1000))) for i, g in enumerate(graphs)]
    meta = [nt(f'<{g}> <{P}meta> "m{i}" .') for i, g in enumerate(graphs)]
    assert sum(map(len, body)) > 4_000_000
    triple_store.apply(Group(position=3, drop=graphs, meta_subjects=graphs,
                             graphs=list(zip(graphs, body, strict=True)), metadata=meta))
    assert triple_store.position() == 3
    assert triple_store.counts() == Counts(6000 + 39 * 1000 + 40 + 1, 41)
    assert rows(triple_store, f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graphs[0]}> {{ ?s ?p ?o }} }}") == [
        {"n": "6000"}]
    triple_store.apply(Group(position=4, drop=graphs, meta_subjects=graphs))
    assert triple_store.counts() == Counts(1, 1)


def test_graph_store_operations(triple_store: TripleStore) -> None:
    triple_store.replace_graph(G3, record(G3, "three"))
    assert ox.Triple(ox.NamedNode(f"{G3}#it"), ox.NamedNode(P), ox.Literal("three", language="en")) in [
        q.triple for q in ox.parse(triple_store.graph_ntriples(G3), format=ox.RdfFormat.N_TRIPLES)]
    triple_store.replace_graph(G3, record(G3, "drei"))
    assert names(triple_store) == ["drei"]
    with pytest.raises(RdfDataError):
        triple_store.replace_graph(G3, "<not a triple")
    assert names(triple_store) == ["drei"]
    triple_store.remove_graph(G3)
    triple_store.remove_graph(G3)  # removing a missing graph is fine
    assert names(triple_store) == []


def test_metadata_updates_and_position(triple_store: TripleStore) -> None:
    triple_store.update_metadata([G1], nt(f'<{G1}> <{P}meta> "a" .'), 5)
    triple_store.update_metadata([G1], nt(f'<{G1}> <{P}meta> "b" .'), None)
    assert [r["o"] for r in rows(triple_store, f"SELECT ?o WHERE {{ <{G1}> <{P}meta> ?o }}")] == ["b"]
    assert triple_store.position() == 5


def test_counts_and_reset(triple_store: TripleStore) -> None:
    load_two(triple_store)
    counts = triple_store.counts()
    assert counts.graphs == 3  # two records and the metadata graph
    assert counts.triples == 4 + 2 + 1  # record triples, metadata, the position
    triple_store.reset()
    assert triple_store.position() == 0
    assert triple_store.counts().triples == 0
    assert names(triple_store) == []


def test_the_position_is_stored_with_the_data(triple_store: TripleStore, tmp_path: Path) -> None:
    load_two(triple_store, position=7)
    triple_store.close()
    if isinstance(triple_store, OxigraphStore):
        again: TripleStore = OxigraphStore(tmp_path / "oxigraph", meta_graph=META, dataset_iri=DS)
    else:
        assert isinstance(triple_store, RemoteStore)
        again = RemoteStore(triple_store.url, meta_graph=META, dataset_iri=DS)
    try:
        assert again.position() == 7
        assert names(again) == ["one", "two"]
    finally:
        again.close()


def test_virtuoso_writes_as_the_user_in_the_url(request: pytest.FixtureRequest) -> None:
    """README's deployment: writes with digest authentication on the -auth endpoints, queries on
    the anonymous /sparql (on this test server the anonymous user may write too)."""
    url = request.getfixturevalue("virtuoso_server").replace("//", f"//credreg:{VIRTUOSO_PASSWORD}@", 1)
    store = RemoteStore(url, meta_graph=META, dataset_iri=DS)
    assert store.update_url.endswith("/sparql-auth") and store.store_url.endswith("/sparql-graph-crud-auth")
    assert store.query_url.endswith("/sparql") and "credreg" not in store.query_url
    store.reset()
    load_two(store, position=4)
    store.replace_graph(G3, record(G3, "three"))
    assert names(store) == ["one", "three", "two"] and store.position() == 4
    wrong = RemoteStore(url.replace(VIRTUOSO_PASSWORD, "wrong"), meta_graph=META, dataset_iri=DS)
    with pytest.raises(StoreUnavailable, match="401"):
        wrong.apply(Group(position=5, drop=[G1]))
    assert names(store) == ["one", "three", "two"]
    store.reset()


def test_virtuoso_partial_or_wrong_results_are_never_returned(virtuoso_server: str) -> None:
    """Virtuoso answers HTTP 200 with what it has when a query reaches its `timeout` (an "anytime
    query") or its ResultSetMaxRows: both must raise, not pass for the whole result. And a
    server whose own graphs are readable (not set up as README says) is refused."""
    store = RemoteStore(virtuoso_server, meta_graph=META, dataset_iri=DS)
    store.reset()
    _fill(store)
    with pytest.raises(QueryTimeout):  # the server's limit, well before the client's
        store._run(SLOW, [("timeout", "500")], RESULTS_JSON, "application/n-triples", 30, 100)
    with running_virtuoso(max_rows=5) as (url, sql_port):
        small = RemoteStore(url, meta_graph=META, dataset_iri=DS)
        _fill(small, 6)
        assert small.query(f"SELECT ?s WHERE {{ ?s <{P}> ?o }} LIMIT 4").count == 4
        with pytest.raises(ResultTooLarge):
            small.query(f"SELECT ?s WHERE {{ ?s <{P}> ?o }}")
        with pytest.raises(ResultTooLarge):  # Virtuoso cannot tell exactly 5 from cut at 5
            small.query(f"SELECT ?s WHERE {{ ?s <{P}> ?o }} LIMIT 5")
        isql(sql_port, "DB.DBA.RDF_DEFAULT_USER_PERMS_SET('nobody', 1, 1);")  # private graphs readable
        with pytest.raises(StoreUnavailable, match="private"):
            RemoteStore(url, meta_graph=META, dataset_iri=DS).query("ASK { ?s ?p ?o }")
    store.reset()


# --- queries ------------------------------------------------------------------------------------
def test_select_in_every_results_format(triple_store: TripleStore) -> None:
    load_two(triple_store)
    sparql = f"SELECT ?s ?n WHERE {{ ?s <{P}> ?n }} ORDER BY ?n"
    body = triple_store.query(sparql, solutions_format=RESULTS_JSON).body
    assert [b["n"] for b in orjson.loads(body)["results"]["bindings"]] == [
        {"type": "literal", "value": "one", "xml:lang": "en"}, {"type": "literal", "value": "two", "xml:lang": "en"}]
    for media, fmt in ((RESULTS_XML, ox.QueryResultsFormat.XML), (TSV, ox.QueryResultsFormat.TSV)):
        result = triple_store.query(sparql, solutions_format=media)
        assert result.media_type == media
        parsed = list(ox.parse_query_results(result.body, format=fmt))
        assert [s["n"] for s in parsed] == [ox.Literal("one", language="en"), ox.Literal("two", language="en")]
    table = list(csv.reader(io.StringIO(triple_store.query(sparql, solutions_format=CSV).body.decode())))
    assert table == [["s", "n"], [f"{G1}#it", "one"], [f"{G2}#it", "two"]]


def test_ask_and_graph_results(triple_store: TripleStore) -> None:
    load_two(triple_store)
    ask = triple_store.query(f'ASK {{ ?s <{P}> "one"@en }}')
    assert (ask.kind, orjson.loads(ask.body)["boolean"]) == ("boolean", True)
    sparql = f"CONSTRUCT {{ ?s <{P}> ?n }} WHERE {{ ?s <{P}> ?n }}"
    for media in GRAPH_FORMATS:
        result = triple_store.query(sparql, graph_format=media)
        assert (result.kind, result.media_type, result.count) == ("graph", media, 2)
        parsed = {q.triple for q in ox.parse(result.body, format=ox.RdfFormat.from_media_type(media))}
        assert ox.Triple(ox.NamedNode(f"{G1}#it"), ox.NamedNode(P), ox.Literal("one", language="en")) in parsed
    described = triple_store.query(f"DESCRIBE <{G2}#it>", graph_format="application/n-triples")
    assert described.count == 2


def test_protocol_dataset_replaces_the_union(triple_store: TripleStore) -> None:
    load_two(triple_store)
    assert names(triple_store, dataset=Dataset(default_graphs=(G1,))) == ["one"]
    graphs = rows(triple_store, "SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } }", dataset=Dataset(named_graphs=(G2,)))
    assert {r["g"] for r in graphs} == {G2}
    assert names(triple_store, dataset=Dataset(named_graphs=(G2,))) == []  # default graph: empty
    if not (isinstance(triple_store, RemoteStore) and triple_store.virtuoso):
        # The store's own default graph. Virtuoso has none: without a dataset its default graph is
        # every graph the user may read (its documented default), and an empty one given as
        # default-graph-uri would make GRAPH <iri> match nothing (see remote.py).
        assert names(triple_store, dataset=Dataset(union=False)) == []
    from_g2 = rows(triple_store, f"SELECT ?n FROM <{G2}> WHERE {{ ?s <{P}> ?n }}", dataset=Dataset(union=False))
    assert [r["n"] for r in from_g2] == ["two"]


def test_malformed_queries_raise_with_the_parsers_message(triple_store: TripleStore) -> None:
    with pytest.raises(QuerySyntaxError, match="1:"):
        triple_store.query("SELECT ?x WHERE { ?x ?p }")
    with pytest.raises(QuerySyntaxError):
        triple_store.query('INSERT DATA { <http://a> <http://b> "c" }')
    assert names(triple_store) == []


def test_the_result_cap(triple_store: TripleStore) -> None:
    load_two(triple_store)
    with pytest.raises(ResultTooLarge):
        triple_store.query("SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }", max_results=3)
    with pytest.raises(ResultTooLarge):
        triple_store.query("CONSTRUCT WHERE { ?s ?p ?o }", max_results=3)
    assert triple_store.query("SELECT * WHERE { ?s ?p ?o } LIMIT 3", max_results=3).count == 3


def test_a_remote_failure_raised_in_a_worker_thread_holds_no_engine_objects(triple_store: TripleStore) -> None:
    """/sparql runs queries in worker threads and handles their errors on the event loop's:
    pyoxigraph results cannot be dropped on another thread than their own, so a remote error
    must not keep the parser's frames (and what they hold) alive."""
    if not isinstance(triple_store, RemoteStore):
        pytest.skip("the embedded store parses results in its worker processes")
    load_two(triple_store)
    for query, error in (("SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }", ResultTooLarge),
                         ("CONSTRUCT WHERE { ?s ?p ?o }", ResultTooLarge)):
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(triple_store.query, query, max_results=3)
        with pytest.raises(error):
            future.result()
        del future
        gc.collect()


def _fill(store: TripleStore, n: int = 600) -> None:
    lines = nt(*(f'<{G3}#s{i}> <{P}> "v{i}" .' for i in range(n)))
    store.apply(Group(position=1, drop=[G3], graphs=[(G3, lines)]))


def test_a_slow_query_is_stopped_at_the_time_limit(triple_store: TripleStore) -> None:
    _fill(triple_store)
    start = time.monotonic()
    with pytest.raises(QueryTimeout):
        triple_store.query(SLOW, timeout_s=1.5)
    assert time.monotonic() - start < 6
    assert triple_store.query(f'ASK {{ ?s <{P}> "v1" }}', timeout_s=20).body.endswith(b"true}")


@contextmanager
def filled_store(tmp_path: Path, **pool: int) -> Iterator[OxigraphStore]:
    """An embedded store holding `_fill`'s data, its query workers up; closed after."""
    store = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, **pool)
    try:
        _fill(store)
        assert store.query("ASK { ?s ?p ?o }").body.endswith(b"true}")
        yield store
    finally:
        store.close()


def test_the_embedded_store_kills_the_worker_running_a_timed_out_query(tmp_path: Path) -> None:
    with filled_store(tmp_path, workers=1) as store:
        (worker,) = store._pool._all
        pid = worker.process.pid
        assert pid is not None
        with pytest.raises(QueryTimeout):
            store.query(SLOW, timeout_s=1.0)
        with pytest.raises(ProcessLookupError):  # the work really stopped: the process is gone
            os.kill(pid, 0)
        assert store.query("ASK { ?s ?p ?o }").body.endswith(b"true}")  # a fresh worker answers


def test_a_slow_query_does_not_hold_up_a_fast_one(tmp_path: Path) -> None:
    with filled_store(tmp_path, workers=2) as store:
        slow = threading.Thread(target=lambda: pytest.raises(QueryTimeout, store.query, SLOW, timeout_s=4))
        slow.start()
        time.sleep(0.3)
        start = time.monotonic()
        assert store.query(f'ASK {{ ?s <{P}> "v2" }}').body.endswith(b"true}")
        assert time.monotonic() - start < 2
        slow.join()


def test_a_query_past_the_queue_bound_is_refused_at_once(tmp_path: Path) -> None:
    fast = f'ASK {{ ?s <{P}> "v2" }}'
    with filled_store(tmp_path, workers=1, max_waiting=1) as store, ThreadPoolExecutor(2) as pool:
        slow = pool.submit(store.query, SLOW, timeout_s=3)
        time.sleep(0.3)
        waiting = pool.submit(store.query, fast, timeout_s=20)  # the one place in the queue
        time.sleep(0.3)
        start = time.monotonic()
        with pytest.raises(StoreBusy):
            store.query(fast, timeout_s=20)
        assert time.monotonic() - start < 1
        with pytest.raises(QueryTimeout):
            slow.result()
        assert waiting.result().body.endswith(b"true}")  # it ran once the slow one was stopped
        assert store.query(fast).body.endswith(b"true}")


def test_without_a_queue_bound_a_query_waits_for_a_worker(tmp_path: Path) -> None:
    with filled_store(tmp_path, workers=1) as store, ThreadPoolExecutor(3) as pool:
        slow = pool.submit(store.query, SLOW, timeout_s=2)
        time.sleep(0.3)
        waiting = [pool.submit(store.query, f'ASK {{ ?s <{P}> "v{i}" }}', timeout_s=20) for i in (1, 2)]
        with pytest.raises(QueryTimeout):
            slow.result()
        assert all(w.result().body.endswith(b"true}") for w in waiting)


def test_reads_see_the_latest_write_and_checkpoints_are_cleaned_up(tmp_path: Path) -> None:
    store = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, workers=2)
    try:
        for i in range(5):
            store.replace_graph(G1, record(G1, f"v{i}"))
            assert names(store) == [f"v{i}"]
        snapshots = list((tmp_path / "ox-snapshots").iterdir())
        assert len(snapshots) <= 3  # the current one and at most one held by each worker
    finally:
        store.close()
    assert list((tmp_path / "ox-snapshots").iterdir()) == []


def _all_quads(store: TripleStore) -> set[tuple[str, ...]]:
    return {(r["g"], r["s"], r["p"], r["o"]) for r in rows(store, "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }")}


def test_large_groups_are_bulk_loaded_with_the_same_result(tmp_path: Path) -> None:
    """The embedded store applies small groups as a diff and large ones with bulk_load: both
    give the same quads, replacing and deleting included."""
    diff = OxigraphStore(tmp_path / "diff", meta_graph=META, dataset_iri=DS, workers=1)
    bulk = OxigraphStore(tmp_path / "bulk", meta_graph=META, dataset_iri=DS, workers=1)
    bulk.bulk_quads = 1  # every group takes the bulk path
    try:
        for store in (diff, bulk):
            load_two(store)
            store.apply(Group(position=3, drop=[G1, G2], meta_subjects=[G1, G2],
                              graphs=[(G1, record(G1, "uno"))], metadata=[nt(f'<{G1}> <{P}meta> "m1b" .')]))
            assert names(store) == ["uno"] and store.position() == 3
        assert _all_quads(diff) == _all_quads(bulk)
        with pytest.raises(RdfDataError):
            bulk.apply(Group(position=4, drop=[G1], meta_subjects=[G1],
                             graphs=[(G1, '<http://x> <http://p> "bad .\n')]))
        assert bulk.position() == 3  # the position did not move: the group will be re-applied
    finally:
        diff.close()
        bulk.close()


def test_settle_compacts_only_after_a_large_bulk_load(tmp_path: Path) -> None:
    store = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, workers=1)
    try:
        store.compact_after = 5
        load_two(store)  # applied as a diff: nothing to compact
        store.settle()
        assert store.compaction_seconds is None
        store.bulk_quads = 1
        before = _all_quads(store)
        store.apply(Group(position=3, drop=[G3], meta_subjects=[G3],
                          graphs=[(G3, record(G3, "three"))], metadata=[nt(f'<{G3}> <{P}meta> "m3" .')]))
        store.settle()
        assert store.compaction_seconds is None  # 3 bulk-loaded quads, under the threshold
        store.apply(Group(position=4, drop=[G1], meta_subjects=[G1],
                          graphs=[(G1, record(G1, "uno"))], metadata=[nt(f'<{G1}> <{P}meta> "m1b" .')]))
        store.settle()
        assert store.wait_settled(60) and store.compaction_seconds is not None
        expected = {q for q in before if q[1] != f"{G1}#it" and q[1:3] != (G1, f"{P}meta")}
        expected |= {(G3, f"{G3}#it", P, "three"), (G3, f"{G3}#it", f"{P}x", f"{G3}#other"),
                     (META, G3, f"{P}meta", "m3"), (G1, f"{G1}#it", P, "uno"),
                     (G1, f"{G1}#it", f"{P}x", f"{G1}#other"), (META, G1, f"{P}meta", "m1b")}
        assert {q for q in _all_quads(store) if q[2] != "urn:credreg:changeSequence"} == \
            {q for q in expected if q[2] != "urn:credreg:changeSequence"}
        assert names(store) == ["three", "two", "uno"] and store.position() == 4
        store.compaction_seconds = None
        store.settle()  # the counter was reset: no second compaction
        assert not store.compacting() and store.compaction_seconds is None
    finally:
        store.close()


def test_writes_and_reads_go_on_while_the_store_compacts(tmp_path: Path) -> None:
    """The real compaction of a bulk-loaded store runs on its thread while groups are applied
    and queried beside it; every write is there, and read back, during and after it. The hook
    repeats the real compaction until the writes are done, so that they all overlap one."""
    store = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, workers=1)
    real_optimize, done = store._optimize, threading.Event()

    def repeated_optimize() -> None:
        real_optimize()
        while not done.is_set():
            real_optimize()

    store._optimize = repeated_optimize  # type: ignore[method-assign]
    try:
        store.compact_after = 1
        store.bulk_quads = 1
        graphs = [f"{BASE}/graph/bulk-{i}" for i in range(2000)]
        body = "".join(f'<{graphs[0]}#n{j}> <{P}bulk> "node {j} of {graphs[0]}" .\n' for j in range(40))
        store.apply(Group(position=1, graphs=[(g, body.replace(graphs[0], g)) for g in graphs]))
        store.bulk_quads = 20_000  # the groups below are applied as diffs, as in the publish path
        store.settle()
        during = 0
        for i in range(30):
            graph = f"{BASE}/graph/during-{i}"
            store.apply(Group(position=2 + i, drop=[graph], graphs=[(graph, record(graph, f"during {i}"))]))
            assert f"during {i}" in names(store)
            during += store.compacting()
        done.set()
        assert during == 30
        assert store.wait_settled(120) and store.compaction_seconds is not None
        assert sorted(names(store)) == sorted(f"during {i}" for i in range(30))
        assert store.counts().graphs == 2000 + 30 + 1  # the bulk graphs, the others, the metadata graph
        assert store.position() == 31
    finally:
        done.set()
        store.close()


def test_a_crash_between_two_position_writes_keeps_the_highest(tmp_path: Path) -> None:
    store = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, workers=1)
    load_two(store, position=4)
    store._store.add(store._position_quad(9))  # as if the process died before removing position 4
    store.close()
    again = OxigraphStore(tmp_path / "ox", meta_graph=META, dataset_iri=DS, workers=1)
    try:
        assert again.position() == 9
        positions = rows(again, f"SELECT ?n WHERE {{ GRAPH <{META}> {{ ?s <urn:credreg:changeSequence> ?n }} }}")
        assert [r["n"] for r in positions] == ["9"]
    finally:
        again.close()
