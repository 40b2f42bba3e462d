"""One-at-a-time durable publish over HTTP (each request one graph, fsync'd before it answers;
search and SPARQL reads made after it wait until it is applied), beside the naive rdflib pipeline
in-process on the same documents. Reported: the acknowledged rate, and the rate counted until the
projections have applied everything (what a sustained load gets). Then the same with
CREDREG_PROJECTIONS set to none, search only and RDF only, to show where a publish's time goes.

    .venv/bin/python -m bench.publish [--seconds 8] [--connections 16]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baseline import NaiveStore
from bench.common import admin_key, corpus, record, server, wait_caught_up, wrk

HERE = Path(__file__).resolve().parent


def over_http(path: Path, seconds: int, connections: int, projections: str) -> dict[str, Any]:
    with server(CREDREG_DURABLE="true", CREDREG_PROJECTIONS=projections) as (base, env):
        key = admin_key(env)
        start = time.perf_counter()
        result = wrk(base + "/", HERE / "publish.lua", seconds=seconds, connections=connections,
                     BODIES=str(path), KEY=key)
        answered = time.perf_counter()
        wait_caught_up(base)
        settled = time.perf_counter()
    published = result["requests"] - result["non_2xx"]
    return {"graphs_per_s": result["rps"], "p50": result["p50"], "p99": result["p99"],
            "requests": result["requests"], "non_2xx": result["non_2xx"],
            "projected_graphs_per_s": round(published / (settled - start), 1),
            "projections_done_after_s": round(settled - answered, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--docs", type=int, default=30000)
    ap.add_argument("--baseline-docs", type=int, default=200)
    args = ap.parse_args()
    path = corpus(args.docs, seed=11)

    full = over_http(path, args.seconds, args.connections, "search,rdf")
    parts = {name or "none": over_http(path, args.seconds, args.connections, name)["graphs_per_s"]
             for name in ("", "search", "rdf")}

    lines = path.read_bytes().splitlines()[: args.baseline_docs]
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveStore(Path(tmp) / "naive.sqlite3")
        start = time.perf_counter()
        for raw in lines:
            naive.publish(raw)
        baseline = len(lines) / (time.perf_counter() - start)
    record("publish", {**full, "connections": args.connections,
                       "baseline_graphs_per_s": round(baseline, 1),
                       "ratio": round(full["graphs_per_s"] / baseline, 1),
                       "graphs_per_s_by_projections": parts})


if __name__ == "__main__":
    main()
