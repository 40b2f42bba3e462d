"""/.well-known/void: the dataset described in VoID and DCAT, content-negotiated.

It states the triple count, the classes with their instance counts, the SPARQL endpoint, the
dumps (with their SHA-256 and change-log sequence), the URI spaces and the vocabularies. The
counts (and the URI spaces) are whole-store aggregates (seconds at 10M triples), so they are computed off the event
loop and cached per triple-store position; after a write they are recomputed, unless the store is
large and the last computation was slow, in which case a result at most ten computations old is
served.

URI spaces: records keep the URIs their publishers gave them (Credential Engine's
https://credentialengineregistry.org/resources/, its sandbox's, this registry's own), so the
spaces are read from the data: the prefix before the CTID of every resource that has one
(`<…/ce-…> ceterms:ctid "ce-…"`), counted. VoID defines void:uriSpace as "a common string prefix
of all the entity URIs in a void:Dataset", so one dataset can state one; with several, each is
stated on a void:subset holding the resources under it (with void:entities), plus one for the
skolem IRIs of blank nodes, and the whole dataset states void:uriRegexPattern, the alternation
of them all, which VoID provides for URIs that share no single prefix.
"""
from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

import orjson
import pyoxigraph as ox
from starlette.requests import Request
from starlette.responses import Response

from registry import negotiation
from registry.dumps import dump_dir, list_dumps
from registry.errors import BadRequest
from registry.rdfstore import JSONLD, NQUADS, NTRIPLES, POSITION_PREDICATE, RDFXML, TURTLE, Dataset, TripleStore
from registry.rdfstore.projection import CTID, skolem_root
from registry.rdfstore.results import graph as serialize_graph

if TYPE_CHECKING:
    from registry.service import Registry

OFFERED = (JSONLD, "application/json", TURTLE, NTRIPLES, NQUADS, RDFXML, "text/html")
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSD = "http://www.w3.org/2001/XMLSchema#"
VOID = "http://rdfs.org/ns/void#"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
FOAF = "http://xmlns.com/foaf/0.1/"
SD = "http://www.w3.org/ns/sparql-service-description#"
SPDX = "http://spdx.org/rdf/terms#"
FORMATS = "http://www.w3.org/ns/formats/"
IANA = "http://www.iana.org/assignments/media-types/"
_TEXT = {TURTLE, NTRIPLES, NQUADS}
_FORMAT_PARAM = {"jsonld": JSONLD, "turtle": TURTLE, "ttl": TURTLE, "ntriples": NTRIPLES, "nt": NTRIPLES,
                 "nquads": NQUADS, "nq": NQUADS, "rdfxml": RDFXML, "html": "text/html"}


@dataclass(frozen=True, slots=True)
class Stats:
    position: int
    triples: int  # in record graphs
    metadata_triples: int
    graphs: int  # record graphs
    classes: list[tuple[str, int]]  # (class IRI, distinct instances), most first
    spaces: list[tuple[str, int]]  # (URI prefix before the CTID, distinct resources), most first
    seconds: float
    at: float


