"""Turning a request body into a graph ready to store: parse (JSON-LD, Turtle, N-Triples),
normalize, validate, convert to RDF, hash, render the resource view. Pure CPU work with no store,
so bulk imports run it in worker processes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ctdl import ctid as ctids
from ctdl import rdf
from ctdl.canon import content_hash
from ctdl.compact import from_rdf
from ctdl.document import CTDL_CONTEXT, Document, parse
from ctdl.problems import Problem, Severity
from ctdl.validate import validate
from registry.config import Settings
from registry.errors import UnsupportedMediaType, ValidationFailed
from registry.representations import resource_view

JSONLD_TYPES = ("application/ld+json", "application/json")
RDF_INPUT_TYPES = {"text/turtle": "turtle", "application/n-triples": "ntriples"}


@dataclass(slots=True)
class Prepared:
    """A parsed, validated graph ready to store; built outside the write transaction."""

    ctid: str
    body: bytes  # the normalized envelope
    ntriples: str
    etag: str
    type: str  # the main node's first @type
    owned_by: tuple[str, ...]  # CTIDs in the main node's ceterms:ownedBy
    problems: list[Problem]  # warnings and infos (a Prepared has no errors)
    resource: bytes  # the /resources view


def report(problems: list[Problem], ctid: str | None) -> dict[str, Any]:
    """The validation report shape shared by `credreg validate`, POST /validate and 422 bodies."""
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = sum(p.severity is Severity.WARNING for p in problems)
    return {"valid": errors == 0, "ctid": ctid, "errors": errors, "warnings": warnings,
            "problems": [p.as_dict() for p in problems]}


class Preparer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def read_document(self, raw: bytes, media_type: str = "application/ld+json") -> Document:
        """Parse a body in any accepted serialization into a normalized CTDL document."""
        media_type = media_type.split(";")[0].strip().lower() or "application/ld+json"
        if media_type in JSONLD_TYPES:
            return parse(raw, base_uri=self.settings.base_uri)
        if media_type in RDF_INPUT_TYPES:
            return parse(self._from_rdf(raw, RDF_INPUT_TYPES[media_type]),
                         base_uri=self.settings.base_uri)
        raise UnsupportedMediaType(
            f"Send application/ld+json, text/turtle or application/n-triples, not {media_type}.")

    def _from_rdf(self, raw: bytes, fmt: str) -> dict[str, Any]:
        import pyoxigraph as ox

        rdf_format = ox.RdfFormat.TURTLE if fmt == "turtle" else ox.RdfFormat.N_TRIPLES
        try:
            triples = ox.parse(raw, format=rdf_format)
            out = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES)
            assert out is not None
            nt = out.decode()
        except SyntaxError as exc:
            raise ValidationFailed(f"The {fmt} body does not parse.", [
                Problem("malformed-rdf", Severity.ERROR, "", str(exc)).as_dict()]) from None
        return from_rdf(nt, CTDL_CONTEXT)

    def check(self, document: Document) -> list[Problem]:
        """Every problem with the document: the parser's, the validator's, and whether it converts
        to RDF at all (the same checks for a dry run and for a write)."""
        return self._examine(document)[0]

    def _examine(self, document: Document) -> tuple[list[Problem], tuple[str, str] | None]:
        """The problems, and when there is no error the graph's N-Triples and content hash."""
        if document.has_errors:
            return document.problems, None
        problems = document.problems + validate(document, max_nodes=self.settings.max_nodes,
                                                max_depth=self.settings.max_depth)
        if any(p.severity is Severity.ERROR for p in problems) or not document.nodes:
            return problems, None
        try:
            ntriples = rdf.to_nquads(document.envelope)
        except Exception as exc:  # noqa: BLE001 - PyLD (the fallback) raises many kinds on bad JSON-LD
            return problems + [Problem("invalid-json-ld", Severity.ERROR, "",
                                       f"The document is not valid JSON-LD: {exc}")], None
        try:
            # hashing parses the triples: what no RDF store could load (a language tag like
            # "en_US", an IRI with "<") is refused here rather than stored
            etag = content_hash(ntriples)
        except ValueError as exc:
            return problems + [Problem("invalid-rdf", Severity.ERROR, "",
                                       f"The graph holds a term RDF does not allow: {exc}")], None
        return problems, (ntriples, etag)

    def validate_report(self, raw: bytes, media_type: str = "application/ld+json") -> dict[str, Any]:
        """The dry run: what `prepare` would say, nothing stored."""
        try:
            document = self.read_document(raw, media_type)
        except ValidationFailed as exc:
            return {"valid": False, "ctid": None, "errors": 1, "warnings": 0,
                    "problems": exc.extra["problems"]}
        problems = self.check(document)
        if not document.nodes and not problems:
            problems = [Problem("empty-graph", Severity.INFO, "/@graph",
                                "The graph has no nodes: it is valid but there is nothing to publish.")]
        return report(problems, document.ctid)

    def prepare(self, raw: bytes, media_type: str = "application/ld+json") -> Prepared:
        """Parse, validate and convert; raise ValidationFailed listing every problem."""
        document = self.read_document(raw, media_type)
        problems, converted = self._examine(document)
        if any(p.severity is Severity.ERROR for p in problems):
            raise ValidationFailed(_summary(problems), report(problems, document.ctid)["problems"])
        if document.ctid is None or document.main is None or converted is None:
            problem = Problem("empty-graph", Severity.ERROR, "/@graph",
                              "The graph has no main node with a CTID: there is nothing to publish.")
            raise ValidationFailed(problem.message, [problem.as_dict()])
        main = document.main
        types = main.get("@type")
        first_type = types if isinstance(types, str) else (types or [""])[0]
        owned_by = ctids.owners(main)
        ntriples, etag = converted
        return Prepared(document.ctid, orjson.dumps(document.envelope), ntriples, etag,
                        first_type, owned_by, problems, orjson.dumps(resource_view(document.envelope)))

    def prepare_many(self, raws: list[bytes]) -> list[Prepared | list[dict[str, str]]]:
        """Prepare each body; a rejected one yields its problems instead (for bulk imports)."""
        out: list[Prepared | list[dict[str, str]]] = []
        for raw in raws:
            try:
                out.append(self.prepare(raw))
            except ValidationFailed as exc:
                out.append(exc.extra["problems"])
        return out


def _summary(problems: list[Problem]) -> str:
    errors = [p for p in problems if p.severity is Severity.ERROR]
    first = errors[0].message if errors else ""
    more = f" ({len(errors) - 1} more error{'s' if len(errors) > 2 else ''} listed)" if len(errors) > 1 else ""
    return f"{first}{more}"


# --- worker processes for bulk imports ------------------------------------------------------------
_worker: Preparer | None = None


def init_worker(settings: Settings) -> None:
    global _worker
    _worker = Preparer(settings)


def prepare_in_worker(raws: list[bytes]) -> list[Prepared | list[dict[str, str]]]:
    assert _worker is not None, "init_worker was not called"
    return _worker.prepare_many(raws)
