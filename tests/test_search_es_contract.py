"""Contract tests of the Elasticsearch backend: the exact requests it sends (template, mappings,
aliases, bulk bodies, queries, aggregations) and how it reads responses shaped as the Elasticsearch
reference documents them. Only the HTTP layer is replaced: a node class that records each request
and answers from a script; the official client, its serializers, retries and helpers all run."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders
from elastic_transport._node import NodeApiResponse
from elasticsearch import Elasticsearch

from search import timeline
from search.documents import SearchDocument
from search.elasticsearch_backend import (
    LAYOUT_VERSION,
    CompatNode,
    ElasticsearchBackend,
    index_template,
    to_source,
)
from search.query import parse
from search.summary import Summary

ALIAS = "credreg"
FIXED_TIME = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@dataclass
class Call:
    method: str
    path: str
    query: str
    headers: HttpHeaders
    body: Any


Responder = Callable[[Call], tuple[int, Any]]


class Server:
    """Scripted answers by (method, path regex), in order; records every request."""

    def __init__(self, product: str | None = "Elasticsearch") -> None:
        self.calls: list[Call] = []
        self.routes: list[tuple[str, re.Pattern[str], Responder]] = []
        self.product = product

    def on(self, method: str, pattern: str, responder: Responder | tuple[int, Any]) -> None:
        fn = responder if callable(responder) else (lambda call, r=responder: r)
        self.routes.insert(0, (method, re.compile(f"^{pattern}$"), fn))

    def answer(self, call: Call) -> tuple[int, Any]:
        for method, pattern, fn in self.routes:
            if method == call.method and pattern.match(call.path):
                return fn(call)
        raise AssertionError(f"unexpected request {call.method} {call.path}")

    def client(self) -> Elasticsearch:
        server = self

        class Recorder(CompatNode):
            def send(self, method: str, target: str, body: bytes | None, headers: HttpHeaders,
                     request_timeout: Any) -> NodeApiResponse:
                path, _, query = target.partition("?")
                parsed: Any = None
                if body:
                    text = body.decode()
                    parsed = [orjson.loads(line) for line in text.splitlines() if line] \
                        if path.endswith("/_bulk") else orjson.loads(text)
                call = Call(method, path, query, headers, parsed)
                server.calls.append(call)
                status, payload = server.answer(call)
                out = {"content-type": "application/json"}
                if server.product:
                    out["x-elastic-product"] = server.product
                meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(out),
                                       duration=0.0, node=self.config)
                return NodeApiResponse(meta, orjson.dumps(payload))

        return Elasticsearch("http://es.test:9200", node_class=Recorder, max_retries=0)

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]


def fresh_server(product: str | None = "Elasticsearch") -> Server:
    server = Server(product)
    server.on("PUT", "/_index_template/credreg-template", (200, {"acknowledged": True}))
    server.on("GET", "/_alias/credreg", (404, {"error": "alias [credreg] missing", "status": 404}))
    server.on("PUT", "/credreg-v2-[0-9-]+", lambda c: (200, {
        "acknowledged": True, "shards_acknowledged": True, "index": c.path[1:]}))
    server.on("POST", "/_aliases", (200, {"acknowledged": True}))
    server.on("GET", "/credreg/_doc/_meta", (404, {"_index": "credreg-v2-20260921141320-000", "_id": "_meta",
                                                   "found": False}))
    return server


def existing_server(index: str = f"credreg-v{LAYOUT_VERSION}-20260101000000-000",
                    meta: dict[str, Any] | None = None) -> Server:
    server = Server()
    server.on("PUT", "/_index_template/credreg-template", (200, {"acknowledged": True}))
    server.on("GET", "/_alias/credreg", (200, {index: {"aliases": {"credreg": {}}}}))
    source = meta if meta is not None else {"ctid": "_meta", "kind": "_meta", "position": 41}
    server.on("GET", "/credreg/_doc/_meta", (200, {
        "_index": index, "_id": "_meta", "_version": 3, "_seq_no": 2, "_primary_term": 1, "found": True,
        "_source": source}))
    return server


def backend(server: Server) -> ElasticsearchBackend:
    return ElasticsearchBackend(server.client(), ALIAS, clock=lambda: FIXED_TIME)


def doc(ctid: str = "ce-00000000-0000-4000-8000-000000000010", **over: Any) -> SearchDocument:
    base = SearchDocument(
        ctid=ctid, kind="credential", type="ceterms:Certificate",
        types=["ceterms:Certificate", "ceterms:Credential"], name="Welding", names=["Welding"],
        description=["Hands-on."], keywords=["weld"], occupations=["Welders"], organizations=["Board"],
        owner=["ce-00000000-0000-4000-8000-000000000001"], soc=["51-4121"], soc_group=["51"],
        state=["OH"], points=[(39.75, -84.19)], cost=300.0, duration=3.0, modified="2026-01-01T00:00:00Z",
        sort_name="welding", modified_us=1_767_225_600_000_000, link_dst=[],
        deps=["ce-00000000-0000-4000-8000-000000000001"],
        summary=Summary(ctid, "ceterms:Certificate", "credential", "Welding", ["Welding"], []).to_json(),
        card={"ctid": ctid, "name": "Welding", "type": "ceterms:Certificate", "kind": "credential"})
    for k, v in over.items():
        setattr(base, k, v)
    return base


# --- start-up: template, versioned index, alias -------------------------------------------------
def test_first_start_puts_the_template_and_creates_a_versioned_index_behind_the_alias() -> None:
    server = fresh_server()
    es = backend(server)
    assert server.paths() == ["PUT /_index_template/credreg-template", "GET /_alias/credreg",
                              "PUT /credreg-v2-20260921141320-000", "POST /_aliases"]
    template = server.calls[0].body
    assert template["index_patterns"] == ["credreg-v*"]
    settings = template["template"]["settings"]
    assert settings["analysis"]["analyzer"]["credreg"] == {
        "type": "custom", "tokenizer": "credreg_words", "filter": ["credreg_long", "lowercase", "asciifolding"]}
    assert settings["analysis"]["tokenizer"]["credreg_words"] == {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    props = mappings["properties"]
    assert props["names"] == {"type": "text", "analyzer": "credreg"}
    assert props["state"] == {"type": "keyword"} and props["list_at"] == {"type": "keyword"}
    assert props["points"] == {"type": "geo_point"} and props["cost"] == {"type": "double"}
    assert props["card"] == {"type": "object", "enabled": False}
    assert server.calls[3].body == {"actions": [{"add": {"index": "credreg-v2-20260921141320-000",
                                                         "alias": "credreg"}}]}
    assert es.position() == 0  # nothing indexed yet: the projection will build
    assert server.paths()[-1] == "GET /credreg/_doc/_meta"


def test_requests_are_plain_json_and_opensearch_is_accepted() -> None:
    server = fresh_server(product=None)  # OpenSearch sends no X-Elastic-Product
    backend(server)
    for call in server.calls:
        assert call.headers["accept"] == "application/json"
        if call.body is not None:
            assert call.headers["content-type"] == "application/json"


def test_an_index_of_an_older_layout_is_rebuilt() -> None:
    server = existing_server(index="credreg-v0-20250101000000-000")
    assert backend(server).position() == 0
    assert backend(existing_server()).position() == 41


# --- writes -------------------------------------------------------------------------------------
def test_write_journals_then_bulks_then_records_the_position() -> None:
    server = existing_server()
    server.on("PUT", "/credreg/_doc/_meta", (200, {"_index": "credreg-v2-x", "_id": "_meta", "result": "updated",
                                                   "_shards": {"total": 1, "successful": 1, "failed": 0}}))
    server.on("PUT", "/_bulk", lambda c: (200, {"took": 3, "errors": False, "items": [
        {("delete" if "delete" in line else "index"): {"_index": "credreg-v2-x", "_id": "x", "status":
                                                       404 if "delete" in line else 201}}
        for line in c.body if "delete" in line or "index" in line]}))
    server.on("POST", "/credreg/_refresh", (200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}))
    es = backend(server)
    server.calls.clear()
    d = doc()
    es.write([d], ["ce-00000000-0000-4000-8000-000000000099"], 57)
    assert server.paths() == ["GET /credreg/_doc/_meta", "PUT /credreg/_doc/_meta", "PUT /_bulk",
                              "PUT /credreg/_doc/_meta", "POST /credreg/_refresh"]
    assert server.calls[1].body == {"ctid": "_meta", "kind": "_meta", "position": 41, "pending": [
        "ce-00000000-0000-4000-8000-000000000010", "ce-00000000-0000-4000-8000-000000000099"]}
    bulk = server.calls[2].body
    assert bulk[0] == {"delete": {"_index": "credreg", "_id": "ce-00000000-0000-4000-8000-000000000099"}}
    assert bulk[1] == {"index": {"_index": "credreg", "_id": d.ctid}}
    assert bulk[2] == orjson.loads(orjson.dumps(to_source(d)))
    assert bulk[2]["points"] == [{"lat": 39.75, "lon": -84.19}] and "credits" not in bulk[2]
    assert server.calls[2].headers["content-type"] == "application/x-ndjson"
    assert server.calls[3].body == {"ctid": "_meta", "kind": "_meta", "position": 57}


def test_bulk_retries_rejected_items_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    server = existing_server()
    server.on("PUT", "/credreg/_doc/_meta", (200, {"result": "updated"}))
    server.on("POST", "/credreg/_refresh", (200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}))
    attempts: list[int] = []

    def bulk(call: Call) -> tuple[int, Any]:
        attempts.append(len(call.body) // 2)
        items = []
        for i, line in enumerate(call.body[::2]):
            status = 429 if len(attempts) == 1 and i == 1 else 201
            item = {"_index": "credreg-v2-x", "_id": line["index"]["_id"], "status": status}
            if status == 429:
                item["error"] = {"type": "es_rejected_execution_exception", "reason": "rejected execution"}
            items.append({"index": item})
        return 200, {"took": 1, "errors": len(attempts) == 1, "items": items}

    server.on("PUT", "/_bulk", bulk)
    sleeps: list[float] = []
    monkeypatch.setattr("elasticsearch.helpers.actions.time.sleep", sleeps.append)
    es = backend(server)
    es.write([doc(f"ce-00000000-0000-4000-8000-00000000002{i}") for i in range(3)], [], 60)
    assert attempts == [3, 1]  # only the rejected item is sent again
    assert sleeps == [0.5]


def test_a_failed_bulk_item_fails_the_write_and_leaves_the_journal() -> None:
    server = existing_server()
    server.on("PUT", "/credreg/_doc/_meta", (200, {"result": "updated"}))
    server.on("PUT", "/_bulk", (200, {"took": 1, "errors": True, "items": [{"index": {
        "_index": "credreg-v2-x", "_id": "x", "status": 400,
        "error": {"type": "document_parsing_exception", "reason": "failed to parse field [cost]"}}}]}))
    es = backend(server)
    server.calls.clear()
    with pytest.raises(RuntimeError, match="1 bulk items failed"):
        es.write([doc()], [], 60)
    assert [c.body.get("pending") for c in server.calls if c.method == "PUT" and "_meta" in c.path] == [
        ["ce-00000000-0000-4000-8000-000000000010"]]  # the position was not advanced


def test_rebuild_fills_a_new_index_then_swaps_the_alias() -> None:
    server = existing_server()
    server.on("PUT", "/credreg-v2-[0-9-]+", lambda c: (200, {"acknowledged": True, "index": c.path[1:]}))
    server.on("PUT", "/credreg-v2-[0-9-]+/_settings", (200, {"acknowledged": True}))
    server.on("PUT", "/_bulk", lambda c: (200, {"errors": False, "items": [
        {"index": {"_id": line["index"]["_id"], "status": 201}} for line in c.body[::2]]}))
    server.on("PUT", "/credreg-v2-[0-9-]+/_doc/_meta", (201, {"result": "created"}))
    server.on("POST", "/credreg-v2-[0-9-]+/_refresh", (200, {"_shards": {"total": 1, "successful": 1}}))
    server.on("POST", "/_aliases", (200, {"acknowledged": True}))
    server.on("DELETE", "/credreg-v2-20260101000000-000", (200, {"acknowledged": True}))
    es = backend(server)
    es.reset()
    assert es.position() == 0
    server.calls.clear()
    assert es.rebuild(iter([doc(), doc("ce-00000000-0000-4000-8000-000000000011")]), 99) == 2
    new = "credreg-v2-20260921141320-000"
    assert server.paths() == [
        "GET /_alias/credreg", f"PUT /{new}", f"PUT /{new}/_settings", "PUT /_bulk", f"PUT /{new}/_doc/_meta",
        f"PUT /{new}/_settings", f"POST /{new}/_refresh", "POST /_aliases",
        "DELETE /credreg-v2-20260101000000-000"]
    assert server.calls[2].body == {"index": {"refresh_interval": "-1"}}
    assert server.calls[3].body[0] == {"index": {"_index": new, "_id": "ce-00000000-0000-4000-8000-000000000010"}}
    assert server.calls[4].body == {"ctid": "_meta", "kind": "_meta", "position": 99}
    assert server.calls[7].body == {"actions": [
        {"remove": {"index": "credreg-v2-20260101000000-000", "alias": "credreg"}},
        {"add": {"index": new, "alias": "credreg"}}]}


# --- queries ------------------------------------------------------------------------------------
SEARCH_RESPONSE = {
    "took": 5, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {"total": {"value": 3, "relation": "eq"}, "max_score": None, "hits": [
        {"_index": "credreg-v2-x", "_id": "ce-a", "_score": 7.5, "_source": {"card": {"ctid": "ce-a", "name": "A"}},
         "sort": [7.5, "ce-a"]},
        {"_index": "credreg-v2-x", "_id": "ce-b", "_score": 2.25, "_source": {"card": {"ctid": "ce-b", "name": "B"}},
         "sort": [2.25, "ce-b"]}]},
    "aggregations": {
        "state": {"doc_count": 9, "values": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
            {"key": "OH", "doc_count": 5}, {"key": "KY", "doc_count": 3}, {"key": "IN", "doc_count": 3}]}},
        "cost_max": {"doc_count": 3, "values": {"buckets": [
            {"key": "*-100.00000000000001", "to": 100.00000000000001, "doc_count": 1},
            {"key": "100.00000000000001-250.00000000000003", "from": 100.00000000000001,
             "to": 250.00000000000003, "doc_count": 0},
            {"key": "250.00000000000003-500.00000000000006", "from": 250.00000000000003,
             "to": 500.00000000000006, "doc_count": 1},
            *({"key": f"r{i}", "from": f, "to": t, "doc_count": 0} for i, (f, t) in enumerate([
                (500.00000000000006, 1000.0000000000001), (1000.0000000000001, 2500.0000000000005),
                (2500.0000000000005, 5000.000000000001), (5000.000000000001, 10000.000000000002),
                (10000.000000000002, 25000.000000000004)])),
            {"key": "25000.000000000004-*", "from": 25000.000000000004, "doc_count": 1}]}},
        "list": {"doc_count": 3, "values": {"buckets": [
            {"key": "ce-l1:10:20", "doc_count": 2}, {"key": "ce-l2:3:2601", "doc_count": 1},
            {"key": "ce-l1:4:1299", "doc_count": 1}]}},
    }}


def test_search_request_body() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", (200, SEARCH_RESPONSE))
    es = backend(server)
    q = parse([("q", "nursng rn"), ("state", "OH,KY"), ("type", "Credential"), ("cost_max", "500"),
               ("near", "39.75,-84.19"), ("radius_km", "25"), ("list", "ce-00000000-0000-4000-8000-0000000000aa"),
               ("list_as_of", "2025-01-01"), ("facets", "state,cost_max,list"), ("limit", "2")], 100)
    es.search(q)
    body = server.calls[-1].body
    nursng = {"bool": {"minimum_should_match": 1, "should": [
        {"dis_max": {"tie_breaker": 0.1, "queries": [
            {"term": {"names": {"value": "nursng", "boost": 4.0}}},
            {"term": {"keywords": {"value": "nursng", "boost": 2.0}}},
            {"term": {"occupations": {"value": "nursng", "boost": 1.5}}},
            {"term": {"organizations": {"value": "nursng", "boost": 1.0}}},
            {"term": {"description": {"value": "nursng", "boost": 0.5}}}]}},
        # one edit away, in every text field, in filter context: scored 0, below every exact match
        {"bool": {"filter": [{"bool": {"minimum_should_match": 1, "should": [
            {"fuzzy": {f: {"value": "nursng", "fuzziness": 1, "transpositions": True, "prefix_length": 0,
                           "rewrite": "constant_score"}}}
            for f in ("names", "keywords", "occupations", "organizations", "description")]}}]}}]}}
    assert body["query"]["bool"]["must"][0] == nursng
    assert body["query"]["bool"]["must"][1] == {"dis_max": {"tie_breaker": 0.1, "queries": [  # "rn": exact only
        {"term": {f: {"value": "rn", "boost": b}}} for f, b in (
            ("names", 4.0), ("keywords", 2.0), ("occupations", 1.5), ("organizations", 1.0), ("description", 0.5))]}}
    assert body["query"]["bool"]["must_not"] == [{"term": {"kind": "_meta"}}]
    assert body["query"]["bool"]["filter"] == [
        {"terms": {"type": ["ceterms:Credential"]}},
        {"geo_distance": {"distance": "25.0km", "points": {"lat": 39.75, "lon": -84.19}}}]
    day = timeline.parse_day("2025-01-01")
    list_terms = timeline.day_terms("ce-00000000-0000-4000-8000-0000000000aa", day)
    post = {"state": {"terms": {"state": ["OH", "KY"]}}, "list": {"terms": {"list_at": list_terms}},
            "cost_max": {"range": {"cost": {"lte": 500.0}}}}
    assert body["post_filter"] == {"bool": {"filter": [post["state"], post["list"], post["cost_max"]]}}
    assert body["aggs"]["state"] == {"filter": {"bool": {"filter": [post["list"], post["cost_max"]]}},
                                     "aggs": {"values": {"terms": {"field": "state", "size": 10}}}}
    assert body["aggs"]["list"]["aggs"]["values"]["terms"] == {
        "field": "list_at", "size": 10_000, "include": timeline.day_suffix_regex(day)}
    ranges = body["aggs"]["cost_max"]["aggs"]["values"]["range"]
    assert ranges["field"] == "cost" and ranges["ranges"][0] == {"to": 100.00000000000001}
    assert ranges["ranges"][-1] == {"from": 25000.000000000004}
    assert body["sort"] == [{"_score": "desc"}, {"ctid": "asc"}] and body["size"] == 2
    assert body["track_total_hits"] is True and body["_source"] == ["card"]


def test_search_response_is_read_as_documented() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", (200, SEARCH_RESPONSE))
    es = backend(server)
    page = es.search(parse([("q", "nursing"), ("facets", "state,cost_max,list"), ("limit", "2")], 100))
    assert page.total == 3 and [h.ctid for h in page.hits] == ["ce-a", "ce-b"]
    assert page.hits[0].card == {"ctid": "ce-a", "name": "A"} and page.hits[0].score == 7.5
    assert page.facets["state"] == {"OH": 5, "IN": 3, "KY": 3}  # count, then value
    assert page.facets["cost_max"] == {"100": 1, "250": 1, "500": 2, "1000": 2, "2500": 2, "5000": 2,
                                       "10000": 2, "25000": 2}
    assert page.facets["list"] == {"ce-l1": 3, "ce-l2": 1}
    assert page.after == [2.25, "ce-b"]
    # The cursor carries search_after back.
    from dataclasses import replace

    es.search(replace(parse([("q", "nursing"), ("limit", "2")], 100), after=[2.25, "ce-b"], offset=2))
    assert server.calls[-1].body["search_after"] == [2.25, "ce-b"]


def test_sorts_have_a_unique_tie_break() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", (200, SEARCH_RESPONSE))
    es = backend(server)
    for sort, first in (("name", {"sort_name": "asc"}), ("newest", {"modified_us": "desc"}),
                        ("cost", {"cost": {"order": "asc", "missing": "_last"}}),
                        ("duration", {"duration": {"order": "asc", "missing": "_last"}})):
        es.search(parse([("sort", sort)], 100))
        assert server.calls[-1].body["sort"] == [first, {"ctid": "asc"}]


def test_dependency_lookups_page_with_search_after() -> None:
    server = existing_server()
    pages = [[{"_id": f"ce-r{i:04d}", "sort": [f"ce-r{i:04d}"]} for i in range(1000)],
             [{"_id": "ce-r1000", "sort": ["ce-r1000"]}]]
    server.on("POST", "/credreg/_search", lambda c: (200, {"hits": {"total": {"value": 1001, "relation": "eq"},
                                                                    "hits": pages.pop(0)}}))
    es = backend(server)
    readers = es.readers_of(["ce-org"])
    assert len(readers) == 1001
    first, second = server.calls[-2].body, server.calls[-1].body
    assert first == {"query": {"terms": {"deps": ["ce-org"]}}, "size": 1000, "sort": [{"ctid": "asc"}],
                     "_source": False}
    assert second["search_after"] == ["ce-r0999"]


def test_suggest_request() -> None:
    server = existing_server()
    server.on("POST", "/credreg/_search", (200, {
        "hits": {"total": {"value": 1, "relation": "eq"}, "hits": [
            {"_id": "ce-w", "_source": {"card": {"ctid": "ce-w", "name": "Welding Level 1", "kind": "credential"}}}]},
        "aggregations": {"occupations": {"doc_count": 10, "values": {"buckets": [
            {"key": "51-4121", "doc_count": 4}]}}}}))
    es = backend(server)
    found = es.suggest(("welding", "le"), 5)
    body = server.calls[-1].body  # no occupation has words starting "welding" and "le"
    assert body == {"query": {"bool": {
        "must": [{"term": {"names": "welding"}}, {"prefix": {"names": "le"}}],
        "filter": [{"terms": {"kind": ["credential", "organization"]}}]}},
        "size": 50, "_source": ["card.name", "card.kind", "card.ctid"]}
    assert [s.text for s in found] == ["Welding Level 1"]
    found = es.suggest(("weld",), 5)
    assert found[-1].kind == "occupation" and found[-1].code == "51-4121" and found[-1].count == 4
    body = server.calls[-1].body  # names narrow the hits only; occupations are counted over all
    assert body["post_filter"]["bool"]["must"] == [{"prefix": {"names": "weld"}}]
    assert body["aggs"]["occupations"]["filter"]["terms"]["soc"][0] == "51-4121"
    assert body["aggs"]["occupations"]["aggs"]["values"]["terms"]["include"][0] == "51-4121"


def test_index_template_maps_every_source_field() -> None:
    props = index_template(ALIAS)["template"]["mappings"]["properties"]
    d = doc(credits=6.0, list_at=["ce-l:1:2"], qa=["ce-q"], naics=["31-33"], cip=["51"])
    assert set(to_source(d)) <= set(props)  # "dynamic": "strict" would refuse anything else
