"""SPARQL at scale: load throughput and query latency at about 10M triples (225k generated graphs),
beside rdflib's in-memory engine on the same queries at 10k graphs, in the same run.

    .venv/bin/python -m bench.sparql [--docs 225000] [--rdflib-docs 10000]

Steps: import the corpus into the system of record (no projection), then time the RDF projection
catching up from the change log (the triple store's load throughput: skolemizing, metadata,
one SPARQL Update transaction per batch of 1,000 changes). Queries go through the same path as
/sparql (a checkpoint read by a worker process, results serialized as SPARQL JSON), so latency
includes the process hop. Last, a fresh process opens the registry and answers queries over
HTTP (in-process client) while its resident memory, and its query workers', is read from /proc.

The records aggregate is measured three ways, each its own row: the original join over
`ceterms:ctid` and `rdf:type` (the figure the target applies to), the same join rewritten so that
Oxigraph hash-joins it, and the metadata graph's `dcterms:type` (one pattern); whether the other
two give the original's answer on the corpus is recorded (`records_by_type_same_answer`).

Also measured: the projection's cost per change, in batches of 1,000 (catch-up, reindex) and in
the publish path (groups of 1 and 10 changes applied to the loaded store: what runs after each
group commit); and the point and two-hop queries run in-process on a checkpoint
(`engine_in_process`), which shows how much of their latency is the query process hop.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import corpus, record
from registry.config import Settings
from registry.projections import Projector
from registry.rdfstore import meta_graph_iri, open_triple_store, to_nquads
from registry.rdfstore.projection import RdfProjection, metadata_ntriples, skolemize
from registry.service import Registry
from registry.sources import iter_sources

CT = "https://purl.org/ctdl/terms/"
PREFIX = f"PREFIX ceterms: <{CT}>\n"
TEMPLATES = {
    "point": "SELECT ?p ?o WHERE {{ <{resource}> ?p ?o }}",
    "two_hop_join": PREFIX + "SELECT ?cred ?name ?ownerName WHERE {{ ?cred ceterms:accreditedBy <{qa}> ; "
                             "ceterms:name ?name ; ceterms:ownedBy ?owner . ?owner ceterms:name ?ownerName }}",
    "group_by_records": PREFIX + "SELECT ?type (COUNT(*) AS ?n) WHERE {{ ?s ceterms:ctid ?id ; a ?type }} "
                                 "GROUP BY ?type ORDER BY DESC(?n)",
    # The same join, written so that Oxigraph hash-joins the two scans: it does not push bindings
    # into a subquery with OFFSET (a no-op here), so instead of one index lookup per record
    # (~15 us each, random reads) it scans every typed node once. Same answer, by definition.
    "group_by_records_hash_join": PREFIX + "SELECT ?type (COUNT(*) AS ?n) WHERE {{ ?s ceterms:ctid ?id "
                                           "{{ SELECT ?s ?type WHERE {{ ?s a ?type }} OFFSET 0 }} }} "
                                           "GROUP BY ?type ORDER BY DESC(?n)",
    # The same question from the registry metadata graph, which states each record's type
    # (dcterms:type): one pattern scan instead of a join. Its own row: it answers "records by
    # type", which equals the join above only while each record's main node is the one node
    # with a ctid and has one type (checked on the corpus: `records_by_type_same_answer`).
    "group_by_records_metadata": "PREFIX dcterms: <http://purl.org/dc/terms/>\nSELECT ?type (COUNT(*) AS ?n) "
                                 "WHERE {{ GRAPH <{meta}> {{ ?record dcterms:type ?type }} }} "
                                 "GROUP BY ?type ORDER BY DESC(?n)",
    "group_by_all_nodes": "SELECT ?type (COUNT(*) AS ?n) WHERE {{ ?s a ?type }} GROUP BY ?type ORDER BY DESC(?n)",
    "text_filter": PREFIX + "SELECT ?s ?name WHERE {{ ?s ceterms:name ?name "
                            "FILTER(CONTAINS(LCASE(STR(?name)), \"{word}\")) }}",
}
REPS = {"point": 300, "two_hop_join": 40, "group_by_records": 7, "group_by_records_hash_join": 7,
        "group_by_records_metadata": 7, "group_by_all_nodes": 7, "text_filter": 10}
# Not the hash-join rewrite: rdflib evaluates the subquery once per outer row (42 s at 1,000
# graphs); its ratio is taken against rdflib's time for the original join (`RDFLIB_SAME`).
RDFLIB_REPS = {"point": 30, "two_hop_join": 5, "group_by_records": 3, "group_by_records_metadata": 3,
               "group_by_all_nodes": 3, "text_filter": 10}  # one run per word, as ours
RDFLIB_SAME = {"group_by_records_hash_join": "group_by_records"}
META = meta_graph_iri(Settings(data_dir=Path(".")).base_uri)  # both sides load with these settings
WORDS = ["nurs", "weld", "electric", "account", "teach", "mechanic", "software", "truck", "chef", "pharm"]


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "runs": len(ordered)}


def _params(lines: list[bytes], rng: random.Random) -> dict[str, list[str]]:
    """Resource IRIs for point lookups and accrediting bodies for the join, from the corpus."""
    resources, qas = [], set()
    for line in lines:
        main = json.loads(line)["@graph"][0]
        resources.append(main["@id"])
        qas.update(main.get("ceterms:accreditedBy", []))
    return {"resource": rng.sample(resources, min(1000, len(resources))), "qa": sorted(qas),
            "word": WORDS}


def _query_text(name: str, params: dict[str, list[str]], rng: random.Random) -> str:
    return TEMPLATES[name].format(resource=rng.choice(params["resource"]), qa=rng.choice(params["qa"]),
                                  word=rng.choice(params["word"]), meta=META)


def time_queries(run: Callable[[str], int], params: dict[str, list[str]], reps: dict[str, int],
                 budget_s: float = 600, names: tuple[str, ...] = tuple(TEMPLATES)) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        # Seeded per query: both sides draw the same resources and words in the same order, so
        # rdflib's fewer runs are the first of ours.
        rng = random.Random(f"7-{name}")
        run(_query_text(name, params, rng))  # warm-up (and the first checkpoint)
        times, rows = [], 0
        started = time.perf_counter()
        for _ in range(reps[name]):
            text = _query_text(name, params, rng)
            t0 = time.perf_counter()
            rows = run(text)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - started > budget_s:
                break
        out[name] = {**_ms(times), "rows_last": rows}
        print(name, out[name], flush=True)
    return out


def load_ours(docs: int, data: Path) -> tuple[Registry, dict[str, Any], list[bytes]]:
    path = corpus(docs, seed=9)
    print("corpus ready", flush=True)
    settings = Settings(data_dir=data, durable=False)
    registry = Registry(settings, projections=[])
    t0 = time.perf_counter()
    counts = registry.import_many(iter_sources([path]), lambda *a: None)
    imported = time.perf_counter() - t0
    print("imported", counts, round(imported, 1), "s", flush=True)
    projection = RdfProjection(open_triple_store(settings), settings.base_uri)
    tail = min(1000, counts["imported"] // 10)  # applied as the publish path would, below
    last = registry.store.last_seq()
    t0 = time.perf_counter()
    while (changes := registry.store.changes(projection.position(), min(1000, last - tail - projection.position()))):
        projection.apply(changes, registry.store)  # what Projector.catch_up does, in batches of 1,000
    bulk_changes = projection.position()
    bulk_seconds = time.perf_counter() - t0
    publish_path = {}
    for group in (1, 10):  # group commits of 1 and 10 changes into the loaded store (creates)
        times: list[float] = []
        for _ in range(tail // 2 // group):
            changes = registry.store.changes(projection.position(), group)
            t1 = time.perf_counter()
            projection.apply(changes, registry.store)
            times.append((time.perf_counter() - t1) / len(changes))
        publish_path[f"group_of_{group}"] = {"us_per_change_p50": round(statistics.median(times) * 1e6),
                                             "us_per_change_mean": round(statistics.mean(times) * 1e6),
                                             "changes": len(times) * group}
    Projector(registry.store, [projection]).catch_up()
    projection.store.wait_settled()  # type: ignore[attr-defined]  # the compaction runs in the background
    loaded = time.perf_counter() - t0
    registry.close()
    registry = Registry(settings, projections=[projection])
    quads = projection.store.counts().triples
    compaction = projection.store.compaction_seconds  # type: ignore[attr-defined]
    load = {"graphs": counts["imported"], "quads": quads, "seconds": round(loaded, 1),
            "of_which_compaction_seconds": round(compaction, 1) if compaction is not None else None,
            "graphs_per_s": round(counts["imported"] / loaded, 1), "quads_per_s": round(quads / loaded),
            "import_without_projection_graphs_per_s": round(counts["imported"] / imported, 1),
            "projection_us_per_change": {"bulk_batches_of_1000": round(bulk_seconds / max(1, bulk_changes) * 1e6),
                                         **publish_path}}
    print("loaded", load, flush=True)
    return registry, load, path.read_bytes().splitlines()


def records_by_type_same_answer(store: Any) -> dict[str, bool]:
    """Whether the rewritten join and the metadata-graph scan give the same counts per type as
    the join over ctid."""
    def counts(name: str) -> dict[str, str]:
        body = store.query(_query_text(name, {"resource": [""], "qa": [""], "word": [""]}, random.Random(0)),
                           timeout_s=300).body
        return {b["type"]["value"]: b["n"]["value"] for b in json.loads(body)["results"]["bindings"]}

    original = counts("group_by_records")
    return {name: counts(name) == original for name in ("group_by_records_hash_join", "group_by_records_metadata")}


def engine_only(store: Any, params: dict[str, list[str]]) -> dict[str, Any]:
    """Point and two-hop queries run in this process on a checkpoint, serialized as SPARQL JSON:
    the engine's own cost, without the query process hop (compare with `queries`)."""
    import pyoxigraph as ox

    from registry.rdfstore import NTRIPLES, RESULTS_JSON, UNION
    from registry.rdfstore.results import execute

    snapshot = store.snapshot()
    try:
        checkpoint = ox.Store.read_only(str(snapshot.path))
        reps = {name: n for name, n in REPS.items() if name in ("point", "two_hop_join")}
        return time_queries(lambda text: execute(checkpoint, text, UNION, RESULTS_JSON, NTRIPLES, 10_000_000).count,
                            params, reps, names=tuple(reps))
    finally:
        store._snapshots.release(snapshot)


