"""Contract tests of the Elasticsearch backend's lookups by lists of CTIDs (chunked, paged, merged)
and of how it answers cursors and searches Elasticsearch refuses. The scripted server of
tests/test_search_es_contract.py stands in for the HTTP layer; responses are shaped as the
Elasticsearch reference documents them."""
from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from registry.app import create_app
from registry.errors import BadRequest
from registry.service import Registry
from search.http import SearchHandlers
from search.projection import SearchProjection
from search.query import parse
from search.summary import Summary
from tests.conftest import BASE
from tests.test_search_es_contract import SEARCH_RESPONSE, Call, Server, backend, existing_server


def ctids(n: int, prefix: str = "ce-t") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def summary_json(ctid: str) -> str:
    return Summary(ctid, "ceterms:Certificate", "credential", "Welding", ["Welding"], []).to_json().decode()


def looked_up(body: dict[str, Any]) -> list[str]:
    """The CTIDs a lookup request asks about (ids or terms query)."""
    query = body["query"]
    if "ids" in query:
        return list(query["ids"]["values"])
    ((_, values),) = query["terms"].items()
    return list(values)


def hit(ctid: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"_index": "credreg-v2-x", "_id": ctid, "_score": None, "_source": source, "sort": [ctid]}


def search_response(hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": None, "hits": hits}}


def matching(make: Callable[[str], list[dict[str, Any]]]) -> Callable[[Call], tuple[int, Any]]:
    """A search answer from the documents `make` gives for each looked-up CTID, ordered by ctid
    and cut as the request's sort, search_after and size say."""
    def answer(call: Call) -> tuple[int, Any]:
        found = sorted({h["_id"]: h for t in looked_up(call.body) for h in make(t)}.values(),
                       key=lambda h: h["_id"])
        after = call.body.get("search_after", [""])[0]
        return 200, search_response([h for h in found if h["_id"] > after][:call.body["size"]])
    return answer


def lookups(server: Server) -> list[Call]:
    return [c for c in server.calls if c.method == "POST" and c.path == "/credreg/_search"]


# --- lookups by lists of CTIDs --------------------------------------------------------------------
def test_a_lookup_of_2500_ctids_is_three_requests_of_at_most_1000_terms_merged() -> None:
    server = existing_server()
    # Every other looked-up CTID has one document linking to it (and reading it), named after it:
    # under a page per chunk, so one request each.
    server.on("POST", "/credreg/_search", matching(lambda t: [
        hit(f"src-{t}", {"summary": summary_json(f"src-{t}")})] if int(t[-1]) % 2 == 0 else []))
    es = backend(server)
    wanted = ctids(2500)
    for lookup, field in ((es.linking_to, "link_dst"), (es.readers_of, "deps")):
        server.calls.clear()
        found = lookup(wanted)
        calls = lookups(server)
        assert len(calls) == 3
        assert [len(looked_up(c.body)) for c in calls] == [1000, 1000, 500]
        assert all(list(c.body["query"]["terms"]) == [field] for c in calls)
        assert [t for c in calls for t in looked_up(c.body)] == wanted  # each CTID asked once
        assert set(found) == {f"src-{t}" for t in wanted[::2]}
    assert isinstance(es.linking_to(wanted[:1])["src-ce-t00000"], Summary)


def test_lookups_by_id_are_chunked_and_stop_once_every_id_is_found() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", matching(lambda t: [hit(t, {
        "summary": summary_json(t), "link_dst": [f"dst-{t}"], "card": {"name": f"Name {t}"}})]))
    es = backend(server)
    wanted = ctids(2500)
    for lookup in (es.summaries, es.links_of, es.names):
        server.calls.clear()
        found = lookup(wanted)
        calls = lookups(server)
        # A chunk of 1,000 ids has at most 1,000 documents: no empty second page is asked for.
        assert [len(looked_up(c.body)) for c in calls] == [1000, 1000, 500]
        assert all("ids" in c.body["query"] and "search_after" not in c.body for c in calls)
        assert set(found) == set(wanted)
    assert es.links_of(["ce-t00007"]) == {"ce-t00007": ["dst-ce-t00007"]}
    assert es.names(["ce-t00007"]) == {"ce-t00007": "Name ce-t00007"}


