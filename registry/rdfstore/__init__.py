"""The triple store behind the RDF projection and /sparql: a small protocol and `open_triple_store`.

Two backends implement it, and one conformance suite (tests/test_rdfstore.py) runs against both:
- `OxigraphStore` (registry/rdfstore/oxigraph.py): pyoxigraph on disk, queries in killable
  worker processes reading consistent checkpoints of the store;
- `RemoteStore` (registry/rdfstore/remote.py): any SPARQL 1.1 server through the Protocol, SPARQL
  Update and the Graph Store Protocol (tested against the Oxigraph server and Virtuoso 7).

Writes arrive as one `Group` per projection batch: drop the record graphs, drop the records'
metadata, insert the new triples, move the position. The remote backend sends it as ONE SPARQL
Update request (one transaction on the server); the embedded one writes a small group as a diff
against what the store holds and bulk-loads a large one, under one lock (see OxigraphStore.apply).
Either way the position is stored with the data and moves last: after a crash the projection
replays from the position it finds, and replaying a group is idempotent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from registry.config import Settings

RESULTS_JSON = "application/sparql-results+json"
RESULTS_XML = "application/sparql-results+xml"
CSV = "text/csv"
TSV = "text/tab-separated-values"
TURTLE = "text/turtle"
NTRIPLES = "application/n-triples"
NQUADS = "application/n-quads"
JSONLD = "application/ld+json"
RDFXML = "application/rdf+xml"
SOLUTION_FORMATS = (RESULTS_JSON, RESULTS_XML, CSV, TSV)
GRAPH_FORMATS = (TURTLE, NTRIPLES, NQUADS, JSONLD, RDFXML)
XSD_INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
# The triple that stores the projection's position, in the metadata graph. A URN, not an HTTP
# IRI of ours: it names the change-log sequence the triples reflect, in the store and in dumps.
POSITION_PREDICATE = "urn:credreg:changeSequence"


class QueryError(Exception):
    """A query could not be answered; subclasses say why."""


class QuerySyntaxError(QueryError):
    """The query does not parse; the message is the parser's."""


class QueryTimeout(QueryError):
    """The query ran past its time limit and was stopped."""


class ResultTooLarge(QueryError):
    """The result has more rows (or triples) than the configured cap."""


class StoreUnavailable(QueryError):
    """The engine failed or cannot be reached."""


class StoreBusy(StoreUnavailable):
    """Every query worker is busy and the queue waiting for one is full: retry shortly."""


class RdfDataError(Exception):
    """The engine rejected the data of a group (a term it cannot parse)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """The RDF dataset of a query. `union` makes the default graph the union of every named
    graph (used when neither the protocol nor the query names a dataset)."""

    default_graphs: tuple[str, ...] = ()
    named_graphs: tuple[str, ...] = ()
    union: bool = True


UNION = Dataset()  # the default dataset: the union of the named graphs


@dataclass(frozen=True, slots=True)
class QueryResult:
    kind: str  # "solutions" | "boolean" | "graph"
    media_type: str
    body: bytes
    count: int  # rows, triples, or 1 for a boolean


@dataclass(slots=True)
class Group:
    """One projection batch: replace these record graphs and their metadata, then record
    `position`. `graphs` holds (graph IRI, N-Triples without blank nodes); a graph listed in
    `drop` but not in `graphs` is removed (a deletion)."""

    position: int
    drop: list[str] = field(default_factory=list)
    meta_subjects: list[str] = field(default_factory=list)
    graphs: list[tuple[str, str]] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)  # N-Triples chunks for the metadata graph


@dataclass(frozen=True, slots=True)
class Counts:
    triples: int  # every triple in every graph
    graphs: int  # named graphs


class TripleStore(Protocol):
    meta_graph: str
    dataset_iri: str

    def apply(self, group: Group) -> None:
        """Apply a group; readers see all of it or none of it, and the position moves last.
        Raises RdfDataError if the engine rejects its data: the position has not moved, and the
        caller re-applies the records one by one (a small group, or a remote one, has then
        written nothing; a large embedded group may have been partly bulk-loaded, and a Virtuoso
        group of more than one request partly applied)."""
        ...

    def replace_graph(self, graph: str, ntriples: str) -> None:
        """Replace one named graph with these triples (Graph Store Protocol PUT)."""
        ...

    def remove_graph(self, graph: str) -> None:
        """Remove a named graph if it exists."""
        ...

    def graph_ntriples(self, graph: str) -> str:
        """The triples of a named graph as N-Triples (empty if it does not exist)."""
        ...

    def update_metadata(self, subjects: list[str], ntriples: str, position: int | None) -> None:
        """Replace what the metadata graph says about `subjects`; move the position if given."""
        ...

    def query(self, sparql: str, *, dataset: Dataset = UNION, solutions_format: str = RESULTS_JSON,
              graph_format: str = NTRIPLES, timeout_s: float = 30.0,
              max_results: int = 100_000) -> QueryResult:
        """Run a read-only query within `timeout_s` (the work is stopped at the deadline) and
        serialize the result: SELECT/ASK in `solutions_format`, CONSTRUCT/DESCRIBE in
        `graph_format`. Raises QuerySyntaxError, QueryTimeout, ResultTooLarge or
        StoreUnavailable."""
        ...

    def settle(self) -> None:
        """Called once a catch-up has nothing left to apply: tidy up after a bulk load (the
        embedded store compacts; a remote server manages its own storage)."""
        ...

    def counts(self) -> Counts: ...

    def position(self) -> int:
        """The change-log sequence the store reflects (0 when empty)."""
        ...

    def reset(self) -> None:
        """Remove everything (the position becomes 0)."""
        ...

    def close(self) -> None: ...


def group_removal(group: Group, meta_graph: str) -> str:
    """The SPARQL Update that removes the group's record graphs and their metadata."""
    parts = [f"DROP SILENT GRAPH <{g}>" for g in group.drop]
    if group.meta_subjects:
        parts.append(_delete_subjects(group.meta_subjects, meta_graph))
    return " ;\n".join(parts)