def rdflib_side(docs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same N-Quads (skolemized, one graph per record) in rdflib's in-memory Dataset."""
    from rdflib import Dataset

    path = corpus(docs, seed=9)
    lines = path.read_bytes().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), durable=False)
        registry = Registry(settings, projections=[])
        registry.import_many(iter_sources([path]), lambda *a: None)
        base = settings.base_uri
        nquads = "".join(to_nquads(skolemize(r.ntriples, base, r.ctid), f"{base}/graph/{r.ctid}")
                         + to_nquads(metadata_ntriples(r, base), f"{base}/.well-known/void#records")
                         for r in registry.store.iter_current())
        registry.close()
    dataset = Dataset(default_union=True)
    t0 = time.perf_counter()
    dataset.parse(data=nquads, format="nquads")
    seconds = time.perf_counter() - t0
    quads = nquads.count("\n")
    load = {"graphs": len(lines), "quads": quads, "seconds": round(seconds, 1), "quads_per_s": round(quads / seconds)}
    print("rdflib loaded", load, flush=True)

    def run(text: str) -> int:
        return len(list(dataset.query(text)))

    queries = time_queries(run, _params(lines, random.Random(3)), RDFLIB_REPS, budget_s=300,
                           names=tuple(RDFLIB_REPS))
    return load, queries