def test_names_of_more_than_a_result_window_are_not_one_request() -> None:
    # names() asked for size=len(ctids): above index.max_result_window (10,000) Elasticsearch
    # refuses the request.
    server = existing_server()
    server.on("POST", "/credreg/_search", matching(lambda t: [hit(t, {"card": {"name": t.upper()}})]))
    es = backend(server)
    names = es.names(ctids(10_001))
    assert len(names) == 10_001 and names["ce-t10000"] == "CE-T10000"
    assert all(c.body["size"] <= 1000 and len(looked_up(c.body)) <= 1000 for c in lookups(server))


def test_a_chunk_with_more_matches_than_a_page_is_paged_with_search_after() -> None:
    server = existing_server()
    wanted = ctids(1001)
    pages = {  # first chunk: 1,000 + 500 documents read it; second chunk: one
        (0, None): [hit(f"r-{i:04d}", {}) for i in range(1000)],
        (0, "r-0999"): [hit(f"r-{i:04d}", {}) for i in range(1000, 1500)],
        (1, None): [hit("r-last", {})]}

    def answer(call: Call) -> tuple[int, Any]:
        chunk = 0 if looked_up(call.body)[0] == wanted[0] else 1
        after = call.body.get("search_after", [None])[0]
        return 200, search_response(pages[(chunk, after)])

    server.on("POST", "/credreg/_search", answer)
    es = backend(server)
    readers = es.readers_of(wanted)
    assert len(readers) == 1501 and "r-last" in readers
    calls = lookups(server)
    assert [(len(looked_up(c.body)), c.body.get("search_after")) for c in calls] == [
        (1000, None), (1000, ["r-0999"]), (1, None)]
    assert all(c.body["sort"] == [{"ctid": "asc"}] and c.body["size"] == 1000 for c in calls)


def test_a_document_found_through_two_chunks_is_merged_once() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", lambda c: (200, search_response(
        [hit("ce-hub", {"summary": summary_json("ce-hub")})])))  # links to something in every chunk
    es = backend(server)
    assert list(es.linking_to(ctids(1500))) == ["ce-hub"]
    assert len(lookups(server)) == 2
    assert es.readers_of([]) == set() and es.summaries([]) == {} and es.names([]) == {}
    assert len(lookups(server)) == 2  # nothing to look up, nothing asked


# --- cursors and refused searches -----------------------------------------------------------------
# As Elasticsearch answers a search_after that does not fit the sort (SearchAfterBuilder: every
# shard fails, the search answers 400; error body as the REST API documents it).
SEARCH_AFTER_REFUSED = {"error": {
    "root_cause": [{"type": "illegal_argument_exception",
                    "reason": "Failed to parse search_after value for field [sort_name]."}],
    "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
    "grouped": True,
    "failed_shards": [{"shard": 0, "index": "credreg-v2-20260101000000-000", "node": "Qx1bq6dWQ1mKJ2lGN0dmbg",
                       "reason": {"type": "illegal_argument_exception",
                                  "reason": "Failed to parse search_after value for field [sort_name]."}}],
    "caused_by": {"type": "illegal_argument_exception",
                  "reason": "Failed to parse search_after value for field [sort_name]."}},
    "status": 400}
TOO_MANY_CLAUSES = {"error": {
    "root_cause": [{"type": "too_many_nested_clauses",
                    "reason": "Query contains too many nested clauses; maxClauseCount is set to 4096"}],
    "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
    "grouped": True, "failed_shards": []}, "status": 400}


def cursor(params: list[tuple[str, str]], after: Any, offset: int = 2) -> str:
    """A cursor for the search `params` with any resume point: what a client can write."""
    raw = orjson.dumps({"f": parse(params, 100).fingerprint(), "a": after, "o": offset})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def searches(server: Server) -> list[Call]:
    """The GET /search requests sent (not the projection's own, e.g. its next-expiry check)."""
    return [c for c in lookups(server) if "track_total_hits" in c.body]


@pytest.fixture
def es_server() -> Server:
    server = existing_server()
    server.on("POST", "/credreg/_search", lambda c: (200, SEARCH_RESPONSE if "track_total_hits" in c.body else {
        **search_response([]), "aggregations": {"m": {"value": None}}}))  # nothing expires
    return server


@pytest.fixture
def es_client(registry: Registry, es_server: Server) -> Iterator[TestClient]:
    """The service's app with GET /search answered by the Elasticsearch backend."""
    handlers = SearchHandlers(registry, SearchProjection(backend(es_server)))
    app = create_app(registry)
    app.router.routes.insert(0, Route("/search", handlers.search, methods=["GET"]))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client


