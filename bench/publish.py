"""One-at-a-time durable publish over HTTP (each request one graph, fsync'd and visible to search
and SPARQL before it answers), beside the naive rdflib pipeline in-process on the same documents.
Also, in-process with the same concurrency, the system of record alone (no projections) and each
projection alone, to show where a publish's time goes.

    .venv/bin/python -m bench.publish [--seconds 8] [--connections 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.baseline import NaiveStore
from bench.common import admin_key, corpus, record, server, wait_caught_up, wrk
from registry.config import Settings
from registry.service import Registry
from registry.wiring import build_projections

HERE = Path(__file__).resolve().parent


def in_process(lines: list[bytes], projections: str, concurrency: int) -> float:
    """Graphs/s publishing through the service layer from `concurrency` threads."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), durable=True)
        chosen = [p for p in build_projections(settings) if p.name in projections.split(",")]
        registry = Registry(settings, projections=chosen)

        def one(raw: bytes) -> None:
            registry.publish(registry.prepare(raw), None, mode="import")

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, lines))
        rate = len(lines) / (time.perf_counter() - start)
        registry.close()
        return round(rate, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--docs", type=int, default=30000)
    ap.add_argument("--baseline-docs", type=int, default=200)
    args = ap.parse_args()
    path = corpus(args.docs, seed=11)

    with server(CREDREG_DURABLE="true") as (base, env):
        key = admin_key(env)
        start = time.perf_counter()
        result = wrk(base + "/", HERE / "publish.lua", seconds=args.seconds,
                     connections=args.connections, BODIES=str(path), KEY=key)
        answered = time.perf_counter()
        wait_caught_up(base)  # the sustained rate counts until search and SPARQL have it all
        settled = time.perf_counter()
    published = result["requests"] - result["non_2xx"]
    sustained = published / (settled - start)

    lines = path.read_bytes().splitlines()[: args.baseline_docs]
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveStore(Path(tmp) / "naive.sqlite3")
        start = time.perf_counter()
        for raw in lines:
            naive.publish(raw)
        baseline = len(lines) / (time.perf_counter() - start)
    sample = path.read_bytes().splitlines()[:3000]
    parts = {name or "store only": in_process(sample, name, args.connections)
             for name in ("", "search", "rdf", "search,rdf")}
    record("publish", {"graphs_per_s": result["rps"], "p50": result["p50"], "p99": result["p99"],
                       "projected_graphs_per_s": round(sustained, 1),
                       "projections_done_after_s": round(settled - answered, 2),
                       "requests": result["requests"], "non_2xx": result["non_2xx"],
                       "connections": args.connections, "baseline_graphs_per_s": round(baseline, 1),
                       "ratio": round(result["rps"] / baseline, 1),
                       "in_process_graphs_per_s": parts})


if __name__ == "__main__":
    main()
