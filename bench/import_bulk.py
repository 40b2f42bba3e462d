"""Bulk import of a generated corpus (default 100k graphs) through the same code as
`credreg import`, durable, beside the naive pipeline (PyLD to_rdf + SQLite, one transaction per
document) on the first 300 documents; then the time each projection (search index, triple store)
takes to catch up from zero, as after an import or a `credreg reindex`.

    .venv/bin/python -m bench.import_bulk [--docs 100000]
"""
from __future__ import annotations

import argparse
import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
from pyld import jsonld

from bench.common import corpus, record
from ctdl.context import document_loader
from registry.config import Settings
from registry.service import Registry
from registry.sources import iter_sources
from registry.wiring import build_projections


def naive_import(lines: list[bytes], db_path: Path) -> float:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE records (ctid TEXT PRIMARY KEY, body BLOB, nq TEXT, etag TEXT)")
    start = time.perf_counter()
    for raw in lines:
        doc = orjson.loads(raw)
        nq = jsonld.to_rdf(doc, {"format": "application/n-quads", "documentLoader": document_loader})
        etag = hashlib.sha256(nq.encode()).hexdigest()
        db.execute("BEGIN")
        db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                   (doc["@graph"][0]["ceterms:ctid"], raw, nq, etag))
        db.execute("COMMIT")
    return len(lines) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    args = ap.parse_args()
    path = corpus(args.docs, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), durable=True)
        # the system of record: what `credreg import` does beside a live server (no projections)
        registry = Registry(settings, projections=[])
        start = time.perf_counter()
        counts = registry.import_many(iter_sources([path]), lambda *a: None)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        again = registry.import_many(iter_sources([path]), lambda *a: None)
        rerun = time.perf_counter() - start
        registry.close()
        # then each projection catching up from sequence 0, as at a server's start or `credreg reindex`
        catch_up = {}
        for projection in build_projections(settings):
            one = Registry(settings, projections=[])
            one.projector.projections.append(projection)
            start = time.perf_counter()
            one.projector.catch_up()
            catch_up[projection.name] = round(counts["imported"] / (time.perf_counter() - start), 1)
            one.close()
        baseline = naive_import(path.read_bytes().splitlines()[:300], Path(tmp) / "naive.sqlite3")
    rate = counts["imported"] / elapsed
    record("import", {"docs": args.docs, "imported": counts["imported"],
                      "rejected": counts["rejected"], "graphs_per_s": round(rate, 1),
                      "seconds": round(elapsed, 1), "rerun_unchanged": again["unchanged"],
                      "rerun_graphs_per_s": round(args.docs / rerun, 1),
                      "projection_catch_up_graphs_per_s": catch_up,
                      "baseline_graphs_per_s": round(baseline, 1), "ratio": round(rate / baseline, 1)})


if __name__ == "__main__":
    main()