FORGED = [
    ("name", [7, "ce-b"]),  # the name key is a string
    ("name", ["welding"]),  # one value for a sort of two
    ("name", ["welding", "ce-b", "x"]),
    ("name", ["welding", 3]),  # the tie-break is the ctid, a string
    ("name", [None, "ce-b"]),
    ("name", {"sort_name": "welding"}),
    ("name", None),
    ("newest", ["yesterday", "ce-b"]),
    ("newest", [1.5e300, "ce-b"]),
    ("newest", [2**63, "ce-b"]),  # beyond a long
    ("newest", [True, "ce-b"]),
    ("relevance", ["high", "ce-b"]),
    ("cost", ["-Infinity", "ce-b"]),
    ("cost", [[1], "ce-b"]),
    ("name", 0),  # an offset: Tantivy's start at 1, and go no deeper than 10,000
    ("name", 10_001),
    ("name", 1),  # fewer positions than results already returned (o=2)
    ("name", True),
]


@pytest.mark.parametrize("sort, after", FORGED, ids=[f"{s}-{a!r}" for s, a in FORGED])
def test_a_forged_resume_point_is_a_400_naming_cursor(es_client: TestClient, es_server: Server,
                                                      sort: str, after: Any) -> None:
    params = [("q", "welding"), ("sort", sort)]
    es_server.calls.clear()
    response = es_client.get("/search", params=[*params, ("cursor", cursor(params, after))])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["parameter"] == "cursor"
    assert searches(es_server) == []  # refused before Elasticsearch is asked


def test_forged_offsets_are_refused() -> None:
    params = [("sort", "name")]
    for offset in (-1, True, 2**63):
        with pytest.raises(BadRequest) as caught:
            parse([*params, ("cursor", cursor(params, ["welding", "ce-b"], offset))], 100)
        assert caught.value.extra == {"parameter": "cursor"}


VALID = [
    ("name", ["welding", "ce-b"]),
    ("name", ["", "ce-b"]),  # a record without a name sorts first
    ("newest", [1_767_225_600_000_000, "ce-b"]),
    ("newest", [-(2**63), "ce-b"]),  # no date: Long.MIN_VALUE, last in descending order
    ("relevance", [2.25, "ce-b"]),
    ("cost", [300.0, "ce-b"]),
    ("cost", ["Infinity", "ce-b"]),  # no cost: last
    ("duration", [3, "ce-b"]),
]


@pytest.mark.parametrize("sort, after", VALID, ids=[f"{s}-{a!r}" for s, a in VALID])
def test_resume_points_elasticsearch_issues_reach_search_after(es_client: TestClient, es_server: Server,
                                                               sort: str, after: list[Any]) -> None:
    params = [("q", "welding"), ("sort", sort)]
    es_server.calls.clear()
    response = es_client.get("/search", params=[*params, ("cursor", cursor(params, after))])
    assert response.status_code == 200, response.text
    assert searches(es_server)[-1].body["search_after"] == after


def test_an_offset_cursor_on_elasticsearch_is_a_400_naming_cursor(es_client: TestClient) -> None:
    params = [("q", "welding")]
    response = es_client.get("/search", params=[*params, ("cursor", cursor(params, 20, 20))])
    assert response.status_code == 400 and response.json()["parameter"] == "cursor"


def test_a_cursor_elasticsearch_refuses_is_a_400_naming_cursor(es_client: TestClient, es_server: Server) -> None:
    # Well-formed, but not for this index (say, issued before a reindex): Elasticsearch answers 400.
    es_server.on("POST", "/credreg/_search", (400, SEARCH_AFTER_REFUSED))
    params = [("q", "welding"), ("sort", "name")]
    response = es_client.get("/search", params=[*params, ("cursor", cursor(params, ["welding", "ce-b"]))])
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["parameter"] == "cursor" and problem["type"] == "urn:credreg:problem:bad-request"
    assert "Failed to parse search_after value for field [sort_name]" in problem["detail"]


def test_a_search_elasticsearch_refuses_is_a_400_not_an_outage(es_client: TestClient, es_server: Server) -> None:
    es_server.on("POST", "/credreg/_search", (400, TOO_MANY_CLAUSES))
    response = es_client.get("/search", params={"q": "welding"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert "parameter" not in problem
    assert "too many nested clauses" in problem["detail"]
    es_server.on("POST", "/credreg/_search", (503, {"error": {"root_cause": [], "type": "cluster_block_exception",
                                                               "reason": "blocked"}, "status": 503}))
    assert es_client.get("/search", params={"q": "welding"}).status_code == 503  # an outage still is
