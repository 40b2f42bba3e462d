"""The Tantivy bulk load (`load`: documents parsed from JSON in Rust) builds the same index as the
incremental path (`write`: documents built with `Document.from_dict`): stored fields, columns and
index terms of every field. Set columns and sort keys are columns only: no index terms."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tantivy

from search.documents import SearchDocument, derive
from search.graph import Graph
from search.projection import MemoryResolver
from search.tantivy_backend import TantivyBackend
from search.tantivy_schema import FILTER_FIELDS, RANGE_SLOTS, SET_COLUMNS, TEXT_FIELDS
from tests.conftest import SHARED, need_shared

GENERATOR = SHARED / "tools" / "ctdl_corpus.py"
NUMERIC_COLUMNS = ("cost", "duration", "credits", "valid_until", "lat", "lon", "npoints", "key", "modified_us")
TEXT_COLUMNS = (*SET_COLUMNS.values(), "list_at", "sort_name")
INDEXED = ("ctid", *FILTER_FIELDS, RANGE_SLOTS, "link_dst", "list_at", *TEXT_FIELDS)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[SearchDocument]:
    need_shared(GENERATOR)
    out = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    subprocess.run([sys.executable, str(GENERATOR), "--docs", "600", "--seed", "11", "--out", str(out)],
                   check=True, capture_output=True)
    lines = out.read_bytes().splitlines()
    resolver = MemoryResolver.of((None, Graph.from_bytes(line)) for line in lines)
    docs = []
    for i, line in enumerate(lines):
        g = Graph.from_bytes(line)
        resolver.begin()
        d = derive(g, g.ctid or "", "2026-01-01T00:00:00.000000Z", resolver)
        if d is not None:
            d.deps = resolver.reads(d.ctid)
            d.modified_us += i
            docs.append(d)
    return docs


def contents(backend: TantivyBackend) -> dict[str, Any]:
    searcher = backend.index.searcher()
    stored = {}
    for _, addr in searcher.search(tantivy.Query.all_query(), 10_000).hits:
        doc = searcher.doc(addr).to_dict()
        stored[doc["ctid"][0]] = doc
    aggs: dict[str, Any] = {f: {"stats": {"field": f}} for f in NUMERIC_COLUMNS}
    aggs |= {f: {"terms": {"field": f, "size": 100_000}} for f in TEXT_COLUMNS}
    columns = searcher.aggregate(tantivy.Query.all_query(), aggs)
    terms = {f: sorted(searcher.terms_with_prefix(f, "")) for f in (*INDEXED, *TEXT_COLUMNS)}
    return {"stored": stored, "columns": columns, "terms": terms}


def test_bulk_load_builds_the_incremental_index(tmp_path: Path, documents: list[SearchDocument]) -> None:
    bulk, incremental = TantivyBackend(tmp_path / "bulk"), TantivyBackend(tmp_path / "incremental")
    try:
        assert bulk.rebuild(documents, 9) == len(documents)
        # One commit: term counts include deleted documents, and each commit replaces the meta one.
        incremental.write(documents, [], 9)
        loaded, written = contents(bulk), contents(incremental)
        assert len(loaded["stored"]) == len(documents) + 1  # and the meta document
        assert loaded == written
        assert bulk.position() == incremental.position() == 9
    finally:
        bulk.close()
        incremental.close()


def test_set_columns_and_sort_keys_are_columns_only(tmp_path: Path, documents: list[SearchDocument]) -> None:
    backend = TantivyBackend(tmp_path / "search")
    try:
        backend.rebuild(documents, 1)
        found = contents(backend)
        for field in TEXT_COLUMNS:
            if field == "list_at":  # searched for list_as_of: indexed as well
                assert found["terms"][field]
                continue
            assert found["terms"][field] == [], field
        names = found["columns"]["sort_name"]["buckets"]
        assert sum(b["doc_count"] for b in names) == len(documents)
        assert sum(b["doc_count"] for b in found["columns"]["set_kind"]["buckets"]) == len(documents)
    finally:
        backend.close()
