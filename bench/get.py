"""GET /resources/{ctid} as JSON-LD and as Turtle over HTTP with one worker, beside the naive
pipeline (rdflib parse + serialize per request) in-process.

    .venv/bin/python -m bench.get [--seconds 8]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench.baseline import NaiveStore
from bench.common import CREDREG, corpus, record, server, wait_caught_up, wrk

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--docs", type=int, default=5000)
    args = ap.parse_args()
    path = corpus(args.docs, seed=3)
    lines = path.read_bytes().splitlines()
    ctids = [json.loads(line)["@graph"][0]["ceterms:ctid"] for line in lines]
    results = {}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as ids:
        ids.write("\n".join(ctids))
        ids.flush()
        with server() as (base, env):
            subprocess.run([CREDREG, "import", "--no-progress", str(path)], env=env, check=True,
                           capture_output=True)
            wait_caught_up(base)
            for name, accept in (("jsonld", "application/ld+json"), ("turtle", "text/turtle")):
                results[name] = wrk(base + "/", HERE / "get.lua", seconds=args.seconds,
                                    connections=16, CTIDS=ids.name, ACCEPT=accept)
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaiveStore(Path(tmp) / "naive.sqlite3")
        for raw in lines[:200]:
            naive.publish(raw)
        for name, fmt in (("jsonld", "json-ld"), ("turtle", "turtle")):
            start = time.perf_counter()
            for ctid in ctids[:200]:
                naive.get(ctid, fmt)
            baseline = 200 / (time.perf_counter() - start)
            r = results[name]
            record(f"get_{name}", {"requests_per_s": r["rps"], "p50": r["p50"], "p99": r["p99"],
                                   "non_2xx": r["non_2xx"], "baseline_per_s": round(baseline, 1),
                                   "ratio": round(r["rps"] / baseline, 1)})


if __name__ == "__main__":
    main()
