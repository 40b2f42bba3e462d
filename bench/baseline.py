"""The naive pipeline the benchmarks measure against: rdflib's JSON-LD parser and canonical
hashing, one SQLite transaction per document. What a first version built on the obvious libraries
would do."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from rdflib import Graph
from rdflib.compare import to_canonical_graph

from bench.common import local_context_doc


class NaiveStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS records (ctid TEXT PRIMARY KEY, body BLOB, nt TEXT, "
                        "etag TEXT)")

    def publish(self, raw: bytes) -> None:
        doc = orjson.loads(raw)
        graph = Graph().parse(data=orjson.dumps(local_context_doc(doc)).decode(), format="json-ld")
        nt = to_canonical_graph(graph).serialize(format="nt")
        etag = hashlib.sha256("".join(sorted(nt.splitlines())).encode()).hexdigest()
        ctid = doc["@graph"][0]["ceterms:ctid"]
        self.db.execute("BEGIN")
        self.db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)", (ctid, raw, nt, etag))
        self.db.execute("COMMIT")

    def get(self, ctid: str, fmt: str) -> bytes:
        body = self.db.execute("SELECT body FROM records WHERE ctid = ?", (ctid,)).fetchone()[0]
        doc: dict[str, Any] = local_context_doc(orjson.loads(body))
        graph = Graph().parse(data=orjson.dumps(doc).decode(), format="json-ld")
        return graph.serialize(format=fmt).encode()