class VoidStats:
    def __init__(self, store: TripleStore, timeout_s: float, slow_s: float = 1.0,
                 large_triples: int = 1_000_000, patience: float = 10.0) -> None:
        self.store = store
        self.timeout_s = timeout_s
        # Why both: on a small store a computation is slow only when the machine is (or the first
        # one starts the query workers), and recomputing it is cheap, so it always follows writes.
        self.slow_s = slow_s
        self.large_triples = large_triples
        self.patience = patience  # how many computations' time a served result may be old
        self._lock = threading.Lock()
        self._cached: Stats | None = None

    def _number(self, sparql: str) -> int:
        result = self.store.query(sparql, dataset=Dataset(union=False), timeout_s=self.timeout_s,
                                  max_results=10)
        rows = orjson.loads(result.body)["results"]["bindings"]
        return int(rows[0]["n"]["value"]) if rows and "n" in rows[0] else 0

    def compute(self) -> Stats:
        start = time.monotonic()
        position = self.store.position()
        meta = self.store.meta_graph
        counts = self.store.counts()
        metadata = self._number(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{meta}> {{ ?s ?p ?o }} }}")
        result = self.store.query(
            f"SELECT ?class (COUNT(DISTINCT ?s) AS ?n) WHERE {{ GRAPH ?g {{ ?s a ?class }} "
            f"FILTER(?g != <{meta}>) }} GROUP BY ?class ORDER BY DESC(?n) ?class",
            dataset=Dataset(union=False), timeout_s=self.timeout_s, max_results=1_000_000)
        classes = [(row["class"]["value"], int(row["n"]["value"]))
                   for row in orjson.loads(result.body)["results"]["bindings"]
                   if row.get("class", {}).get("type") == "uri"]
        result = self.store.query(
            f"SELECT ?space (COUNT(DISTINCT ?s) AS ?n) WHERE {{ GRAPH ?g {{ ?s <{CTID}> ?ctid }} "
            f"FILTER(?g != <{meta}> && isIRI(?s) && STRLEN(STR(?ctid)) > 0 && STRENDS(STR(?s), STR(?ctid))) "
            "BIND(SUBSTR(STR(?s), 1, STRLEN(STR(?s)) - STRLEN(STR(?ctid))) AS ?space) } "
            "GROUP BY ?space ORDER BY DESC(?n) ?space",
            dataset=Dataset(union=False), timeout_s=self.timeout_s, max_results=10_000)
        spaces = [(row["space"]["value"], int(row["n"]["value"]))
                  for row in orjson.loads(result.body)["results"]["bindings"] if "space" in row]
        has_meta = metadata > 0
        return Stats(position, counts.triples - metadata, metadata, counts.graphs - int(has_meta),
                     classes, spaces, time.monotonic() - start, time.time())

    def get(self) -> Stats:
        with self._lock:
            cached = self._cached
            if cached is not None:
                fresh = cached.position == self.store.position()
                patient = (cached.triples + cached.metadata_triples >= self.large_triples
                           and cached.seconds > self.slow_s
                           and time.time() - cached.at < self.patience * cached.seconds)
                if fresh or patient:
                    return cached
            self._cached = self.compute()
            return self._cached


class VoidRoute:
    def __init__(self, registry: Registry, store: TripleStore) -> None:
        self.registry = registry
        self.store = store
        self.stats = VoidStats(store, max(registry.settings.sparql_timeout_s, 300.0))

    async def handle(self, request: Request) -> Response:
        fmt = request.query_params.get("format")
        if fmt is not None:
            if fmt.lower() not in _FORMAT_PARAM:
                raise BadRequest(f"Unknown format {fmt!r}; use one of {', '.join(_FORMAT_PARAM)}.",
                                 parameter="format")
            choice = negotiation.Choice(_FORMAT_PARAM[fmt.lower()])
        else:
            choice = negotiation.negotiate(request.headers.get("accept"), OFFERED)
        stats = await asyncio.to_thread(self.stats.get)
        triples = description(self.registry, self.store, stats)
        headers = {"Vary": "Accept", "Credreg-Seq": str(stats.position)}
        if choice.media_type == "text/html":
            return Response(_html(self.registry, stats), 200, headers, "text/html; charset=utf-8")
        media = JSONLD if choice.media_type == "application/json" else choice.media_type
        body = serialize_graph(triples, media)
        return Response(body, 200, headers, f"{media}; charset=utf-8" if media in _TEXT else media)


