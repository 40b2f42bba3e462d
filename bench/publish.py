"""One-at-a-time durable publish over HTTP (each request one graph, fsync'd before it answers),
beside the naive rdflib pipeline in-process on the same documents.

    .venv/bin/python -m bench.publish [--seconds 8] [--connections 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.baseline import NaiveStore
from bench.common import admin_key, corpus, record, server, wrk

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--docs", type=int, default=30000)
    ap.add_argument("--baseline-docs", type=int, default=200)
    args = ap.parse_args()
    path = corpus(args.docs, seed=11)

    with server(CREDREG_DURABLE="true") as (base, env):
        result = wrk(base + "/", HERE / "publish.lua", seconds=args.seconds,
                     connections=args.connections, BODIES=str(path), KEY=admin_key(env))

    lines = path.read_bytes().splitlines()[: args.baseline_docs]
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveStore(Path(tmp) / "naive.sqlite3")
        start = time.perf_counter()
        for raw in lines:
            naive.publish(raw)
        baseline = len(lines) / (time.perf_counter() - start)
    record("publish", {"graphs_per_s": result["rps"], "p50": result["p50"], "p99": result["p99"],
                       "requests": result["requests"], "non_2xx": result["non_2xx"],
                       "connections": args.connections, "baseline_graphs_per_s": round(baseline, 1),
                       "ratio": round(result["rps"] / baseline, 1)})


if __name__ == "__main__":
    main()
