"""Where the records aggregate's time goes: its parts and other formulations, timed in this
process (wall and CPU time) on a store that `bench.sparql --data DIR` loaded.

    .venv/bin/python -m bench.sparql_records DIR/oxigraph [--read-write] [--reps 3]

`ctid_scan` and `typed_nodes` are the two scans the join is made of; `as_written` is the join
Oxigraph runs as a nested loop (the scan, then one `rdf:type` lookup per subject), so
(as_written - ctid_scan) / ctid subjects is the cost of one lookup; `hash_join` scans both and
joins them in memory; `graph_g` joins inside each record graph. `--read-write` opens the store
the way the projection does instead of read-only, as the query workers do.
"""
from __future__ import annotations

import argparse
import statistics
import time

import pyoxigraph as ox

P = "PREFIX ceterms: <https://purl.org/ctdl/terms/>\n"
GROUP = " GROUP BY ?type ORDER BY DESC(?n)"
QUERIES = {
    "ctid_scan": P + "SELECT (COUNT(*) AS ?n) WHERE { ?s ceterms:ctid ?id }",
    "ctid_subjects": P + "SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s ceterms:ctid ?id }",
    "typed_nodes": "SELECT (COUNT(*) AS ?n) WHERE { ?s a ?type }",
    "as_written": P + "SELECT ?type (COUNT(*) AS ?n) WHERE { ?s ceterms:ctid ?id ; a ?type }" + GROUP,
    "graph_g": P + "SELECT ?type (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ceterms:ctid ?id ; a ?type } }" + GROUP,
    "hash_join": P + "SELECT ?type (COUNT(*) AS ?n) WHERE { ?s ceterms:ctid ?id "
                     "{ SELECT ?s ?type WHERE { ?s a ?type } OFFSET 0 } }" + GROUP,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--read-write", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--queries", default=",".join(QUERIES))
    args = ap.parse_args()
    store = ox.Store(args.path) if args.read_write else ox.Store.read_only(args.path)
    for name in args.queries.split(","):
        walls, cpus = [], []
        for _ in range(args.reps):
            cpu, wall = time.process_time(), time.perf_counter()
            solutions = store.query(QUERIES[name], use_default_graph_as_union=True)
            assert isinstance(solutions, ox.QuerySolutions)
            rows = [[str(v) for v in solution] for solution in solutions]
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(f"{name}: wall p50 {statistics.median(walls) * 1000:.0f} ms, cpu p50 "
              f"{statistics.median(cpus) * 1000:.0f} ms ({args.reps} runs); {len(rows)} rows, first {rows[:1]}",
              flush=True)


if __name__ == "__main__":
    main()
