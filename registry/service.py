"""The service layer: every domain operation, callable without HTTP (API, CLI, sync, pages)."""
from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson

from ctdl import ctid as ctids
from ctdl import rdf
from ctdl.canon import content_hash
from ctdl.document import CTDL_CONTEXT, Document, parse
from ctdl.problems import Problem, Severity
from ctdl.validate import validate
from registry import auth
from registry.committer import Committer
from registry.config import Settings
from registry.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnsupportedMediaType,
    ValidationFailed,
)
from registry.projections import Projection, Projector
from registry.representations import resource_view
from registry.store import Batch, Change, Record, Store, Version, open_store
from registry.store.sql import now

JSONLD_TYPES = ("application/ld+json", "application/json")
RDF_INPUT_TYPES = {"text/turtle": "turtle", "application/n-triples": "ntriples"}
ORGANIZATION_TYPES = frozenset({"ceterms:CredentialOrganization", "ceterms:Organization",
                                "ceterms:QACredentialOrganization"})


@dataclass(slots=True)
class Prepared:
    """A parsed, validated graph ready to store; built outside the write transaction."""

    document: Document
    body: bytes
    ntriples: str
    etag: str
    type: str
    owned_by: tuple[str, ...]
    problems: list[Problem]
    resource: bytes

    @property
    def ctid(self) -> str:
        assert self.document.ctid is not None
        return self.document.ctid


@dataclass(slots=True)
class Outcome:
    record: Record
    status: str  # created | updated | unchanged | deleted
    problems: list[Problem] = field(default_factory=list)


def report(problems: list[Problem], ctid: str | None) -> dict[str, Any]:
    """The validation report shape shared by `credreg validate`, POST /validate and 422 bodies."""
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = sum(p.severity is Severity.WARNING for p in problems)
    return {"valid": errors == 0, "ctid": ctid, "errors": errors, "warnings": warnings,
            "problems": [p.as_dict() for p in problems]}