def description(registry: Registry, store: TripleStore, stats: Stats) -> list[ox.Triple]:
    """The VoID + DCAT description as triples."""
    base = registry.settings.base_uri

    def n(iri: str) -> ox.NamedNode:
        return ox.NamedNode(iri)

    def integer(value: int) -> ox.Literal:
        return ox.Literal(str(value), datatype=n(XSD + "integer"))

    a = n(RDF + "type")
    doc, ds, sparql = n(f"{base}/.well-known/void"), n(store.dataset_iri), n(f"{base}/sparql")
    out = [
        ox.Triple(doc, a, n(VOID + "DatasetDescription")),
        ox.Triple(doc, n(DCT + "title"), ox.Literal("Description of the credreg dataset", language="en")),
        ox.Triple(doc, n(FOAF + "primaryTopic"), ds),
        ox.Triple(ds, a, n(VOID + "Dataset")),
        ox.Triple(ds, a, n(DCAT + "Dataset")),
        ox.Triple(ds, n(DCT + "title"), ox.Literal("credreg: credentials and the evidence of their value",
                                                   language="en")),
        ox.Triple(ds, n(DCT + "description"), ox.Literal(
            "CTDL graphs published to this registry: credentials, organizations, quality assurance, "
            "state lists of approved credentials, articulation (transfer value) and stacking. Each "
            "record is a named graph; the registry metadata graph describes every record.", language="en")),
        ox.Triple(ds, n(DCT + "license"), n("https://creativecommons.org/publicdomain/zero/1.0/")),
        ox.Triple(ds, n(VOID + "triples"), integer(stats.triples)),
        ox.Triple(ds, n(VOID + "classes"), integer(len(stats.classes))),
        ox.Triple(ds, n(VOID + "documents"), integer(stats.graphs)),
        ox.Triple(ds, n(VOID + "sparqlEndpoint"), sparql),
        ox.Triple(ds, n(VOID + "vocabulary"), n("https://purl.org/ctdl/terms/")),
        ox.Triple(ds, n(VOID + "vocabulary"), n("https://purl.org/ctdlasn/terms/")),
        ox.Triple(ds, n(POSITION_PREDICATE), integer(stats.position)),
        ox.Triple(sparql, a, n(DCAT + "DataService")),
        ox.Triple(sparql, a, n(SD + "Service")),
        ox.Triple(sparql, n(DCAT + "endpointURL"), sparql),
        ox.Triple(sparql, n(DCAT + "servesDataset"), ds),
        ox.Triple(sparql, n(DCT + "conformsTo"), n("https://www.w3.org/TR/sparql11-protocol/")),
    ]
    for fmt in ("N-Quads", "Turtle", "N-Triples", "JSON-LD"):
        out.append(ox.Triple(ds, n(VOID + "feature"), n(FORMATS + fmt)))
    for i, (cls, count) in enumerate(stats.classes):
        part = n(f"{store.dataset_iri}-class-{i}")
        out += [ox.Triple(ds, n(VOID + "classPartition"), part), ox.Triple(part, n(VOID + "class"), n(cls)),
                ox.Triple(part, n(VOID + "entities"), integer(count))]
    out += _uri_spaces(ds, store.dataset_iri, base, stats)
    meta = n(store.meta_graph)
    out += [ox.Triple(ds, n(VOID + "subset"), meta), ox.Triple(meta, a, n(VOID + "Dataset")),
            ox.Triple(meta, n(DCT + "title"), ox.Literal("Registry metadata graph", language="en")),
            ox.Triple(meta, n(VOID + "triples"), integer(stats.metadata_triples)),
            # what a client needs to query it, e.g. records by type in one pattern
            # (docs/sparql-examples.md, question 15)
            ox.Triple(meta, n(DCT + "description"), ox.Literal(
                "One description per record graph (a prov:Entity): dcterms:identifier (the CTID), "
                "foaf:primaryTopic (the record's main node), dcterms:type (the main node's type), "
                "dcterms:publisher, prov:wasAttributedTo (owners), owl:versionInfo, dcterms:created, "
                "dcterms:modified, spdx:checksum (the ETag), prov:wasDerivedFrom (the envelope @id).",
                language="en"))]
    for vocabulary in ("http://www.w3.org/ns/prov#", DCT, FOAF, SPDX, "http://www.w3.org/2002/07/owl#"):
        out.append(ox.Triple(meta, n(VOID + "vocabulary"), n(vocabulary)))
    dumps = list_dumps(dump_dir(registry.settings))
    for kind, latest in (("nquads", "latest.nq.gz"), ("jsonld", "latest.jsonld.zip")):
        out.append(ox.Triple(ds, n(VOID + "dataDump"), n(f"{base}/dumps/{latest}")))
        if not dumps:
            continue
        f = dumps[0].files[kind]
        dist = n(f"{base}/dumps/{f['name']}")
        checksum = n(f"{base}/dumps/{f['name']}#sha256")
        out += [ox.Triple(ds, n(DCAT + "distribution"), dist), ox.Triple(dist, a, n(DCAT + "Distribution")),
                ox.Triple(dist, n(DCAT + "downloadURL"), dist),
                ox.Triple(dist, n(DCAT + "accessURL"), n(f"{base}/dumps")),
                ox.Triple(dist, n(DCAT + "mediaType"), n(IANA + f["media_type"])),
                ox.Triple(dist, n(DCAT + "byteSize"), integer(f["bytes"])),
                ox.Triple(dist, n(DCT + "issued"), ox.Literal(dumps[0].created, datatype=n(XSD + "dateTime"))),
                ox.Triple(dist, n(POSITION_PREDICATE), integer(dumps[0].seq)),
                ox.Triple(dist, n(SPDX + "checksum"), checksum),
                ox.Triple(checksum, n(SPDX + "algorithm"), n(SPDX + "checksumAlgorithm_sha256")),
                ox.Triple(checksum, n(SPDX + "checksumValue"), ox.Literal(f["sha256"]))]
        if f.get("encoding") == "gzip":
            out.append(ox.Triple(dist, n(DCAT + "compressFormat"), n(IANA + "application/gzip")))
    return out


