"""/sparql: the SPARQL 1.1 Protocol for queries, read-only, with a time limit and a result cap.

- GET ?query=, POST form-encoded (query=), POST application/sparql-query; default-graph-uri and
  named-graph-uri replace the query's dataset. Without either, and without FROM in the query, the
  default graph is the union of the named graphs (every record graph, and the metadata graph,
  whose subjects are graph IRIs and so never join with record content by accident).
- SELECT/ASK as SPARQL JSON, XML, CSV or TSV; CONSTRUCT/DESCRIBE as Turtle, N-Triples, N-Quads,
  JSON-LD or RDF/XML (rdflib's SPARQLStore and SPARQLWrapper ask for RDF/XML by default), chosen
  by Accept with q-values, or `format=`.
- GET without a query: the SPARQL Service Description (HTML for browsers: a query form).
- Updates are refused (403), and so are federated queries (SERVICE, 400) before they reach any
  backend: the engine would send requests wherever the query says, internal addresses included,
  and neither pyoxigraph 0.5 nor a remote server can be told not to. Queries run in a worker
  thread, and the triple store stops them at the time limit (see registry/rdfstore/oxigraph.py
  for how); over-large results get 400. When every query worker of the embedded store is busy
  and `CREDREG_SPARQL_QUEUE` queries already wait for one, the next gets 503 with Retry-After.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from registry import negotiation
from registry.app import problem_response, read_body
from registry.errors import (
    BadRequest,
    FederatedQueryRefused,
    MalformedQuery,
    NotAcceptable,
    QueryTimedOut,
    ResultCapExceeded,
    ServiceUnavailable,
    SparqlBusy,
    UnsupportedMediaType,
    UpdateRefused,
)
from registry.rdfstore import (
    CSV,
    GRAPH_FORMATS,
    JSONLD,
    NQUADS,
    NTRIPLES,
    RDFXML,
    RESULTS_JSON,
    RESULTS_XML,
    SOLUTION_FORMATS,
    TSV,
    TURTLE,
    Dataset,
    QuerySyntaxError,
    QueryTimeout,
    ResultTooLarge,
    StoreBusy,
    StoreUnavailable,
    TripleStore,
)
from registry.rdfstore.results import graph as serialize_graph
from registry.rdfstore.shape import UPDATE_KEYWORDS, Shape, analyze

if TYPE_CHECKING:
    from registry.service import Registry

SPARQL_QUERY = "application/sparql-query"
SPARQL_UPDATE = "application/sparql-update"
FORM = "application/x-www-form-urlencoded"
# Offered in this order (the first wins for */*); plain JSON/XML are aliases some clients send.
SOLUTION_OFFERED = (*SOLUTION_FORMATS, "application/json", "application/xml", "text/xml")
GRAPH_OFFERED = (*GRAPH_FORMATS, "application/json", "text/plain")
DESCRIPTION_OFFERED = (TURTLE, JSONLD, NTRIPLES, RDFXML, "text/html")
_ALIASES = {"application/json": RESULTS_JSON, "application/xml": RESULTS_XML, "text/xml": RESULTS_XML}
_GRAPH_ALIASES = {"application/json": JSONLD, "text/plain": NTRIPLES}
_FORMAT_PARAM = {"json": RESULTS_JSON, "xml": RESULTS_XML, "csv": CSV, "tsv": TSV, "turtle": TURTLE,
                 "ttl": TURTLE, "ntriples": NTRIPLES, "nt": NTRIPLES, "nquads": NQUADS, "nq": NQUADS,
                 "jsonld": JSONLD, "json-ld": JSONLD, "rdfxml": RDFXML, "rdf+xml": RDFXML,
                 "rdf": RDFXML}
_TEXT = {CSV, TSV, TURTLE, NTRIPLES, NQUADS}
SD = "http://www.w3.org/ns/sparql-service-description#"
# Threads only wait here (the work is in the store's worker processes or on the remote server).
# Enough for the most the embedded store admits (32 workers and 32 waiting, see config.py), so no
# query waits here, outside its time limit.
_EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="credreg-sparql")
# Retry-After when every worker is busy and the queue is full (slow queries end within the limit).
RETRY_AFTER_S = 5
FORMATS_NS = "http://www.w3.org/ns/formats/"


@dataclass(slots=True)
class _Request:
    query: str | None
    default_graphs: tuple[str, ...]
    named_graphs: tuple[str, ...]
    format: str | None


class SparqlEndpoint:
    def __init__(self, registry: Registry, store: TripleStore) -> None:
        self.registry = registry
        self.store = store
        self.settings = registry.settings

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.settings.max_body_bytes)

    async def _read(self, request: Request) -> _Request:
        params = list(request.query_params.multi_items())
        query: list[str] = []
        if request.method == "POST":
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            body = await self._body(request)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("The request body is not UTF-8.") from None
            if media == SPARQL_UPDATE:
                raise UpdateRefused("SPARQL Update is not accepted: the registry changes only "
                                    "through its publishing API.")
            if media == FORM:
                params += parse_qsl(text, keep_blank_values=True)
            elif media == SPARQL_QUERY:
                query.append(text)
            else:
                raise UnsupportedMediaType(f"POST a query as {SPARQL_QUERY} or {FORM}, not "
                                           f"{media or 'a body without Content-Type'}.")
        if any(k in ("update", "using-graph-uri", "using-named-graph-uri") for k, _ in params):
            raise UpdateRefused("SPARQL Update is not accepted: the registry changes only through "
                                "its publishing API.")
        query += [v for k, v in params if k == "query"]
        if len(query) > 1:
            raise BadRequest("Send exactly one query.", parameter="query")
        formats = [v for k, v in params if k in ("format", "output")]
        return _Request(query[0] if query else None,
                        tuple(_graph_param(v, "default-graph-uri") for k, v in params
                              if k == "default-graph-uri"),
                        tuple(_graph_param(v, "named-graph-uri") for k, v in params
                              if k == "named-graph-uri"),
                        formats[-1].lower() if formats else None)

    async def handle(self, request: Request) -> Response:
        req = await self._read(request)
        if req.query is None:
            if request.method == "POST":
                raise BadRequest("The request has no query.", parameter="query")
            return self.description(request)
        if not req.query.strip():
            raise MalformedQuery("The query is empty.", parameter="query")
        shape = analyze(req.query)
        if shape.form in UPDATE_KEYWORDS:
            raise UpdateRefused(f"{shape.form} is SPARQL Update, which this endpoint does not accept.")
        if shape.service is not None:
            raise FederatedQueryRefused(
                f"SERVICE {shape.service}: this endpoint does not send queries to other endpoints. "
                "Run the federated query in your own client or SPARQL engine, with this endpoint "
                "as one of its services.", service=shape.service, parameter="query")
        solutions_format, graph_format = self._formats(request, shape, req.format)
        dataset = Dataset(req.default_graphs, req.named_graphs,
                          union=not (req.default_graphs or req.named_graphs or shape.has_dataset))
        run = partial(self.store.query, req.query, dataset=dataset, solutions_format=solutions_format,
                      graph_format=graph_format, timeout_s=self.settings.sparql_timeout_s,
                      max_results=self.settings.sparql_max_results)
        try:
            # A pool of our own: waiting queries must not starve the default executor.
            result = await asyncio.get_running_loop().run_in_executor(_EXECUTOR, run)
        except QuerySyntaxError as exc:
            raise MalformedQuery(str(exc)) from None
        except QueryTimeout as exc:
            raise QueryTimedOut(f"{exc} Narrow the query (fewer patterns, a LIMIT, more selective "
                                "values), or download a dump.", limit_s=self.settings.sparql_timeout_s) from None
        except ResultTooLarge as exc:
            raise ResultCapExceeded(str(exc), limit=self.settings.sparql_max_results) from None
        except StoreBusy as exc:
            response = problem_response(SparqlBusy(f"{exc} Retry in a few seconds.",
                                                   retry_after_s=RETRY_AFTER_S), request.url.path)
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        except StoreUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from None
        media = result.media_type
        headers = {"Vary": "Accept", "Credreg-Seq": str(self.store.position())}
        return Response(result.body, 200, headers, f"{media}; charset=utf-8" if media in _TEXT else media)

    def _formats(self, request: Request, shape: Shape, fmt: str | None) -> tuple[str, str]:
        # format= / output= as other endpoints read them; SPARQLWrapper sends one for every query.
        # A value we do not know (e.g. SPARQLWrapper's "n3") falls back to Accept, as on those servers.
        media = _FORMAT_PARAM.get(fmt or "") or (fmt if fmt in (*SOLUTION_FORMATS, *GRAPH_FORMATS) else None)
        if media is not None:
            if media in SOLUTION_FORMATS:  # for a graph query: the nearest graph format
                return media, {RESULTS_JSON: JSONLD, RESULTS_XML: RDFXML}.get(media, TURTLE)
            return RESULTS_JSON, media
        accept = request.headers.get("accept")
        graph_query = shape.form in ("CONSTRUCT", "DESCRIBE")
        solution_query = shape.form in ("SELECT", "ASK")
        solutions, graph = RESULTS_JSON, TURTLE
        if not graph_query:  # an unrecognised form is left to the parser: negotiate leniently
            try:
                choice = negotiation.negotiate(accept, SOLUTION_OFFERED).media_type
                solutions = _ALIASES.get(choice, choice)
            except NotAcceptable:
                if solution_query:
                    raise
        if not solution_query:
            try:
                choice = negotiation.negotiate(accept, GRAPH_OFFERED).media_type
                graph = _GRAPH_ALIASES.get(choice, choice)
            except NotAcceptable:
                if graph_query:
                    raise
        return solutions, graph

    # --- the service description ----------------------------------------------------------------
    def description(self, request: Request) -> Response:
        choice = negotiation.negotiate(request.headers.get("accept"), DESCRIPTION_OFFERED)
        if choice.media_type == "text/html":
            return Response(self._form_page(), 200, {"Vary": "Accept"}, "text/html; charset=utf-8")
        body = serialize_graph(service_description(self.settings.base_uri, self.store,
                                                   self.settings.sparql_timeout_s,
                                                   self.settings.sparql_max_results), choice.media_type)
        media = choice.media_type
        return Response(body, 200, {"Vary": "Accept"}, f"{media}; charset=utf-8" if media in _TEXT else media)

    def _form_page(self) -> bytes:
        from registry.pages import _page  # the site's page frame, shared for a consistent look

        example = ("PREFIX ceterms: <https://purl.org/ctdl/terms/>\nSELECT ?type (COUNT(*) AS ?n)\n"
                   "WHERE { ?s a ?type }\nGROUP BY ?type ORDER BY DESC(?n) LIMIT 20")
        options = "".join(f"<option value='{k}'>{escape(k)}</option>" for k in
                          ("json", "xml", "csv", "tsv", "turtle", "ntriples", "nquads", "jsonld"))
        body = (f"<h1>SPARQL</h1><p class=meta>SPARQL 1.1 queries over every record graph (the "
                f"default graph is their union). Time limit {self.settings.sparql_timeout_s:g} s, at "
                f"most {self.settings.sparql_max_results} rows. Research questions with their "
                f"queries: docs/sparql-examples.md in the source. Dataset: "
                f"<a href='/.well-known/void'>VoID</a>, <a href='/dumps'>dumps</a>.</p>"
                f"<form method=get action='/sparql'><textarea name=query rows=14 style='width:100%;"
                f"font-family:monospace'>{escape(example)}</textarea><p><label>Format "
                f"<select name=format>{options}</select></label> <button>Run</button></p></form>")
        return _page("SPARQL", body)


def _graph_param(value: str, name: str) -> str:
    try:
        ox.NamedNode(value)
    except ValueError:
        raise BadRequest(f"{name} must be an absolute IRI, not {value!r}.", parameter=name) from None
    return value


def service_description(base_uri: str, store: TripleStore, timeout_s: float, max_results: int
                        ) -> list[ox.Triple]:
    """SPARQL 1.1 Service Description of /sparql, linked to the VoID dataset description."""
    def n(iri: str) -> ox.NamedNode:
        return ox.NamedNode(iri)

    rdf_type = n("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
    service = n(f"{base_uri}/sparql")
    dataset = n(store.dataset_iri)
    default_graph = ox.BlankNode("defaultGraph")
    meta = ox.BlankNode("metadataGraph")
    triples = [
        ox.Triple(service, rdf_type, n(SD + "Service")),
        ox.Triple(service, n(SD + "endpoint"), service),
        ox.Triple(service, n(SD + "supportedLanguage"), n(SD + "SPARQL11Query")),
        ox.Triple(service, n(SD + "feature"), n(SD + "UnionDefaultGraph")),
        ox.Triple(service, n(SD + "defaultEntailmentRegime"), n("http://www.w3.org/ns/entailment/Simple")),
        ox.Triple(service, n("http://purl.org/dc/terms/description"), ox.Literal(
            f"Read-only. Each query may run {timeout_s:g} s and return {max_results} rows or triples. "
            "The default graph is the union of the record graphs (and the registry metadata graph).")),
        ox.Triple(service, n(SD + "defaultDataset"), dataset),
        ox.Triple(dataset, rdf_type, n(SD + "Dataset")),
        ox.Triple(dataset, rdf_type, n("http://rdfs.org/ns/void#Dataset")),
        ox.Triple(dataset, n(SD + "defaultGraph"), default_graph),
        ox.Triple(default_graph, rdf_type, n(SD + "Graph")),
        ox.Triple(dataset, n(SD + "namedGraph"), meta),
        ox.Triple(meta, rdf_type, n(SD + "NamedGraph")),
        ox.Triple(meta, n(SD + "name"), n(store.meta_graph)),
    ]
    for fmt in ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV",
                "SPARQL_Results_TSV", "Turtle", "N-Triples", "N-Quads", "JSON-LD", "RDF_XML"):
        triples.append(ox.Triple(service, n(SD + "resultFormat"), n(FORMATS_NS + fmt)))
    return triples


def openapi_paths() -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    params = [{"name": "query", "in": "query", "schema": {"type": "string"},
               "description": "A SPARQL 1.1 query; without it, the Service Description"},
              {"name": "default-graph-uri", "in": "query", "schema": {"type": "array",
                                                                       "items": {"type": "string"}}},
              {"name": "named-graph-uri", "in": "query", "schema": {"type": "array",
                                                                     "items": {"type": "string"}}},
              {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(_FORMAT_PARAM)}}]
    ok = {"description": "Query results (SELECT/ASK) or a graph (CONSTRUCT/DESCRIBE)",
          "content": {t: {"schema": {"type": "string"}} for t in (*SOLUTION_FORMATS, *GRAPH_FORMATS)}}
    errors = {str(c): {"description": d, "content": problem} for c, d in (
        (400, "Malformed query, federated query (SERVICE), bad parameter, or result over the cap"),
        (403, "SPARQL Update refused"), (406, "No acceptable format"),
        (415, "Unsupported request body"),
        (503, "The query ran out of time, or every query worker is busy (with Retry-After)"))}
    return {"/sparql": {
        "get": {"summary": "SPARQL 1.1 query (read-only), or the Service Description without a query",
                "parameters": params, "responses": {"200": ok, **errors}},
        "post": {"summary": "SPARQL 1.1 query by POST (form-encoded or application/sparql-query)",
                 "parameters": params[1:],
                 "requestBody": {"content": {
                     SPARQL_QUERY: {"schema": {"type": "string"}},
                     FORM: {"schema": {"type": "object", "properties": {
                         "query": {"type": "string"}, "default-graph-uri": {"type": "string"},
                         "named-graph-uri": {"type": "string"}}}}}},
                 "responses": {"200": ok, **errors}}}}


def rdf_routes(registry: Registry) -> list[BaseRoute]:
    """/sparql and /.well-known/void (when the RDF projection is on) and the dumps."""
    from registry.dumps import DumpRoutes
    from registry.rdfstore.projection import RdfProjection
    from registry.void import VoidRoute

    routes: list[BaseRoute] = list(DumpRoutes(registry).routes())
    projection = next((p for p in registry.projector.projections if isinstance(p, RdfProjection)), None)
    if projection is not None:
        endpoint = SparqlEndpoint(registry, projection.store)
        routes.append(Route("/sparql", endpoint.handle, methods=["GET", "POST"]))
        routes.append(Route("/.well-known/void", VoidRoute(registry, projection.store).handle,
                            methods=["GET"]))
    return routes


def rdf_openapi_paths() -> dict[str, Any]:
    from registry import dumps, void

    return {**openapi_paths(), **dumps.openapi_paths(), **void.openapi_paths()}