class Registry:
    def __init__(self, settings: Settings, store: Store | None = None,
                 projections: list[Projection] | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.store_url, durable=settings.durable)
        if settings.auto_migrate:
            self.store.upgrade()
        if projections is None:
            from registry.wiring import build_projections

            projections = build_projections(settings)
        self.projector = Projector(self.store, projections)
        self.projector.catch_up()  # repair whatever a crash left behind
        self.committer = Committer(self.store, self.projector.catch_up, settings.group_commit_ms)

    def close(self) -> None:
        self.committer.close()
        for projection in self.projector.projections:
            close = getattr(projection, "close", None)
            if close is not None:
                close()
        self.store.close()

    # --- reading input -------------------------------------------------------------------------
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
        return rdf.from_rdf(nt, CTDL_CONTEXT)

    def check(self, document: Document) -> list[Problem]:
        """Every problem with the document: the parser's, the validator's, and whether it converts
        to RDF at all (the same checks for a dry run and for a write)."""
        return self._examine(document)[0]

    def _examine(self, document: Document) -> tuple[list[Problem], str | None]:
        """The problems, and the graph's N-Triples when there is no error."""
        if document.has_errors:
            return document.problems, None
        problems = document.problems + validate(document, max_nodes=self.settings.max_nodes,
                                                max_depth=self.settings.max_depth)
        if any(p.severity is Severity.ERROR for p in problems) or not document.nodes:
            return problems, None
        try:
            return problems, rdf.to_nquads(document.envelope)
        except Exception as exc:  # noqa: BLE001 - PyLD (the fallback) raises many kinds on bad JSON-LD
            return problems + [Problem("invalid-json-ld", Severity.ERROR, "",
                                       f"The document is not valid JSON-LD: {exc}")], None

    def validate_report(self, raw: bytes, media_type: str = "application/ld+json"
                        ) -> dict[str, Any]:
        """The dry run: what `prepare` would say, nothing stored."""
        try:
            document = self.read_document(raw, media_type)
        except ValidationFailed as exc:
            return {"valid": False, "ctid": None, "errors": 1, "warnings": 0,
                    "problems": exc.extra["problems"]}
        problems = self.check(document)
        if not document.nodes and not problems:
            problems = [Problem("empty-graph", Severity.INFO, "/@graph",
                                "The graph has no nodes: it is valid but there is nothing to "
                                "publish.")]
        return report(problems, document.ctid)

    def prepare(self, raw: bytes, media_type: str = "application/ld+json") -> Prepared:
        """Parse, validate and convert; raise ValidationFailed listing every problem."""
        document = self.read_document(raw, media_type)
        problems, ntriples = self._examine(document)
        if any(p.severity is Severity.ERROR for p in problems):
            raise ValidationFailed(_summary(problems), report(problems, document.ctid)["problems"])
        if document.ctid is None or document.main is None or ntriples is None:
            problem = Problem("empty-graph", Severity.ERROR, "/@graph",
                              "The graph has no main node with a CTID: there is nothing to publish.")
            raise ValidationFailed(problem.message, [problem.as_dict()])
        main = document.main
        types = main.get("@type")
        first_type = types if isinstance(types, str) else (types or [""])[0]
        owned_by = tuple(sorted({c for c in map(_ctid_of, _as_list(main.get("ceterms:ownedBy")))
                                 if c}))
        return Prepared(document, orjson.dumps(document.envelope), ntriples, content_hash(ntriples),
                        first_type, owned_by, problems, orjson.dumps(resource_view(document.envelope)))

    # --- writing -------------------------------------------------------------------------------
    def publish(self, prepared: Prepared, principal: auth.Principal | None, *,
                path_ctid: str | None = None, if_match: str | None = None,
                mode: str = "put") -> Outcome:
        """Store a prepared graph. Modes: `put` (create, or replace with If-Match), `post`
        (create only), `import` (create or replace; unchanged content is skipped).
        `principal` None means a local administrator (the CLI)."""
        return self.submit_publish(prepared, principal, path_ctid=path_ctid, if_match=if_match,
                                   mode=mode).result()

    def submit_publish(self, prepared: Prepared, principal: auth.Principal | None, *,
                       path_ctid: str | None = None, if_match: str | None = None,
                       mode: str = "put") -> Future[Outcome]:
        """`publish` without waiting: the future resolves once the group commit is durable."""
        if path_ctid is not None and path_ctid.lower() != prepared.ctid:
            raise BadRequest(f"The URL names {path_ctid} but the graph's main node has CTID "
                             f"{prepared.ctid}.", pointer="/@graph/0/ceterms:ctid")
        return self.committer.submit(
            lambda batch: self._write(batch, prepared, principal, if_match, mode))

    def _write(self, batch: Batch, prepared: Prepared, principal: auth.Principal | None,
               if_match: str | None, mode: str) -> Outcome:
        ctid = prepared.ctid
        existing = batch.current(ctid)
        live = existing is not None and not existing.deleted
        if live and mode == "post":
            raise Conflict(f"{ctid} exists; replace it with PUT and If-Match.")
        if live and mode == "put":
            assert existing is not None
            if if_match is None:
                raise PreconditionRequired(f"{ctid} exists: send If-Match with its ETag to "
                                           "replace it.")
            if not _etag_matches(if_match, existing.etag):
                raise PreconditionFailed(f"{ctid} changed since you read it (ETag "
                                         f"\"{existing.etag}\").")
        elif if_match is not None and if_match.strip() != "*" and mode == "put":
            raise PreconditionFailed(f"If-Match was sent but {ctid} does not exist.")
        owners = self._owners(prepared, principal)
        if principal is not None:
            auth.authorize(self.store, principal, ctid, owners)
            if live:
                assert existing is not None
                auth.authorize(self.store, principal, ctid, existing.owners)
        if live and existing is not None and existing.etag == prepared.etag:
            return Outcome(existing, "unchanged", prepared.problems)
        stamp = now()
        record = Record(
            ctid=ctid, version=(existing.version + 1) if existing else 1, etag=prepared.etag,
            body=prepared.body, ntriples=prepared.ntriples, type=prepared.type, owners=owners,
            publisher=principal.org if principal else None,
            created=existing.created if live and existing else stamp, modified=stamp,
            resource=prepared.resource)
        seq = batch.write(record, "update" if live else "create")
        return Outcome(_with_seq(record, seq), "updated" if live else "created", prepared.problems)

    def _owners(self, prepared: Prepared, principal: auth.Principal | None) -> tuple[str, ...]:
        if prepared.owned_by:
            return prepared.owned_by
        if prepared.type in ORGANIZATION_TYPES:
            return (prepared.ctid,)
        if principal is not None and principal.org is not None:
            return (principal.org,)
        return ()

    def delete(self, ctid: str, principal: auth.Principal | None, if_match: str | None) -> Outcome:
        def work(batch: Batch) -> Outcome:
            existing = batch.current(ctid)
            if existing is None:
                raise NotFound(f"No record {ctid}.")
            if existing.deleted:
                raise Gone(f"{ctid} was deleted on {existing.modified}.")
            if if_match is None and principal is not None:
                raise PreconditionRequired(f"Send If-Match with the ETag of {ctid} to delete it.")
            if if_match is not None and not _etag_matches(if_match, existing.etag):
                raise PreconditionFailed(f"{ctid} changed since you read it.")
            if principal is not None:
                auth.authorize(self.store, principal, ctid, existing.owners)
            stamp = now()
            tomb = Record(ctid=ctid, version=existing.version + 1, etag=existing.etag,
                          body=existing.body, ntriples="", type=existing.type,
                          owners=existing.owners, publisher=principal.org if principal else None,
                          created=existing.created, modified=stamp, deleted=True)
            return Outcome(_with_seq(tomb, batch.write(tomb, "delete")), "deleted")

        return self.committer.run(work)

    def purge(self, ctid: str, principal: auth.Principal | None) -> None:
        """Remove a record physically (admins only): its content leaves every version."""
        if principal is not None and not principal.admin:
            raise Forbidden("Only an admin key may purge a record.")

        def work(batch: Batch) -> None:
            if batch.current(ctid) is None:
                raise NotFound(f"No record {ctid}.")
            batch.purge(ctid)

        self.committer.run(work)

    def import_many(self, items: Iterable[tuple[str, bytes]],
                    on_result: Callable[[str, str, list[Problem] | None], None],
                    batch_size: int = 500) -> dict[str, int]:
        """Bulk import (`credreg import`): prepare each item, write in transactions of
        `batch_size`, skip unchanged graphs. Each item is all-or-nothing; a rejected item is
        reported through `on_result(source, "rejected", problems)` and the import goes on."""
        counts = {"imported": 0, "unchanged": 0, "rejected": 0}
        pending: list[tuple[str, Prepared]] = []

        def flush() -> None:
            known = self.store.etags([p.ctid for _, p in pending])
            todo = [(s, p) for s, p in pending if known.get(p.ctid) != p.etag]
            for source, _ in [(s, p) for s, p in pending if known.get(p.ctid) == p.etag]:
                counts["unchanged"] += 1
                on_result(source, "unchanged", None)
            futures = [(source, self.submit_publish(p, None, mode="import")) for source, p in todo]
            for source, future in futures:
                try:
                    status = future.result().status
                except Exception as exc:  # noqa: BLE001 - reported per item, import goes on
                    counts["rejected"] += 1
                    on_result(source, "rejected", [Problem("store-error", Severity.ERROR, "",
                                                           str(exc))])
                    continue
                key = "unchanged" if status == "unchanged" else "imported"
                counts[key] += 1
                on_result(source, key, None)
            pending.clear()

        gc.freeze()  # bulk work builds many objects; cyclic GC passes over them cost ~3x
        try:
            for source, raw in items:
                try:
                    pending.append((source, self.prepare(raw)))
                except ValidationFailed as exc:
                    counts["rejected"] += 1
                    on_result(source, "rejected", [_problem(p) for p in exc.extra["problems"]])
                if len(pending) >= batch_size:
                    flush()
            flush()
        finally:
            gc.unfreeze()
        return counts

    # --- reading -------------------------------------------------------------------------------
    def get(self, ctid: str) -> Record:
        canonical = ctids.normalize(ctid)
        if canonical is None:
            raise NotFound(f"{ctid!r} is not a CTID (ce- followed by a UUID).")
        record = self.store.get(canonical)
        if record is None:
            raise NotFound(f"No record {canonical}.")
        if record.deleted:
            raise Gone(f"{canonical} was deleted on {record.modified}.")
        return record

    def versions(self, ctid: str) -> list[Version]:
        self.get_any(ctid)
        return self.store.versions(ctid)

    def version(self, ctid: str, number: int) -> Version:
        self.get_any(ctid)
        found = self.store.version(ctid, number)
        if found is None:
            raise NotFound(f"{ctid} has no version {number}.")
        return found

    def get_any(self, ctid: str) -> Record:
        """The record even if deleted (history stays readable)."""
        record = self.store.get(ctid)
        if record is None:
            raise NotFound(f"No record {ctid}.")
        return record

    def changes(self, after: int, limit: int) -> list[Change]:
        if after < 0:
            raise BadRequest("'after' must be 0 or more.", parameter="after")
        if not 1 <= limit <= self.settings.page_limit:
            raise BadRequest(f"'limit' must be between 1 and {self.settings.page_limit}.",
                             parameter="limit")
        return self.store.changes(after, limit)


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return "*" in tags or etag in tags


def _with_seq(record: Record, seq: int) -> Record:
    from dataclasses import replace

    return replace(record, seq=seq)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _ctid_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("@id") or value.get("ceterms:ctid")
    if not isinstance(value, str):
        return None
    return ctids.normalize(value) or ctids.from_uri(value)


def _summary(problems: list[Problem]) -> str:
    errors = [p for p in problems if p.severity is Severity.ERROR]
    first = errors[0].message if errors else ""
    more = f" ({len(errors) - 1} more error{'s' if len(errors) > 2 else ''} listed)" \
        if len(errors) > 1 else ""
    return f"{first}{more}"


def _problem(d: dict[str, str]) -> Problem:
    return Problem(d["code"], Severity(d["severity"]), d["pointer"], d["message"],
                   d.get("node"), d.get("property"))