_SERVICE = """
import json, os, random, sys, time
from pathlib import Path
from starlette.testclient import TestClient
from registry.app import create_app
from registry.config import Settings
from registry.rdfstore import open_triple_store
from registry.rdfstore.projection import RdfProjection
from registry.service import Registry

def rss(pid):
    fields = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status') if ':' in l)
    return int(fields['VmRSS'].split()[0]) // 1024, int(fields['VmHWM'].split()[0]) // 1024

settings = Settings(data_dir=Path(sys.argv[1]), durable=False)
registry = Registry(settings, projections=[RdfProjection(open_triple_store(settings), settings.base_uri)])
resources = json.loads(sys.argv[2])
times = []
with TestClient(create_app(registry)) as client:
    for i in range(300):
        q = 'SELECT ?p ?o WHERE { <%s> ?p ?o }' % random.choice(resources)
        t0 = time.perf_counter()
        assert client.get('/sparql', params={'query': q}).status_code == 200
        times.append(time.perf_counter() - t0)
    client.get('/sparql', params={'query': 'SELECT ?type (COUNT(*) AS ?n) WHERE { ?s a ?type } GROUP BY ?type'})
    main = rss(os.getpid())
    workers = [rss(w.process.pid) for w in registry.projector.projections[0].store._pool._all]
times.sort()
print(json.dumps({'main_rss_mb': main[0], 'main_peak_mb': main[1], 'worker_rss_mb': [w[0] for w in workers],
                  'total_rss_mb': main[0] + sum(w[0] for w in workers),
                  'http_point_p50_ms': round(times[len(times) // 2] * 1000, 2),
                  'http_point_p99_ms': round(times[int(len(times) * 0.99) - 1] * 1000, 2)}))
registry.close()
"""