def _uri_spaces(ds: ox.NamedNode, dataset_iri: str, base: str, stats: Stats) -> list[ox.Triple]:
    """A subset per URI space, with void:uriSpace, and the dataset's void:uriRegexPattern."""
    a, subset, space_p = ox.NamedNode(RDF + "type"), ox.NamedNode(VOID + "subset"), ox.NamedNode(VOID + "uriSpace")
    title = ox.NamedNode(DCT + "title")
    out: list[ox.Triple] = []
    for i, (space, count) in enumerate(stats.spaces):
        part = ox.NamedNode(f"{dataset_iri}-space-{i}")
        out += [ox.Triple(ds, subset, part), ox.Triple(part, a, ox.NamedNode(VOID + "Dataset")),
                ox.Triple(part, title, ox.Literal(f"Resources with a CTID under {space}", language="en")),
                ox.Triple(part, space_p, ox.Literal(space)),
                ox.Triple(part, ox.NamedNode(VOID + "entities"),
                          ox.Literal(str(count), datatype=ox.NamedNode(XSD + "integer")))]
    skolem = skolem_root(base)
    part = ox.NamedNode(f"{dataset_iri}-skolem")
    out += [ox.Triple(ds, subset, part), ox.Triple(part, a, ox.NamedNode(VOID + "Dataset")),
            ox.Triple(part, title, ox.Literal("Blank nodes of the record graphs, skolemized", language="en")),
            ox.Triple(part, space_p, ox.Literal(skolem))]
    prefixes = [space for space, _ in stats.spaces] + [skolem]
    out.append(ox.Triple(ds, ox.NamedNode(VOID + "uriRegexPattern"),
                         ox.Literal("^(" + "|".join(map(_regex_escape, prefixes)) + ")")))
    return out


def _regex_escape(text: str) -> str:
    """Literal text in the regular-expression syntax of XPath and SPARQL's REGEX (Python's
    re.escape also escapes characters, such as # and &, that XPath refuses escaped)."""
    return re.sub(r"([.\\?*+{}()\[\]|^$])", r"\\\1", text)


def _html(registry: Registry, stats: Stats) -> bytes:
    from registry.pages import _page  # the site's page frame, shared for a consistent look

    rows = "".join(f"<tr><td><code>{escape(c)}</code></td><td>{n:,}</td></tr>" for c, n in stats.classes)
    spaces = "".join(f"<li><code>{escape(s)}</code>: {n:,}</li>" for s, n in stats.spaces)
    spaces = f"<p>URI spaces of the resources with a CTID:</p><ul>{spaces}</ul>" if spaces else ""
    dumps = list_dumps(dump_dir(registry.settings))
    latest = (f"<p>Latest dump: change-log sequence {dumps[0].seq}, {dumps[0].records:,} records "
              f"(<a href='/dumps/latest.nq.gz'>N-Quads</a>, <a href='/dumps/latest.jsonld.zip'>JSON-LD</a>, "
              f"<a href='/dumps'>all dumps</a>)</p>") if dumps else "<p><a href='/dumps'>Dumps</a></p>"
    body = (f"<h1>Dataset description</h1><p class=meta>{stats.triples:,} triples in {stats.graphs:,} record "
            f"graphs, at change-log sequence {stats.position}. SPARQL: <a href='/sparql'>/sparql</a>. "
            f"Also as <a href='?format=turtle'>Turtle</a> via Accept.</p>{latest}{spaces}"
            f"<table><tr><th>Class</th><th>Instances</th></tr>{rows}</table>")
    return _page("Dataset", body)


def openapi_paths() -> dict[str, Any]:
    return {"/.well-known/void": {"get": {
        "summary": "The dataset in VoID and DCAT (triples, classes, SPARQL endpoint, dumps, URI spaces)",
        "responses": {"200": {"description": "The description", "content": {
            t: {"schema": {"type": "object" if "json" in t else "string"}} for t in OFFERED}},
            "406": {"description": "No acceptable format", "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}}}}
