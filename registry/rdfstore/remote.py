"""A remote SPARQL 1.1 server as the triple store: the Protocol for queries, SPARQL Update for
groups (one request = one transaction on Oxigraph, Fuseki/TDB2, QLever), the Graph Store
Protocol for single graphs.

`CREDREG_RDF_URL` is the server's base; the endpoints follow the Oxigraph server's layout
(`{url}/query`, `{url}/update`, `{url}/store`). Another layout is given in the URL's query
string, e.g. Fuseki: `http://host:3030/ds?query=sparql&update=update&store=data`.

Time limits: the client gives up at the deadline, but only the server can stop the work it
started. Run the server with its own limit at or below CREDREG_SPARQL_TIMEOUT_S
(`oxigraph serve --timeout-s 30`, Fuseki `arq:queryTimeout`, QLever `--default-query-timeout`).
The default graph as the union of named graphs is asked per query with Oxigraph's
`union-default-graph` parameter; other servers need it in their configuration
(Fuseki `tdb2:unionDefaultGraph true`).

Only the standard library is used: the service's runtime dependencies carry no HTTP client.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson

from registry.rdfstore import (
    NTRIPLES,
    RESULTS_JSON,
    UNION,
    Counts,
    Dataset,
    Group,
    QueryResult,
    QuerySyntaxError,
    QueryTimeout,
    RdfDataError,
    ResultTooLarge,
    StoreUnavailable,
    group_update,
    metadata_update,
    position_query,
)
from registry.rdfstore.results import parse_remote

_ACCEPT = f"{RESULTS_JSON}, {NTRIPLES};q=0.9"
_CHUNK = 1 << 16


class RemoteStore:
    def __init__(self, url: str, *, meta_graph: str, dataset_iri: str,
                 write_timeout_s: float = 300.0) -> None:
        parts = urlsplit(url)
        names = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.query_url = f"{base}/{names.get('query', 'query')}"
        self.update_url = f"{base}/{names.get('update', 'update')}"
        self.store_url = f"{base}/{names.get('store', 'store')}"
        self.meta_graph = meta_graph
        self.dataset_iri = dataset_iri
        self.write_timeout_s = write_timeout_s
        self._position: int | None = None

    # --- HTTP -----------------------------------------------------------------------------------
    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              timeout: float, limit: int | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body); HTTP errors are returned, not raised."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - configured URL
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers.get("content-type", ""), exc.read(1 << 20)
        except TimeoutError:
            raise QueryTimeout(f"The SPARQL server did not answer within {timeout:g} s.") from None
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(getattr(exc, "reason", None), TimeoutError):
                raise QueryTimeout(f"The SPARQL server did not answer within {timeout:g} s.") from None
            raise StoreUnavailable(f"The SPARQL server at {url} cannot be reached: {exc}.") from None
        with response:
            chunks: list[bytes] = []
            size = 0
            try:
                while chunk := response.read(_CHUNK):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise ResultTooLarge(f"The result is larger than {limit} bytes; add LIMIT "
                                             "and OFFSET to page through it.")
                    if time.monotonic() > deadline:
                        raise QueryTimeout(f"The result did not arrive within {timeout:g} s.")
                    chunks.append(chunk)
            except TimeoutError:
                raise QueryTimeout(f"The result did not arrive within {timeout:g} s.") from None
            return response.status, response.headers.get("content-type", ""), b"".join(chunks)

    def _update(self, text: str) -> None:
        status, _, body = self._send("POST", self.update_url, text.encode(),
                                     {"Content-Type": "application/sparql-update"}, self.write_timeout_s)
        if status == 400:
            raise RdfDataError(body.decode(errors="replace"))
        if status >= 300:
            raise StoreUnavailable(f"SPARQL Update failed with HTTP {status}: "
                                   f"{body[:500].decode(errors='replace')}")

    def _select_number(self, sparql: str) -> int:
        result = self.query(sparql, dataset=Dataset(union=False), timeout_s=self.write_timeout_s,
                            max_results=10)
        rows = orjson.loads(result.body)["results"]["bindings"]
        return max((int(r["n"]["value"]) for r in rows if "n" in r), default=0)

    def _graph_url(self, graph: str) -> str:
        return f"{self.store_url}?{urlencode({'graph': graph})}"

    # --- writes ---------------------------------------------------------------------------------
    def apply(self, group: Group) -> None:
        self._update(group_update(group, self.meta_graph, self.dataset_iri))
        self._position = group.position

    def replace_graph(self, graph: str, ntriples: str) -> None:
        status, _, body = self._send("PUT", self._graph_url(graph), ntriples.encode(),
                                     {"Content-Type": NTRIPLES}, self.write_timeout_s)
        if status == 400:
            raise RdfDataError(body.decode(errors="replace"))
        if status >= 300:
            raise StoreUnavailable(f"Graph Store PUT failed with HTTP {status}")

    def remove_graph(self, graph: str) -> None:
        status, _, _ = self._send("DELETE", self._graph_url(graph), None, {}, self.write_timeout_s)
        if status >= 300 and status != 404:
            raise StoreUnavailable(f"Graph Store DELETE failed with HTTP {status}")

    def graph_ntriples(self, graph: str) -> str:
        status, _, body = self._send("GET", self._graph_url(graph), None, {"Accept": NTRIPLES},
                                     self.write_timeout_s)
        if status == 404:
            return ""
        if status >= 300:
            raise StoreUnavailable(f"Graph Store GET failed with HTTP {status}")
        return body.decode()

    def update_metadata(self, subjects: list[str], ntriples: str, position: int | None) -> None:
        text = metadata_update(subjects, ntriples, position, self.meta_graph, self.dataset_iri)
        if text:
            self._update(text)
            if position is not None:
                self._position = position

    def position(self) -> int:
        if self._position is None:
            self._position = self._select_number(position_query(self.meta_graph, self.dataset_iri))
        return self._position

    def counts(self) -> Counts:
        triples = self._select_number(
            "SELECT (COUNT(*) AS ?n) WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }")
        graphs = self._select_number("SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { } }")
        return Counts(triples, graphs)

    def settle(self) -> None:
        """Nothing to do: the server manages its own storage."""

    def reset(self) -> None:
        """DROP ALL: the server's store is dedicated to this registry."""
        self._update("DROP ALL")
        self._position = 0

    def close(self) -> None:
        pass

    # --- queries --------------------------------------------------------------------------------
    def query(self, sparql: str, *, dataset: Dataset = UNION, solutions_format: str = RESULTS_JSON,
              graph_format: str = NTRIPLES, timeout_s: float = 30.0,
              max_results: int = 100_000) -> QueryResult:
        params: list[tuple[str, str]] = [("query", sparql)]
        params += [("default-graph-uri", g) for g in dataset.default_graphs]
        params += [("named-graph-uri", g) for g in dataset.named_graphs]
        if dataset.union and not (dataset.default_graphs or dataset.named_graphs):
            params.append(("union-default-graph", ""))
        deadline = time.monotonic() + timeout_s
        status, content_type, body = self._send(
            "POST", self.query_url, urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": _ACCEPT}, timeout_s,
            limit=max_results * 2048 + (16 << 20))
        if status == 400:
            raise QuerySyntaxError(body.decode(errors="replace").strip())
        if status >= 300:
            text = body[:2000].decode(errors="replace")
            if any(word in text.lower() for word in ("timeout", "timed out", "cancel")):
                raise QueryTimeout(f"The SPARQL server stopped the query at its time limit: {text}")
            raise StoreUnavailable(f"The SPARQL server answered HTTP {status}: {text}")
        if time.monotonic() > deadline:
            raise QueryTimeout(f"The query ran longer than {timeout_s:g} s.")
        try:
            return parse_remote(body, content_type, solutions_format, graph_format, max_results)
        except (SyntaxError, ValueError) as exc:
            if b"cancelled" in body[-300:].lower():  # Oxigraph stops a timed-out stream this way
                raise QueryTimeout("The SPARQL server stopped the query at its time limit.") from None
            raise StoreUnavailable(f"The SPARQL server's answer does not parse: {exc}") from None