def service_rss(data: Path, resources: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _SERVICE, str(data), json.dumps(resources[:500])],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def reopen(docs: int, data: Path) -> tuple[Registry, dict[str, Any], list[bytes]]:
    """A registry over a data directory an earlier `--data` run loaded (no load figures)."""
    settings = Settings(data_dir=data, durable=False)
    projection = RdfProjection(open_triple_store(settings), settings.base_uri)
    registry = Registry(settings, projections=[projection])
    return registry, {"reused": str(data)}, corpus(docs, seed=9).read_bytes().splitlines()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=225_000)
    ap.add_argument("--rdflib-docs", type=int, default=10_000)
    ap.add_argument("--data", type=Path, help="load into this directory and keep it; if it already holds a "
                    "loaded store, reuse it (queries only: no load figures)")
    ap.add_argument("--ours-only", action="store_true", help="skip the 10k side and rdflib")
    ap.add_argument("--queries", help="comma-separated names of the queries to time (default: all)")
    args = ap.parse_args()
    names = tuple(args.queries.split(",")) if args.queries else tuple(TEMPLATES)
    with contextlib.ExitStack() as stack:
        data = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="credreg-sparql-")))
        reused = (data / "oxigraph").exists()
        registry, load, lines = (reopen if reused else load_ours)(args.docs, data)
        store = registry.projector.projections[0].store  # type: ignore[attr-defined]
        params = _params(lines, random.Random(3))

        def run(text: str) -> int:
            return int(store.query(text, timeout_s=300, max_results=10_000_000).count)

        ours = time_queries(run, params, REPS, names=names)
        same_answer = records_by_type_same_answer(store) if not args.queries else {}
        engine = engine_only(store, params) if not args.queries else {}
        registry.close()
        memory = service_rss(data, params["resource"]) if not args.queries else {}
        print("service", memory, flush=True)
    if args.ours_only or args.queries:
        record(f"sparql_{args.docs}_ours_only", {"load": load, "queries": ours, "engine_in_process": engine,
                                                 "service": memory, "records_by_type_same_answer": same_answer})
        return
    with tempfile.TemporaryDirectory(prefix="credreg-sparql-small-") as tmp:
        small, _, small_lines = load_ours(args.rdflib_docs, Path(tmp))
        small_store = small.projector.projections[0].store  # type: ignore[attr-defined]

        def run_small(text: str) -> int:
            return int(small_store.query(text, timeout_s=300, max_results=10_000_000).count)

        ours_small = time_queries(run_small, _params(small_lines, random.Random(3)), REPS)
        small.close()
    rdflib_load, theirs = rdflib_side(args.rdflib_docs)
    def ratio(name: str, mine: dict[str, Any]) -> float:
        return round(theirs[RDFLIB_SAME.get(name, name)]["p50_ms"] / max(mine[name]["p50_ms"], 0.001), 1)

    ratios = {name: ratio(name, ours) for name in TEMPLATES}
    same = {name: ratio(name, ours_small) for name in TEMPLATES}
    # A smaller trial run is kept under its own name: it must not replace the figures at full size.
    name = "sparql" if args.docs == 225_000 else f"sparql_{args.docs}"
    record(name, {"load": load, "queries": ours, "engine_in_process": engine, "service": memory,
                  "records_by_type_same_answer": same_answer,
                      "ours_at_rdflib_size": ours_small,
                      "rdflib": {"load": rdflib_load, "queries": theirs},
                      "ratio_rdflib_10k_over_ours": ratios,
                      "ratio_same_size": same,
                      "targets": {"point_p99_ms": 5, "two_hop_join_p50_ms": 300, "aggregate_p50_ms": 1500,
                                  "ratio": 20, "rss_mb": 2048}})


if __name__ == "__main__":
    main()