def to_nquads(ntriples: str, graph: str) -> str:
    """N-Triples lines (each ending " .\\n"; a literal never holds a raw newline) in `graph`."""
    if ntriples and not ntriples.endswith("\n"):
        ntriples += "\n"
    return ntriples.replace(" .\n", f" <{graph}> .\n")


def group_update(group: Group, meta_graph: str, dataset_iri: str) -> str:
    """The SPARQL Update request that applies `group`: one request, hence one transaction."""
    removal = group_removal(group, meta_graph)
    parts = [removal] if removal else []
    inserts = [f"GRAPH <{g}> {{\n{nt}}}" for g, nt in group.graphs if nt]
    if group.metadata:
        inserts.append(f"GRAPH <{meta_graph}> {{\n{''.join(group.metadata)}}}")
    if inserts:
        parts.append("INSERT DATA {\n" + "\n".join(inserts) + "\n}")
    parts.append(position_update(group.position, meta_graph, dataset_iri))
    return " ;\n".join(parts)


def _delete_subjects(subjects: list[str], meta_graph: str) -> str:
    values = " ".join(f"<{s}>" for s in subjects)
    return (f"DELETE {{ GRAPH <{meta_graph}> {{ ?s ?p ?o }} }} WHERE {{ VALUES ?s {{ {values} }} "
            f"GRAPH <{meta_graph}> {{ ?s ?p ?o }} }}")


def metadata_update(subjects: list[str], ntriples: str, position: int | None, meta_graph: str,
                    dataset_iri: str) -> str:
    parts = [_delete_subjects(subjects, meta_graph)] if subjects else []
    if ntriples:
        parts.append(f"INSERT DATA {{ GRAPH <{meta_graph}> {{\n{ntriples}}} }}")
    if position is not None:
        parts.append(position_update(position, meta_graph, dataset_iri))
    return " ;\n".join(parts)  # empty: nothing to do


def position_update(position: int, meta_graph: str, dataset_iri: str) -> str:
    triple = f"<{dataset_iri}> <{POSITION_PREDICATE}>"
    return (f"DELETE WHERE {{ GRAPH <{meta_graph}> {{ {triple} ?old }} }} ;\n"
            f"INSERT DATA {{ GRAPH <{meta_graph}> {{ {triple} \"{int(position)}\"^^<{XSD_INTEGER}> }} }}")


def position_query(meta_graph: str, dataset_iri: str) -> str:
    return (f"SELECT ?n WHERE {{ GRAPH <{meta_graph}> {{ <{dataset_iri}> <{POSITION_PREDICATE}> ?n }} }}")


def meta_graph_iri(base_uri: str) -> str:
    """The registry metadata graph: one description per record (PROV-O / DCTERMS)."""
    return f"{base_uri}/.well-known/void#records"


def dataset_iri(base_uri: str) -> str:
    return f"{base_uri}/.well-known/void#dataset"


def open_triple_store(settings: Settings) -> TripleStore:
    """The backend for `settings.rdf_url`: "" embedded Oxigraph, http(s)://… a remote server."""
    meta, ds = meta_graph_iri(settings.base_uri), dataset_iri(settings.base_uri)
    url = settings.rdf_url.strip()
    if not url:
        from registry.rdfstore.oxigraph import OxigraphStore

        return OxigraphStore(settings.data_dir / "oxigraph", meta_graph=meta, dataset_iri=ds,
                             workers=settings.sparql_workers, max_waiting=settings.sparql_queue)
    if url.startswith(("http://", "https://")):
        from registry.rdfstore.remote import RemoteStore

        return RemoteStore(url, meta_graph=meta, dataset_iri=ds)
    raise ValueError("CREDREG_RDF_URL must be empty (embedded Oxigraph) or an http(s):// URL")
