"""Elasticsearch 8/9 and OpenSearch 2 through the official client, for deployments that outgrow
one machine.

- An index template (`{alias}-template`) holds settings, the analyzer (the same analysis as
  search/text.py) and strict mappings; indices are versioned, `{alias}-v{layout}-{timestamp}`,
  and searched through the alias, so a rebuild fills a new index while searches use the old one,
  then swaps the alias in one atomic `_aliases` call and drops the old index.
- Writes go through `helpers.streaming_bulk` with retries and exponential backoff on 429, and the
  client retries connection errors and 502/503/504.
- A bulk request is not atomic, so before it the ids it will touch are journaled in the meta
  document (`pending`); the position is written, and the journal cleared, only once the bulk
  succeeded. After a crash the projection re-derives the journaled ids (`pending()`), so the index
  converges exactly as Tantivy's atomic commit does.
- The client speaks plain `application/json` (CompatNode): Elasticsearch 8 rejects the client's
  `compatible-with=9` media types, OpenSearch rejects them and does not send X-Elastic-Product.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from elastic_transport import ApiResponseMeta, HttpHeaders, Urllib3HttpNode
from elastic_transport._node import NodeApiResponse
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError, helpers

from registry.errors import BadRequest, RegistryError
from search import elasticsearch_query as dsl
from search import taxonomy
from search.backend import META_ID, Page, Suggestion, chunks, rank_names
from search.documents import SearchDocument
from search.query import SearchQuery
from search.summary import Summary
from search.timeline import OPEN_END

log = logging.getLogger("credreg.search")
LAYOUT_VERSION = 2
SUGGEST_KINDS = ("credential", "organization")
BULK_CHUNK = 500
LOOKUP_PAGE = 1000
# CTIDs per lookup request, as on Tantivy: a projection group after a bulk import looks up every
# new record, and one `terms` query over all of them would exceed index.max_terms_count (65,536 by
# default, 1,024 on Elasticsearch Serverless): rejected, and the projector would retry it forever.
LOOKUP_CHUNK = 1000
_VENDOR_JSON = {"application/vnd.elasticsearch+json": "application/json",
                "application/vnd.elasticsearch+x-ndjson": "application/x-ndjson"}
_KEYWORDS = ("ctid", "kind", "type", "soc", "soc_group", "naics", "cip", "state", "delivery",
             "audience", "lang", "status", "qa", "owner", "list_at", "deps", "link_dst", "sort_name",
             "pending")
_TEXT = ("names", "description", "keywords", "occupations", "organizations")


def plain_json(headers: HttpHeaders | None) -> HttpHeaders:
    """The request headers with the vendor (compatibility) media types made plain JSON."""
    out = HttpHeaders(headers or {})
    for name in ("accept", "content-type"):
        value = out.get(name)
        if value:
            media = value.split(";")[0].strip()
            if media in _VENDOR_JSON:
                out[name] = _VENDOR_JSON[media]
    return out


class CompatNode(Urllib3HttpNode):
    """The urllib3 node, speaking plain JSON to Elasticsearch 8/9 and OpenSearch 2 alike."""

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None,
                        request_timeout: DefaultType | float | None = DEFAULT) -> NodeApiResponse:
        response = self.send(method, target, body, plain_json(headers), request_timeout)
        if "x-elastic-product" not in response.meta.headers:  # OpenSearch
            meta = response.meta
            headers_out = HttpHeaders(meta.headers)
            headers_out["x-elastic-product"] = "Elasticsearch"
            response = NodeApiResponse(ApiResponseMeta(status=meta.status, http_version=meta.http_version,
                                                       headers=headers_out, duration=meta.duration,
                                                       node=meta.node), response.body)
        return response

    def send(self, method: str, target: str, body: bytes | None, headers: HttpHeaders,
             request_timeout: DefaultType | float | None) -> NodeApiResponse:
        return super().perform_request(method, target, body, headers, request_timeout)


def index_template(alias: str) -> dict[str, Any]:
    """The body of PUT _index_template/{alias}-template."""
    properties: dict[str, Any] = {name: {"type": "keyword"} for name in _KEYWORDS}
    properties.update({name: {"type": "text", "analyzer": "credreg"} for name in _TEXT})
    properties.update({name: {"type": "double"} for name in ("cost", "duration", "credits")})
    properties.update({name: {"type": "long"} for name in ("valid_until", "modified_us", "position")})
    properties["points"] = {"type": "geo_point"}
    properties["card"] = {"type": "object", "enabled": False}  # kept in _source, not indexed
    properties["summary"] = {"type": "keyword", "index": False, "doc_values": False}
    return {"index_patterns": [f"{alias}-v*"], "priority": 100, "template": {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0, "max_result_window": 10_000,
                     "analysis": {
                         # search/text.py: split on non-alphanumerics, drop tokens of 40+ chars,
                         # lower-case, fold to ASCII (no stemming).
                         "tokenizer": {"credreg_words": {"type": "pattern",
                                                         "pattern": "[^\\p{L}\\p{N}]+"}},
                         "filter": {"credreg_long": {"type": "length", "max": 39}},
                         "analyzer": {"credreg": {"type": "custom", "tokenizer": "credreg_words",
                                                  "filter": ["credreg_long", "lowercase",
                                                             "asciifolding"]}}}},
        "mappings": {"dynamic": "strict", "properties": properties}}}


def to_source(d: SearchDocument) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ctid": d.ctid, "kind": d.kind, "type": d.types, "soc": d.soc, "soc_group": d.soc_group,
        "naics": d.naics, "cip": d.cip, "state": d.state, "delivery": d.delivery,
        "audience": d.audience, "lang": d.lang, "status": d.status, "qa": d.qa, "owner": d.owner,
        "list_at": d.list_at, "deps": d.deps, "link_dst": d.link_dst, "names": d.names,
        "description": d.description, "keywords": d.keywords, "occupations": d.occupations,
        "organizations": d.organizations, "cost": d.cost, "duration": d.duration,
        "credits": d.credits, "valid_until": d.valid_until, "modified_us": d.modified_us,
        "sort_name": d.sort_name, "points": [{"lat": lat, "lon": lon} for lat, lon in d.points],
        "card": d.card, "summary": d.summary.decode()}
    return {k: v for k, v in out.items() if v is not None and v != []}


def refused(exc: BadRequestError, query: SearchQuery) -> RegistryError:
    """A 400 problem for a search Elasticsearch answered 400: a client error, not an outage.
    With a cursor the resume point is the likely cause (e.g. one from before a reindex)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    reason = str(exc.message)
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        reason = str(causes[0].get("reason") or error.get("reason") or error.get("type") or reason)
    if query.after is not None:
        return BadRequest(f"The search engine cannot resume from this cursor ({reason}); start "
                          "again without `cursor`.", parameter="cursor")
    log.warning("Elasticsearch refused a search: %s", reason)  # a query this service built
    return BadRequest(f"The search engine refused this search: {reason}")


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(self, client: Elasticsearch, alias: str, clock: Any = time.time) -> None:
        self.es = client
        self.alias = alias
        self.clock = clock
        self._lock = threading.Lock()
        self._reset = False
        self.es.indices.put_index_template(name=f"{alias}-template", **index_template(alias))
        current = self._current_index()
        if current is None:
            self._swap(self._create_index(), [])
        self._stale_layout = current is not None and not current.startswith(f"{alias}-v{LAYOUT_VERSION}-")

    @classmethod
    def from_url(cls, url: str, alias: str) -> ElasticsearchBackend:
        client = Elasticsearch(url, node_class=CompatNode, request_timeout=30, max_retries=3,
                               retry_on_timeout=True, retry_on_status=(502, 503, 504))
        return cls(client, alias)

    # --- indices ---------------------------------------------------------------------------------
    def _current_index(self) -> str | None:
        try:
            found = self.es.indices.get_alias(name=self.alias)
        except NotFoundError:
            return None
        names = sorted(found.body)
        return names[-1] if names else None

    def _create_index(self) -> str:
        name = f"{self.alias}-v{LAYOUT_VERSION}-{time.strftime('%Y%m%d%H%M%S', time.gmtime(self.clock()))}" \
               f"-{int(self.clock() * 1000) % 1000:03d}"
        self.es.indices.create(index=name)
        return name

    def _swap(self, new: str, old: list[str]) -> None:
        actions: list[dict[str, Any]] = [{"remove": {"index": o, "alias": self.alias}} for o in old]
        actions.append({"add": {"index": new, "alias": self.alias}})
        self.es.indices.update_aliases(actions=actions)

    # --- projection state ------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        try:
            return dict(self.es.get(index=self.alias, id=META_ID).body["_source"])
        except NotFoundError:
            return {}

    def position(self) -> int:
        if self._reset or self._stale_layout:
            return 0
        return int(self._meta().get("position", 0))

    def pending(self) -> list[str]:
        return list(self._meta().get("pending", []))

    def _actions(self, index: str, docs: Iterable[SearchDocument], deletes: Iterable[str]
                 ) -> Iterator[dict[str, Any]]:
        for ctid in deletes:
            yield {"_op_type": "delete", "_index": index, "_id": ctid}
        for d in docs:
            yield {"_op_type": "index", "_index": index, "_id": d.ctid, "_source": to_source(d)}

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> int:
        count, errors = 0, []
        for ok, item in helpers.streaming_bulk(
                self.es, actions, chunk_size=BULK_CHUNK, max_retries=5, initial_backoff=0.5,
                max_backoff=30, raise_on_error=False):
            count += 1
            deleted_already = item.get("delete", {}).get("status") == 404
            if not ok and not deleted_already:
                errors.append(item)
        if errors:
            raise RuntimeError(f"{len(errors)} bulk items failed, first: {errors[0]}")
        return count

    def write(self, docs: list[SearchDocument], deletes: list[str], position: int) -> None:
        with self._lock:
            meta = self._meta()
            touched = sorted({d.ctid for d in docs} | set(deletes) | set(meta.get("pending", [])))
            self.es.index(index=self.alias, id=META_ID, document={
                "ctid": META_ID, "kind": META_ID, "position": int(meta.get("position", 0)), "pending": touched})
            self._bulk(self._actions(self.alias, docs, deletes))
            self.es.index(index=self.alias, id=META_ID,
                          document={"ctid": META_ID, "kind": META_ID, "position": position})
            self.es.indices.refresh(index=self.alias)

    def rebuild(self, docs: Iterable[SearchDocument], position: int) -> int:
        with self._lock:
            old = [n for n in [self._current_index()] if n]
            new = self._create_index()
            self.es.indices.put_settings(index=new, settings={"index": {"refresh_interval": "-1"}})
            try:
                count = self._bulk(self._actions(new, docs, ()))
                self.es.index(index=new, id=META_ID,
                              document={"ctid": META_ID, "kind": META_ID, "position": position})
                self.es.indices.put_settings(index=new, settings={"index": {"refresh_interval": None}})
                self.es.indices.refresh(index=new)
            except BaseException:
                self.es.indices.delete(index=new, ignore_unavailable=True)
                raise
            self._swap(new, old)  # searches move to the new index in one step
            for name in old:
                self.es.indices.delete(index=name, ignore_unavailable=True)
            self._reset = self._stale_layout = False
            return count

    def reset(self) -> None:
        self._reset = True

    # --- lookups for dependency tracking -------------------------------------------------------
    def _scan(self, query: dict[str, Any], source: list[str] | bool, at_most: int | None = None
              ) -> Iterator[dict[str, Any]]:
        """Every matching document, a page at a time (search_after on the unique ctid), so no
        lookup is cut at a page size or at index.max_result_window. `at_most`: the number of
        matches there can be (an ids query), to spare the request that would find none."""
        after: list[Any] | None = None
        seen = 0
        while True:
            body: dict[str, Any] = {"query": query, "size": LOOKUP_PAGE, "sort": [{"ctid": "asc"}],
                                    "_source": source}
            if after is not None:
                body["search_after"] = after
            hits = self.es.search(index=self.alias, body=body).body["hits"]["hits"]
            yield from hits
            seen += len(hits)
            if len(hits) < LOOKUP_PAGE or (at_most is not None and seen >= at_most):
                return
            after = hits[-1]["sort"]

    def _lookup(self, field: str, ctids: list[str], source: list[str] | bool) -> Iterator[dict[str, Any]]:
        """The documents whose `field` (or id, for "_id") holds any of `ctids`, LOOKUP_CHUNK
        CTIDs per query. A document matching in two chunks comes twice: callers key by id."""
        for chunk in chunks(list(dict.fromkeys(ctids)), LOOKUP_CHUNK):
            if field == "_id":
                yield from self._scan({"ids": {"values": chunk}}, source, at_most=len(chunk))
            else:
                yield from self._scan({"terms": {field: chunk}}, source)

    def links_of(self, ctids: list[str]) -> dict[str, list[str]]:
        return {h["_id"]: h["_source"].get("link_dst", []) for h in self._lookup("_id", ctids, ["link_dst"])}

    def linking_to(self, ctids: list[str]) -> dict[str, Summary]:
        return {h["_id"]: Summary.from_json(h["_source"]["summary"])
                for h in self._lookup("link_dst", ctids, ["summary"])}

    def readers_of(self, ctids: list[str]) -> set[str]:
        return {h["_id"] for h in self._lookup("deps", ctids, False)}

    def summaries(self, ctids: list[str]) -> dict[str, Summary]:
        return {h["_id"]: Summary.from_json(h["_source"]["summary"])
                for h in self._lookup("_id", ctids, ["summary"]) if "summary" in h["_source"]}

    def expiring(self, day: int) -> list[str]:
        return sorted(h["_id"] for h in self._scan({"range": {"valid_until": {"lte": day}}}, False))

    def next_expiry(self) -> int:
        found = self.es.search(index=self.alias, body={"size": 0, "aggs": {"m": {"min": {"field": "valid_until"}}}})
        value = found.body["aggregations"]["m"].get("value")
        return OPEN_END if value is None else int(value)

    # --- reading ---------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> Page:
        if query.after is not None and not isinstance(query.after, list):
            # search/query.py accepts either engine's resume point; an offset is Tantivy's
            raise BadRequest("The cursor was issued by another search engine; start again without "
                             "`cursor`.", parameter="cursor")
        try:
            response = self.es.search(index=self.alias, body=dsl.body(query)).body
        except BadRequestError as exc:
            raise refused(exc, query) from None
        return dsl.page(query, response)

    def count(self) -> int:
        found = self.es.count(index=self.alias, body={"query": {"bool": {"must_not": [dsl.NOT_META]}}})
        return int(found.body["count"])

    def names(self, ctids: list[str]) -> dict[str, str]:
        return {h["_id"]: h["_source"]["card"]["name"] for h in self._lookup("_id", ctids, ["card.name"])}

    def suggest(self, terms: tuple[str, ...], limit: int) -> list[Suggestion]:
        if not terms:
            return []
        *whole, last = terms
        must: list[dict[str, Any]] = [{"term": {"names": t}} for t in whole]
        must.append({"prefix": {"names": last}})
        candidates = taxonomy.occupations_matching(list(terms))
        body: dict[str, Any] = {
            "query": {"bool": {"must": must, "filter": [{"terms": {"kind": list(SUGGEST_KINDS)}}]}},
            "size": 50, "_source": ["card.name", "card.kind", "card.ctid"]}
        if candidates:
            codes = [c for c, _ in candidates]
            # Counted over the documents with those codes only: a few, not the whole index.
            body["aggs"] = {"occupations": {"filter": {"terms": {"soc": codes}}, "aggs": {
                "values": {"terms": {"field": "soc", "size": len(codes), "include": codes}}}}}
            body["post_filter"] = body.pop("query")
        response = self.es.search(index=self.alias, body=body).body
        found = [Suggestion(h["_source"]["card"]["name"], h["_source"]["card"]["kind"],
                            ctid=h["_source"]["card"]["ctid"]) for h in response["hits"]["hits"]]
        out = rank_names(found, terms, limit)
        if candidates:
            counts = {b["key"]: b["doc_count"]
                      for b in response["aggregations"]["occupations"]["values"]["buckets"]}
            ranked = sorted((c for c in candidates if counts.get(c[0])), key=lambda c: (-counts[c[0]], c[1]))
            out += [Suggestion(title, "occupation", code=code, count=counts[code]) for code, title in ranked[:limit]]
        return out

    def close(self) -> None:
        self.es.close()
