"""A remote SPARQL 1.1 server as the triple store: the Protocol for queries, SPARQL Update for
groups (one request = one transaction on Oxigraph, Fuseki/TDB2, QLever; not on Virtuoso, below),
the Graph Store Protocol for single graphs.

`CREDREG_RDF_URL` is the server's base; the endpoints follow the Oxigraph server's layout
(`{url}/query`, `{url}/update`, `{url}/store`). Another layout is given in the URL's query
string, e.g. Fuseki: `http://host:3030/ds?query=sparql&update=update&store=data`.

Time limits: the client gives up at the deadline, but only the server can stop the work it
started. Run the server with its own limit at or below CREDREG_SPARQL_TIMEOUT_S
(`oxigraph serve --timeout-s 30`, Fuseki `arq:queryTimeout`, QLever `--default-query-timeout`).
The default graph as the union of named graphs is asked per query with Oxigraph's
`union-default-graph` parameter; other servers need it in their configuration
(Fuseki `tdb2:unionDefaultGraph true`).

Virtuoso 7 (`dialect=virtuoso`, tested against Debian's 7.2.5; setup in README): the URL is the
server's, `http://host:8890/?dialect=virtuoso`; queries go to `/sparql` as its anonymous SPARQL
user. With a user in the URL (`http://credreg:PASSWORD@host:8890/?dialect=virtuoso`) writes go
to `/sparql-auth` and `/sparql-graph-crud-auth` with digest authentication and the anonymous
user stays read-only; without one they go to `/sparql` and `/sparql-graph-crud`, which needs
SPARQL_UPDATE granted to the anonymous user: anyone who reaches the port could write. What the
dialect does differently, each for a reason found against the server:
- Its default graph (no dataset given) is every graph the user may read, its own system graphs
  included, and FROM/default-graph-uri cannot list 200k graphs. `define input:default-graph-exclude`
  and `input:named-graph-exclude` would, but any `define input:*` (and a lone default-graph-uri)
  makes `GRAPH <iri>` match nothing in 7.2.5. So the server's own graphs are made private
  (graph-level security) and the union is left to it; the store refuses to answer if
  virtrdf# is readable. One shape still names (not shows) private graphs: exactly
  `SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }`. With no default graph of its own,
  `union=False` without a dataset is the same union.
- `/sparql` runs SPARQL Update sent as `query=` and pragmas (`define get:soft` fetches URLs):
  anything but SELECT/ASK/CONSTRUCT/DESCRIBE is refused before it is sent.
- Past the per-query `timeout` (ms, sent with each query) Virtuoso returns PARTIAL results with
  HTTP 200 and `X-SQL-State: S1TAT` (an "anytime query"): that header raises QueryTimeout. Past
  `[SPARQL] MaxQueryExecutionTime` (s) it fails with SR171 "Transaction timed out".
  `[SPARQL] ResultSetMaxRows` cuts results short with HTTP 200 and `X-SPARQL-MaxRows` (also
  sent when a result has exactly that many rows): that header raises ResultTooLarge; keep the
  setting above CREDREG_SPARQL_MAX_RESULTS.
- ASK comes back as a SELECT of one `__ASK_RETVAL` row (no row for false); CONSTRUCT in SPARQL
  JSON if that is acceptable, so graphs are asked as N-Triples; DESCRIBE finds nothing without
  FROM unless `define sql:describe-mode "CBD"` (Oxigraph's DESCRIBE is a CBD too); DROP ALL
  drops nothing, so reset drops the graphs one by one; a Graph Store PUT of unparsable data
  is a 500 that says "rejected".
- `[Parameters] ThreadsPerQuery = 1` (README): with parallel execution 7.2.5 returns wrong GROUP
  BY results that differ run to run. The examples of docs/sparql-examples.md pass with it.
- A group is not one transaction: the operations of a request that fails at run time stay
  applied up to the failure, and past about 5,000 triples in one block, a few MB or some 1,000
  operations in one request the compiler gives up. A group is sent as blocks in requests of at
  most 3 MB and 300 operations, each record's drop and insert in one request, the position
  last: readers may see a large group in part while it is applied, and a crash replays it
  (idempotently). A group whose data does not parse is refused whole (Virtuoso parses a request
  before running it) when it fits in one request, as a publish does.

Only the standard library is used: the service's runtime dependencies carry no HTTP client.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from email.message import Message
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson

from registry.rdfstore import (
    NTRIPLES,
    RESULTS_JSON,
    UNION,
    Counts,
    Dataset,
    Group,
    QueryError,
    QueryResult,
    QuerySyntaxError,
    QueryTimeout,
    RdfDataError,
    ResultTooLarge,
    StoreUnavailable,
    group_update,
    metadata_update,
    position_query,
    position_update,
)
from registry.rdfstore.results import boolean, parse_remote
from registry.rdfstore.shape import analyze

_ACCEPT = f"{RESULTS_JSON}, {NTRIPLES};q=0.9"
_CHUNK = 1 << 16
_LAYOUTS = {  # dialect -> endpoint paths (query, update, store)
    "standard": ("query", "update", "store"),
    "virtuoso": ("sparql", "sparql", "sparql-graph-crud"),
}
_QUERY_FORMS = frozenset({"SELECT", "ASK", "CONSTRUCT", "DESCRIBE"})
_VIRTRDF = "http://www.openlinksw.com/schemas/virtrdf#"  # Virtuoso's own graph (its mappings)
# Virtuoso's SPARQL compiler runs out of parser stack ("memory exhausted") past about 5,000
# triples in one block, and refuses a request of several MB (SR578, "string concatenation is too
# large") or of some 1,000 operations (SQ156/SQ200, "variables in state over the limit"; 600 pass):
# a group is sent as blocks and requests within these.
_BLOCK_TRIPLES = 2000
_REQUEST_BYTES = 3 << 20
_REQUEST_OPERATIONS = 300
_DROP_BATCH = _REQUEST_OPERATIONS


class RemoteStore:
    def __init__(self, url: str, *, meta_graph: str, dataset_iri: str,
                 write_timeout_s: float = 300.0) -> None:
        parts = urlsplit(url)
        names = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.url = url
        self.dialect = names.get("dialect", "standard")
        if self.dialect not in _LAYOUTS:
            raise ValueError(f"CREDREG_RDF_URL: unknown dialect {self.dialect!r}; use "
                             f"{' or '.join(_LAYOUTS)}")
        self.virtuoso = self.dialect == "virtuoso"
        path = parts.path.rstrip("/")
        if self.virtuoso and path.endswith("/sparql"):  # the endpoint given: the server is its parent
            path = path[:-len("/sparql")]
        netloc = parts.netloc.rpartition("@")[2]
        base = urlunsplit((parts.scheme, netloc, path, "", ""))
        query, update, store = _LAYOUTS[self.dialect]
        self._opener = urllib.request.build_opener()
        self._write_opener = self._opener
        if parts.username is not None:
            passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            passwords.add_password(None, base, parts.username, parts.password or "")
            self._write_opener = urllib.request.build_opener(
                urllib.request.HTTPDigestAuthHandler(passwords),
                urllib.request.HTTPBasicAuthHandler(passwords))
            if self.virtuoso:  # the authenticated twins of the anonymous endpoints
                update, store = "sparql-auth", "sparql-graph-crud-auth"
            else:  # a server behind authentication: every request
                self._opener = self._write_opener
        self.query_url = f"{base}/{names.get('query', query)}"
        self.update_url = f"{base}/{names.get('update', update)}"
        self.store_url = f"{base}/{names.get('store', store)}"
        self.meta_graph = meta_graph
        self.dataset_iri = dataset_iri
        self.write_timeout_s = write_timeout_s
        self._position: int | None = None
        self._checked = not self.virtuoso  # Virtuoso: its own graphs were found private

    # --- HTTP -----------------------------------------------------------------------------------
    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              timeout: float, limit: int | None = None,
              write: bool = False) -> tuple[int, Message, bytes]:
        """(status, headers, body); HTTP errors are returned, not raised."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        opener = self._write_opener if write else self._opener
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read(1 << 20)
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
            return response.status, response.headers, b"".join(chunks)

    def _update(self, text: str) -> None:
        status, _, body = self._send("POST", self.update_url, text.encode(),
                                     {"Content-Type": "application/sparql-update"}, self.write_timeout_s,
                                     write=True)
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

    def _visible_graphs(self, limit: int) -> list[str]:
        # GROUP BY, not DISTINCT: Virtuoso answers exactly `SELECT DISTINCT ?g WHERE { GRAPH ?g
        # { ?s ?p ?o } }` from its list of graphs, private ones included.
        result = self._run(f"SELECT ?g WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }} GROUP BY ?g LIMIT {limit}",
                           [], RESULTS_JSON, NTRIPLES, self.write_timeout_s, limit)
        return [r["g"]["value"] for r in orjson.loads(result.body)["results"]["bindings"]]

    def _check_private(self) -> None:
        """Virtuoso's default graph is every graph its SPARQL user may read: unless its own
        graphs are private (README, "Virtuoso"), every union query and count would include them.
        Refuse to answer wrongly; checked once, on the graph that always exists."""
        if not self._checked:
            result = self._run(f"ASK {{ GRAPH <{_VIRTRDF}> {{ ?s ?p ?o }} }}", [], RESULTS_JSON,
                               NTRIPLES, self.write_timeout_s, 10)
            if _ask_value(result):
                raise StoreUnavailable(f"Virtuoso's own graphs (<{_VIRTRDF}> and others) are visible "
                                       "to its SPARQL user: make them private (README, Virtuoso).")
            self._checked = True

    # --- writes ---------------------------------------------------------------------------------
    def apply(self, group: Group) -> None:
        if self.virtuoso:
            for text in _requests(_virtuoso_operations(group, self.meta_graph, self.dataset_iri)):
                self._update(text)
        else:
            self._update(group_update(group, self.meta_graph, self.dataset_iri))
        self._position = group.position

    def replace_graph(self, graph: str, ntriples: str) -> None:
        status, _, body = self._send("PUT", self._graph_url(graph), ntriples.encode(),
                                     {"Content-Type": NTRIPLES}, self.write_timeout_s, write=True)
        # Virtuoso rejects data it cannot parse with 500 and its SQL state (22023, 37000).
        if status == 400 or (self.virtuoso and status == 500 and b"rejected" in body):
            raise RdfDataError(body.decode(errors="replace"))
        if status >= 300:
            raise StoreUnavailable(f"Graph Store PUT failed with HTTP {status}")

    def remove_graph(self, graph: str) -> None:
        status, _, _ = self._send("DELETE", self._graph_url(graph), None, {}, self.write_timeout_s,
                                  write=True)
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
        if self.virtuoso:  # no separate default graph: every triple is in a named graph
            triples = self._select_number("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
            graphs = self._select_number(
                "SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
            return Counts(triples, graphs)
        triples = self._select_number(
            "SELECT (COUNT(*) AS ?n) WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }")
        graphs = self._select_number("SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { } }")
        return Counts(triples, graphs)

    def settle(self) -> None:
        """Nothing to do: the server manages its own storage."""

    def reset(self) -> None:
        """DROP ALL: the server's store is dedicated to this registry. On Virtuoso, DROP ALL
        leaves every graph in place: the registry's graphs are dropped one by one instead."""
        if not self.virtuoso:
            self._update("DROP ALL")
        else:
            while graphs := self._visible_graphs(_DROP_BATCH):  # only ours: the others are private
                self._update(" ;\n".join(f"DROP SILENT GRAPH <{g}>" for g in graphs))
        self._position = 0

    def close(self) -> None:
        pass

    # --- queries --------------------------------------------------------------------------------
    def query(self, sparql: str, *, dataset: Dataset = UNION, solutions_format: str = RESULTS_JSON,
              graph_format: str = NTRIPLES, timeout_s: float = 30.0,
              max_results: int = 100_000) -> QueryResult:
        params: list[tuple[str, str]] = []
        params += [("default-graph-uri", g) for g in dataset.default_graphs]
        params += [("named-graph-uri", g) for g in dataset.named_graphs]
        own_dataset = bool(dataset.default_graphs or dataset.named_graphs)
        if not self.virtuoso:
            if dataset.union and not own_dataset:
                params.append(("union-default-graph", ""))
            return self._run(sparql, params, solutions_format, graph_format, timeout_s, max_results)
        shape = analyze(sparql)
        if shape.form not in _QUERY_FORMS:
            raise QuerySyntaxError(f"Expected SELECT, ASK, CONSTRUCT or DESCRIBE, found "
                                   f"{shape.form or 'nothing'}: this endpoint runs queries only.")
        self._check_private()
        # Without a dataset the default graph is already the union of the graphs the SPARQL user
        # may read, ours. Virtuoso has no default graph of its own, so union=False is the same.
        # (Any `define input:*` pragma or `default-graph-uri` would make GRAPH <iri> match nothing.)
        params.append(("timeout", str(max(1, int(timeout_s * 1000)))))  # ms: the server stops there
        if shape.form == "DESCRIBE":  # its default DESCRIBE finds nothing without FROM; CBD as Oxigraph
            sparql = f'define sql:describe-mode "CBD"\n{sparql}'
        if shape.form != "ASK":
            return self._run(sparql, params, solutions_format, graph_format, timeout_s, max_results,
                             graph_result=shape.form != "SELECT")
        # Virtuoso 7.2 answers ASK as a SELECT: one row of __ASK_RETVAL = 1, or no row for false.
        value = _ask_value(self._run(sparql, params, RESULTS_JSON, graph_format, timeout_s, 10))
        return QueryResult("boolean", solutions_format, boolean(value, solutions_format), 1)

    def _run(self, sparql: str, params: list[tuple[str, str]], solutions_format: str,
             graph_format: str, timeout_s: float, max_results: int,
             graph_result: bool = False) -> QueryResult:
        deadline = time.monotonic() + timeout_s
        accept = NTRIPLES if graph_result else _ACCEPT
        status, headers, body = self._send(
            "POST", self.query_url, urlencode([("query", sparql), *params]).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": accept}, timeout_s,
            limit=max_results * 2048 + (16 << 20))
        if status == 400:
            raise QuerySyntaxError(body.decode(errors="replace").strip())
        if status >= 300:
            text = body[:2000].decode(errors="replace")
            if any(word in text.lower() for word in ("timeout", "timed out", "cancel")):
                raise QueryTimeout(f"The SPARQL server stopped the query at its time limit: {text}")
            raise StoreUnavailable(f"The SPARQL server answered HTTP {status}: {text}")
        if time.monotonic() > deadline or headers.get("X-SQL-State") == "S1TAT":
            raise QueryTimeout(f"The query ran longer than {timeout_s:g} s.")
        if headers.get("X-SPARQL-MaxRows"):  # Virtuoso stopped at its ResultSetMaxRows (or just reached it)
            raise ResultTooLarge(f"The result reaches the SPARQL server's limit of "
                                 f"{headers['X-SPARQL-MaxRows']} rows; add LIMIT and OFFSET to page through it.")
        failure: QueryError
        try:
            return parse_remote(body, headers.get("content-type", ""), solutions_format, graph_format,
                                max_results)
        except ResultTooLarge as exc:
            failure = ResultTooLarge(str(exc))
        except (SyntaxError, ValueError) as exc:
            if b"cancelled" in body[-300:].lower():  # Oxigraph stops a timed-out stream this way
                failure = QueryTimeout("The SPARQL server stopped the query at its time limit.")
            else:
                failure = StoreUnavailable(f"The SPARQL server's answer does not parse: {exc}")
        # Raised out of the except clause, so that it carries no traceback of the parser: its frames
        # hold pyoxigraph results, which must be dropped on this thread (they are unsendable), while
        # /sparql handles the error on another.
        raise failure


def _ask_value(result: QueryResult) -> bool:
    """An ASK answer in SPARQL JSON: standard, or Virtuoso 7.2's one row of __ASK_RETVAL = 1
    (no row for false)."""
    parsed = orjson.loads(result.body)
    if result.kind == "boolean":
        return bool(parsed["boolean"])
    return any(row.get("__ASK_RETVAL", {}).get("value", "0") != "0" for row in parsed["results"]["bindings"])


def _blocks(ntriples: str) -> list[str]:
    """N-Triples (one triple a line) in blocks of at most _BLOCK_TRIPLES lines."""
    lines = ntriples.splitlines(keepends=True)
    return ["".join(lines[i:i + _BLOCK_TRIPLES]) for i in range(0, len(lines), _BLOCK_TRIPLES)]


def _virtuoso_operations(group: Group, meta_graph: str, dataset_iri: str) -> list[str]:
    """The group as SPARQL Update operations in the order they must run, each within Virtuoso's
    block limit; a record's drop and inserts are one operation, so that a request never holds
    half of a record. The position moves last."""
    ops: list[str] = []
    loaded = set()
    for g, nt in group.graphs:
        loaded.add(g)
        ops.append(" ;\n".join([f"DROP SILENT GRAPH <{g}>",
                                 *(f"INSERT DATA {{ GRAPH <{g}> {{\n{block}}} }}" for block in _blocks(nt))]))
    ops += [f"DROP SILENT GRAPH <{g}>" for g in group.drop if g not in loaded]
    subjects = group.meta_subjects
    ops += [metadata_update(subjects[i:i + _BLOCK_TRIPLES], "", None, meta_graph, dataset_iri)
            for i in range(0, len(subjects), _BLOCK_TRIPLES)]
    ops += [f"INSERT DATA {{ GRAPH <{meta_graph}> {{\n{block}}} }}" for block in _blocks("".join(group.metadata))]
    ops.append(position_update(group.position, meta_graph, dataset_iri))
    return ops


def _requests(ops: list[str]) -> list[str]:
    """Operations (each one or more statements) packed in order into requests of at most
    _REQUEST_BYTES and _REQUEST_OPERATIONS statements (an operation larger than that goes alone)."""
    requests: list[str] = []
    current: list[str] = []
    size = count = 0
    for op in ops:
        statements = op.count(" ;\n") + 1
        if current and (size + len(op) > _REQUEST_BYTES or count + statements > _REQUEST_OPERATIONS):
            requests.append(" ;\n".join(current))
            current, size, count = [], 0, 0
        current.append(op)
        size += len(op) + 3
        count += statements
    requests.append(" ;\n".join(current))
    return requests
