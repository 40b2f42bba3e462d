"""Search: engine indexing throughput and query latency (p50/p99 without filters, with filters,
with filters and facet counts) at 100k and 1M documents, beside an SQLite FTS5 baseline built and
queried in the same run; then end-to-end HTTP latency (wrk against `credreg serve`) on the largest
index.

Documents are derived by search/documents.py from a generated corpus (bench/out, up to 100k
graphs); sizes above that are synthesized from those documents (new CTIDs, other states, moved
points, other prices), so the 1M index has the shape of real data without generating 1M graphs.

First, the cost the search projection adds to publishing (it runs in the commit path): an index
of 3,000 graphs follows 2,000 more, 10 changes per commit; per document derived (parse, summary,
derivation, dependency lookups) and per commit (Tantivy commit and reader reload).

    .venv/bin/python -m bench.search [--sizes 100000,1000000] [--queries 600] [--seconds 10]

While iterating: `--index-dir DIR` keeps the Tantivy indexes under DIR and reuses them on the next
run (indexing is then not measured), `--no-fts`, `--no-http`, `--no-projection` skip those parts.
`--slowest N` lists each category's N slowest queries with their totals (what makes the tail).
The reported run is a complete one without these flags. `--index-only`: the indexing figures
alone (no projection, queries, FTS5 or HTTP).

The indexing figure is documents (Tantivy field values, in memory) -> one committed, searchable
index with merges finished (`TantivyBackend.load`, as `credreg reindex` does after deriving).
Documents beyond the corpus are synthesized before the clock starts (reported apart).
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from bench.common import corpus, record, server, wrk
from search import geo, text
from search.documents import derive
from search.graph import Graph
from search.places import STATES
from search.projection import MemoryResolver
from search.query import SearchQuery, parse
from search.tantivy_backend import TantivyBackend
from search.tantivy_schema import derived_columns, doc_key, to_fields

HERE = Path(__file__).resolve().parent
FACETS = "type,state,soc_group,delivery,cost_max,list"
CATEGORIES = ("text", "filters", "text+filters", "filters+facets", "text+filters+facets", "all+facets")
_US = [c for c in STATES if len(c) == 2 and c not in ("AS", "GU", "MP", "PR", "VI", "UM")]


# --- documents -----------------------------------------------------------------------------------
def base_documents(graphs: int) -> list[dict[str, Any]]:
    """Tantivy field values of the documents derived from a generated corpus."""
    lines = corpus(graphs, seed=5).read_bytes().splitlines()
    gc.freeze()
    resolver = MemoryResolver.of((None, Graph.from_bytes(line)) for line in lines)
    start = time.perf_counter()
    out = []
    for line in lines:
        g = Graph.from_bytes(line)
        resolver.begin()
        d = derive(g, g.ctid or "", "2026-01-01T00:00:00.000000Z", resolver)
        if d is not None:
            d.deps = resolver.reads(d.ctid)
            d.modified_us += len(out)  # distinct publication times
            out.append(to_fields(d))
    record("search_derive", {"documents": len(out),
                             "documents_per_s": round(len(out) / (time.perf_counter() - start))})
    return out


def variants(base: list[dict[str, Any]], total: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """`total` documents: the base ones, then copies with a new CTID, another state, a moved
    point, another price."""
    rng = random.Random(seed)
    for i in range(total):
        doc = base[i % len(base)]
        k = i // len(base)
        if k == 0:
            yield doc
            continue
        new = f"ce-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        old = doc["ctid"].encode()
        out = dict(doc, ctid=new, key=doc_key(new), card=doc["card"].replace(old, new.encode()),
                   summary=doc["summary"].replace(old, new.encode()))
        if "state" in doc:
            out["state"] = [_US[(_US.index(s) + k) % len(_US)] if s in _US else s for s in doc["state"]]
        if "cost" in doc:
            out["cost"] = round(doc["cost"] * (0.5 + rng.random()), 2)
        points = orjson.loads(doc["points"])
        if points:
            moved = [(min(48.0, max(25.0, la + rng.uniform(-3, 3))), min(-67.0, max(-124.0, lo + rng.uniform(-5, 5))))
                     for la, lo in points]
            out["points"] = orjson.dumps(moved)
            out["geo"] = [t for la, lo in moved for t in geo.cell_terms(la, lo)]
            out["lat"], out["lon"] = moved[0]  # the radius check reads the first point from columns
        out["modified_us"] = doc["modified_us"] + k * 10_000_000
        yield derived_columns(out)


def build_tantivy(directory: Path, docs: list[dict[str, Any]], threads: int) -> tuple[TantivyBackend, dict[str, Any]]:
    """The index loaded as a rebuild does (one commit, bulk writer, merges waited for)."""
    import search.tantivy_backend as engine

    engine.BULK_THREADS = threads  # type: ignore[misc]
    backend = TantivyBackend(directory)
    cpu = os.times()
    start = time.perf_counter()
    count = backend.load(docs, 0)  # position 0 with an empty store: the service serves it as it is
    seconds = time.perf_counter() - start
    used = os.times()
    cpu_seconds = used.user + used.system - cpu.user - cpu.system
    backend.writer.wait_merging_threads()  # releases the writer: `credreg serve` may open it
    backend.close = lambda: None  # type: ignore[method-assign]
    segments = len(list(backend.path.glob("*.store"))) if backend.path else 0
    # On 2 cores the load is CPU-bound (the Python thread and Tantivy's indexing threads), so the
    # CPU time per document is what sets the rate.
    return backend, {"documents": count, "seconds": round(seconds, 1), "documents_per_s": round(count / seconds),
                     "cpu_us_per_document": round(cpu_seconds / count * 1e6, 1),
                     "cores_busy": round(cpu_seconds / seconds, 2), "segments": segments}


def documents(base: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """All the documents of a size in memory, so synthesizing them is not indexing time."""
    start = time.perf_counter()
    docs = list(variants(base, size))
    gc.freeze()  # cyclic GC passes over them would be bench cost too
    if size > len(base):
        record(f"search_synthesize_{size}", {"documents": size - len(base),
                                             "seconds": round(time.perf_counter() - start, 1)})
    return docs


# --- the SQLite FTS5 baseline --------------------------------------------------------------------
def build_fts5(path: Path, docs: Iterator[dict[str, Any]]) -> tuple[sqlite3.Connection, float]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.executescript("""
        PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
        CREATE VIRTUAL TABLE fts USING fts5(names, description, keywords, occupations, organizations,
                                            tokenize='unicode61 remove_diacritics 2');
        CREATE TABLE docs (rowid INTEGER PRIMARY KEY, ctid TEXT, sort_name TEXT, cost REAL, card BLOB);
        CREATE TABLE vals (rowid INTEGER, field TEXT, value TEXT);
    """)
    start = time.perf_counter()
    db.execute("BEGIN")
    for rowid, d in enumerate(docs, 1):
        db.execute("INSERT INTO fts (rowid, names, description, keywords, occupations, organizations) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (rowid, *(" ".join(d.get(f, [])) for f in (
                       "names", "description", "keywords", "occupations", "organizations"))))
        db.execute("INSERT INTO docs VALUES (?, ?, ?, ?, ?)",
                   (rowid, d["ctid"], d.get("sort_name"), d.get("cost"), d["card"]))
        rows = [(rowid, f, v) for f in ("type", "state", "soc_group", "delivery") for v in d.get(f, [])]
        rows += [(rowid, "list", t.split(":", 1)[0]) for t in dict.fromkeys(d.get("list_at", []))
                 if t.count(":") == 2 and t.endswith(":17:0")]  # members with no end: "on the list"
        db.executemany("INSERT INTO vals VALUES (?, ?, ?)", rows)
    db.execute("COMMIT")
    db.execute("CREATE INDEX vals_fv ON vals (field, value, rowid)")
    db.execute("CREATE INDEX vals_r ON vals (rowid, field)")
    db.execute("CREATE INDEX docs_name ON docs (sort_name)")
    db.execute("ANALYZE")
    return db, time.perf_counter() - start


def fts5_search(db: sqlite3.Connection, q: SearchQuery) -> dict[str, Any]:
    """The same request with FTS5: all words must match (no typo tolerance), filters through the
    values table, facets by GROUP BY with the same multi-select semantics."""
    def matching(skip: str | None = None) -> tuple[str, list[Any]]:
        parts, args = [], []
        if q.terms:
            parts.append("SELECT rowid FROM fts WHERE fts MATCH ?")
            args.append(" AND ".join(f'"{t}"' for t in q.terms))
        for name, values in q.filters.items():
            if name != skip:
                parts.append(f"SELECT rowid FROM vals WHERE field = ? AND value IN ({','.join('?' * len(values))})")
                args += ["list" if name == "list" else name, *values]
        if "cost_max" in q.ranges and skip != "cost_max":
            parts.append("SELECT rowid FROM docs WHERE cost <= ?")
            args.append(q.ranges["cost_max"])
        return (" INTERSECT ".join(parts) if parts else "SELECT rowid FROM docs"), args

    sql, args = matching()
    total = db.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()[0]
    if q.terms:
        hits = db.execute(f"SELECT d.card FROM fts JOIN docs d ON d.rowid = fts.rowid WHERE fts MATCH ? "
                          f"AND fts.rowid IN ({sql}) ORDER BY rank LIMIT ?",
                          [args[0], *args, q.limit]).fetchall()
    else:
        hits = db.execute(f"SELECT card FROM docs WHERE rowid IN ({sql}) ORDER BY sort_name LIMIT ?",
                          [*args, q.limit]).fetchall()
    facets: dict[str, Any] = {}
    for name in q.facets:
        sub, sub_args = matching(skip=name)
        if name == "cost_max":
            facets[name] = db.execute(f"SELECT SUM(cost <= 500), SUM(cost <= 1000), SUM(cost <= 5000) "
                                      f"FROM docs WHERE rowid IN ({sub})", sub_args).fetchone()
        else:
            facets[name] = db.execute(
                f"SELECT value, COUNT(*) FROM vals WHERE field = ? AND rowid IN ({sub}) "
                "GROUP BY value ORDER BY 2 DESC LIMIT ?", [name, *sub_args, q.facet_size]).fetchall()
    return {"total": total, "hits": [orjson.loads(h[0]) for h in hits], "facets": facets}


# --- workload ------------------------------------------------------------------------------------
def workload(base: list[dict[str, Any]], n: int, seed: int = 7) -> list[tuple[str, list[tuple[str, str]]]]:
    rng = random.Random(seed)
    words = [w for d in rng.sample(base, 2000) for w in text.tokens(" ".join(d.get("names", []))) if len(w) >= 5]
    lists = sorted({t.split(":", 1)[0] for d in base for t in d.get("list_at", [])})
    groups = sorted({g for d in base for g in d.get("soc_group", [])})

    def filters() -> list[tuple[str, str]]:
        options = [("state", ",".join(rng.sample(_US, rng.choice([1, 2])))),
                   ("type", rng.choice(["ceterms:Certificate", "ceterms:Degree", "Certification", "Credential"])),
                   ("soc_group", rng.choice(groups)), ("cost_max", rng.choice(["500", "1000", "5000"])),
                   ("delivery", rng.choice(["InPerson", "OnlineOnly"])), ("list", rng.choice(lists))]
        return rng.sample(options, rng.choice([1, 2, 3]))

    def words_q() -> list[tuple[str, str]]:
        return [("q", " ".join(rng.sample(words, rng.choice([1, 1, 2]))))]

    out: list[tuple[str, list[tuple[str, str]]]] = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        params: list[tuple[str, str]] = []
        if "text" in category:
            params += words_q()
        if "filters" in category:
            params += filters()
        if "facets" in category:
            params.append(("facets", FACETS))
        if i % 17 == 0 and "filters" in category:
            params += [("near", f"{rng.uniform(30, 45):.3f},{rng.uniform(-120, -75):.3f}"),
                       ("radius_km", rng.choice(["50", "150"]))]
        out.append((category, params))
    return out


def latencies(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for category, values in samples.items():
        ordered = sorted(values)
        out[category] = {"p50_ms": round(statistics.median(ordered) * 1000, 2),
                         "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
                         "queries": len(ordered)}
    return out


def run_tantivy(backend: TantivyBackend, queries: list[tuple[str, list[tuple[str, str]]]],
                facet_cache: bool = False, slowest: int = 0) -> dict[str, Any]:
    """Latencies per category. Without `facet_cache`, every request counts its facets (the
    service keeps counts per index generation, and the workload repeats its match-all query).
    With `slowest`, each category also lists its slowest queries (what makes the tail)."""
    samples: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    timed: dict[str, list[tuple[float, str, int]]] = {c: [] for c in CATEGORIES}
    parsed = [(c, p, parse(p, 100)) for c, p in queries]
    backend.queries.facet_cache_size = 256 if facet_cache else 0
    for _, _, q in parsed[:20]:  # warm the page cache and the field statistics
        backend.search(q)
    for category, params, q in parsed:
        start = time.perf_counter()
        page = backend.search(q)
        elapsed = time.perf_counter() - start
        samples[category].append(elapsed)
        timed[category].append((elapsed, urlencode(params), page.total))
    backend.queries.facet_cache_size = 256
    out = latencies(samples)
    if slowest:
        for category, rows in timed.items():
            out[category]["slowest"] = [{"ms": round(t * 1000, 1), "query": query, "total": total}
                                        for t, query, total in sorted(rows, reverse=True)[:slowest]]
    return out


def run_fts5(db: sqlite3.Connection, queries: list[tuple[str, list[tuple[str, str]]]],
             per_category: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    for category, params in queries:
        if len(samples[category]) >= per_category or any(k == "near" for k, _ in params):
            continue
        q = parse(params, 100)
        start = time.perf_counter()
        fts5_search(db, q)
        samples[category].append(time.perf_counter() - start)
    return latencies(samples)


def summary(engine: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    with_facets = max(engine[c]["p99_ms"] for c in CATEGORIES if "facets" in c)
    base_facets = max(baseline[c]["p99_ms"] for c in CATEGORIES if "facets" in c)
    return {"engine_p99_with_facets_ms": with_facets, "fts5_p99_with_facets_ms": base_facets,
            "ratio_p99": round(base_facets / with_facets, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--graphs", type=int, default=0,
                    help="corpus graphs to derive from (default: the smallest size, at most 100,000)")
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--fts-queries", type=int, default=40, help="per category (FTS5 is slow)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--index-dir", type=Path, help="keep the indexes here and reuse them (no indexing figures)")
    ap.add_argument("--no-fts", action="store_true")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-projection", action="store_true")
    ap.add_argument("--index-only", action="store_true", help="indexing figures only")
    ap.add_argument("--slowest", type=int, default=0, help="list each category's N slowest queries")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not (args.no_projection or args.index_only):
        projection_cost()
    base = base_documents(args.graphs or min(sizes[0], 100_000))
    queries = workload(base, args.queries)
    if args.index_dir:
        reuse(args, sizes, base, queries)
        return
    work = Path(tempfile.mkdtemp(prefix="credreg-bench-search-"))
    try:
        for size in sizes:
            docs = documents(base, size)
            for threads in ((1, 2) if size == sizes[0] else (2,)):
                path = work / f"t{size}-{threads}"
                backend, figures = build_tantivy(path / "search", docs, threads)
                record(f"search_index_{size}_{threads}t", figures)
                if threads != 2 or args.index_only:
                    del backend
                    shutil.rmtree(path, ignore_errors=True)
            if args.index_only:
                del docs
                gc.unfreeze()
                continue
            engine = run_tantivy(backend, queries, slowest=args.slowest)
            cached = run_tantivy(backend, queries, facet_cache=True)
            # Recorded now too, in case the slow baseline is cut short.
            record(f"search_query_{size}", {"tantivy": engine, "tantivy_facet_cache": cached})
            db, fts_seconds = build_fts5(work / f"fts{size}.sqlite3", iter(docs))
            del docs
            gc.unfreeze()
            baseline = run_fts5(db, queries, args.fts_queries)
            db.close()
            record(f"search_query_{size}", {"tantivy": engine, "tantivy_facet_cache": cached, "fts5": baseline,
                                            "fts5_build_documents_per_s": round(size / fts_seconds),
                                            **summary(engine, baseline)})
            if size == sizes[-1]:
                http(path, queries, args.seconds)
            del backend
            (work / f"fts{size}.sqlite3").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def reuse(args: argparse.Namespace, sizes: list[int], base: list[dict[str, Any]],
          queries: list[tuple[str, list[tuple[str, str]]]]) -> None:
    """Query figures on indexes kept under --index-dir (built there the first time)."""
    for size in sizes:
        path = args.index_dir / f"t{size}-2"
        if (path / "search").exists():
            backend = TantivyBackend(path / "search")
            backend.writer.wait_merging_threads()  # releases the writer: `credreg serve` may open it
        else:
            backend, _ = build_tantivy(path / "search", list(variants(base, size)), 2)
        engine = run_tantivy(backend, queries, slowest=args.slowest)
        cached = run_tantivy(backend, queries, facet_cache=True)
        result: dict[str, Any] = {"tantivy": engine, "tantivy_facet_cache": cached, "reused_index": True}
        if not args.no_fts:
            db, _ = build_fts5(args.index_dir / f"fts{size}.sqlite3", variants(base, size))
            result["fts5"] = run_fts5(db, queries, args.fts_queries)
            db.close()
            (args.index_dir / f"fts{size}.sqlite3").unlink(missing_ok=True)
        record(f"search_query_{size}", result)
        del backend
        if size == sizes[-1] and not args.no_http:
            http(path, queries, args.seconds)


def projection_cost(indexed: int = 3000, following: int = 2000, group: int = 10) -> None:
    """The search projection following the change log as a live registry does, `group` changes per
    index commit: microseconds per document derived, milliseconds per commit."""
    from registry.config import Settings
    from registry.service import Registry
    from search.projection import SearchProjection

    lines = corpus(indexed + following, seed=3).read_bytes().splitlines()
    work = Path(tempfile.mkdtemp(prefix="credreg-bench-projection-"))
    registry = Registry(Settings(data_dir=work, base_uri="http://registry.test", durable=False), projections=[])
    projection = SearchProjection(TantivyBackend(work / "search"))
    try:
        registry.import_many(((str(i), line) for i, line in enumerate(lines[:indexed])), lambda *a: None)
        projection.apply(registry.store.changes(0, 1), registry.store)  # the first catch-up: a rebuild
        registry.import_many(((str(i), line) for i, line in enumerate(lines[indexed:])), lambda *a: None)
        backend = projection.backend
        spent = {"write": 0.0, "commit": 0.0, "docs": 0.0, "commits": 0.0}
        write, commit = backend.write, backend._commit

        def timed_write(docs: list[Any], deletes: list[str], position: int) -> None:
            start = time.perf_counter()
            write(docs, deletes, position)
            spent["write"] += time.perf_counter() - start
            spent["docs"] += len(docs)

        def timed_commit(position: int) -> None:
            start = time.perf_counter()
            commit(position)
            spent["commit"] += time.perf_counter() - start
            spent["commits"] += 1

        backend.write, backend._commit = timed_write, timed_commit  # type: ignore[method-assign]
        changes = 0
        start = time.perf_counter()
        while batch := registry.store.changes(projection.position(), group):
            # What each group commit's catch-up hands the projection (apply() itself would take
            # everything up to the head in one go).
            projection._apply(batch, registry.store)
            changes += len(batch)
        total = time.perf_counter() - start
        record("search_projection", {
            "changes": changes, "changes_per_commit": group, "documents_derived": int(spent["docs"]),
            "us_per_document": round((total - spent["write"]) / spent["docs"] * 1e6),
            "ms_per_commit": round(spent["commit"] / spent["commits"] * 1000, 1),
            "us_per_change": round(total / changes * 1e6)})
    finally:
        registry.close()
        projection.close()
        shutil.rmtree(work, ignore_errors=True)


def http(data_dir: Path, queries: list[tuple[str, list[tuple[str, str]]]], seconds: int) -> None:
    """wrk against `credreg serve` on the index just built (an empty store: nothing to rebuild)."""
    lines = "\n".join("?" + urlencode(params) for _, params in queries)
    query_file = data_dir / "queries.txt"
    query_file.write_text(lines)
    with server(CREDREG_DATA_DIR=str(data_dir)) as (base, _):
        wrk(base + "/", HERE / "search.lua", seconds=2, connections=4, QUERIES=str(query_file))  # warm up
        result = wrk(base + "/", HERE / "search.lua", seconds=seconds, connections=4, QUERIES=str(query_file))
    record("search_http", {"requests_per_s": result["rps"], "p50": result["p50"], "p99": result["p99"],
                           "non_2xx": result["non_2xx"], "connections": 4, "queries": len(queries)})


if __name__ == "__main__":
    main()
