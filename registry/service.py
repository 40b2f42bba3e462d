"""The service layer: every domain operation, callable without HTTP (API, CLI, sync, pages)."""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from typing import Any

from ctdl import ctid as ctids
from ctdl.document import Document
from ctdl.problems import Problem, Severity
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
    ValidationFailed,
)
from registry.preparer import Prepared, Preparer, init_worker, prepare_in_worker, report
from registry.projections import Projection, Projector
from registry.store import Batch, Change, Record, Store, Version, open_store
from registry.store.sql import now

__all__ = ["Outcome", "Prepared", "Registry", "report"]
log = logging.getLogger("credreg.service")

ORGANIZATION_TYPES = frozenset({"ceterms:CredentialOrganization", "ceterms:Organization",
                                "ceterms:QACredentialOrganization"})
_CHUNK = 256  # graphs per task sent to a worker process during bulk imports


@dataclass(slots=True)
class Outcome:
    record: Record
    status: str  # created | updated | unchanged | deleted
    problems: list[Problem] = field(default_factory=list)


class Registry:
    def __init__(self, settings: Settings, store: Store | None = None,
                 projections: list[Projection] | None = None, catch_up: bool = True) -> None:
        self.settings = settings
        self.preparer = Preparer(settings)
        self.store = store or open_store(settings.store_url, durable=settings.durable)
        if settings.auto_migrate:
            self.store.upgrade()
        if projections is None:
            from registry.wiring import build_projections

            projections = build_projections(settings)
        self.projector = Projector(self.store, projections)
        if catch_up:
            self.projector.catch_up()  # repair whatever a crash left behind
        self.projector.start()
        self.committer = Committer(self.store, self.projector.notify, settings.group_commit_ms,
                                   before_commit=self.projector.throttle)
        self._stop = threading.Event()

    def follow(self, interval: float = 1.0) -> None:
        """Keep the projections up to date with writes committed by other processes."""
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    if any(self.projector.lag().values()):
                        self.projector.notify()
                except Exception:  # logged; the next tick retries
                    log.exception("following the change log failed")

        threading.Thread(target=loop, name="credreg-follower", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.committer.close()
        self.projector.stop()
        self.projector.close()
        for projection in self.projector.projections:
            close = getattr(projection, "close", None)
            if close is not None:
                close()
        self.store.close()

    # --- reading input (see registry/preparer.py) -----------------------------------------------
    def read_document(self, raw: bytes, media_type: str = "application/ld+json") -> Document:
        return self.preparer.read_document(raw, media_type)

    def check(self, document: Document) -> list[Problem]:
        return self.preparer.check(document)

    def validate_report(self, raw: bytes, media_type: str = "application/ld+json") -> dict[str, Any]:
        return self.preparer.validate_report(raw, media_type)

    def prepare(self, raw: bytes, media_type: str = "application/ld+json") -> Prepared:
        return self.preparer.prepare(raw, media_type)

    # --- writing -------------------------------------------------------------------------------
    def publish(self, prepared: Prepared, principal: auth.Principal | None, *,
                path_ctid: str | None = None, if_match: str | None = None,
                mode: str = "put") -> Outcome:
        """Store a prepared graph. Modes: `put` (create, or replace with If-Match), `post`
        (create only), `import` (create or replace; unchanged content is skipped).
        `principal` None means a local administrator (the CLI)."""
        outcome = self.submit_publish(prepared, principal, path_ctid=path_ctid, if_match=if_match,
                                      mode=mode).result()
        self.projector.wait_for()
        return outcome

    def submit_publish(self, prepared: Prepared, principal: auth.Principal | None, *,
                       path_ctid: str | None = None, if_match: str | None = None,
                       mode: str = "put") -> Future[Outcome]:
        """`publish` without waiting: the future resolves once the group commit is durable (the
        projections apply it next; reads that depend on them wait for that: `Projector.barrier`)."""
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

        outcome = self.committer.run(work)
        self.projector.wait_for()
        return outcome

    def purge(self, ctid: str, principal: auth.Principal | None) -> None:
        """Remove a record physically (admins only): its content leaves every version."""
        if principal is not None and not principal.admin:
            raise Forbidden("Only an admin key may purge a record.")

        def work(batch: Batch) -> None:
            if batch.current(ctid) is None:
                raise NotFound(f"No record {ctid}.")
            batch.purge(ctid)

        self.committer.run(work)
        self.projector.wait_for()

    def import_many(self, items: Iterable[tuple[str, bytes]],
                    on_result: Callable[[str, str, list[Problem] | None], None],
                    batch_size: int = 500, workers: int | None = None) -> dict[str, int]:
        """Bulk import (`credreg import`): prepare each item (in worker processes when there are
        many), write in transactions of `batch_size`, skip unchanged graphs. Each item is
        all-or-nothing; a rejected item is reported through `on_result(source, "rejected",
        problems)` and the import goes on."""
        counts = {"imported": 0, "unchanged": 0, "rejected": 0}
        pending: list[tuple[str, Prepared]] = []

        def flush() -> None:
            known = self.store.etags([p.ctid for _, p in pending])
            futures = []
            for source, prepared in pending:
                if known.get(prepared.ctid) == prepared.etag:
                    counts["unchanged"] += 1
                    on_result(source, "unchanged", None)
                else:
                    futures.append((source, self.submit_publish(prepared, None, mode="import")))
            for source, future in futures:
                try:
                    status = future.result().status
                except Exception as exc:  # noqa: BLE001 - reported per item, import goes on
                    counts["rejected"] += 1
                    on_result(source, "rejected", [Problem("store-error", Severity.ERROR, "", str(exc))])
                    continue
                key = "unchanged" if status == "unchanged" else "imported"
                counts[key] += 1
                on_result(source, key, None)
            pending.clear()

        gc.freeze()  # bulk work builds many objects; cyclic GC passes over them cost ~3x
        try:
            with self.projector.deferred():  # projections catch up once, at the end
                for source, result in self._prepared(items, workers):
                    if isinstance(result, Prepared):
                        pending.append((source, result))
                    else:
                        counts["rejected"] += 1
                        on_result(source, "rejected", [_problem(p) for p in result])
                    if len(pending) >= batch_size:
                        flush()
                flush()
        finally:
            gc.unfreeze()
        return counts

    def _prepared(self, items: Iterable[tuple[str, bytes]], workers: int | None
                  ) -> Iterator[tuple[str, Prepared | list[dict[str, str]]]]:
        """Prepared items in input order. Past the first chunk, worker processes prepare chunks
        ahead while this process writes (spawned, not forked: this process has threads)."""
        it = iter(items)
        workers = workers if workers is not None else (os.cpu_count() or 1)
        first = list(islice(it, _CHUNK)) if workers > 1 else []
        if workers <= 1 or len(first) < _CHUNK:  # few items: not worth starting processes
            for source, raw in chain(first, it):
                yield source, self._prepare_or_problems(raw)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                 initargs=(self.settings,)) as pool:
            ahead: deque[tuple[list[str], Future[list[Prepared | list[dict[str, str]]]]]] = deque()
            for chunk in chain([first], iter(lambda: list(islice(it, _CHUNK)), [])):
                ahead.append(([s for s, _ in chunk], pool.submit(prepare_in_worker, [r for _, r in chunk])))
                while len(ahead) > workers * 2:
                    sources, future = ahead.popleft()
                    yield from zip(sources, future.result(), strict=True)
            while ahead:
                sources, future = ahead.popleft()
                yield from zip(sources, future.result(), strict=True)

    def _prepare_or_problems(self, raw: bytes) -> Prepared | list[dict[str, str]]:
        try:
            return self.prepare(raw)
        except ValidationFailed as exc:
            return list(exc.extra["problems"])

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
    return replace(record, seq=seq)


def _problem(d: dict[str, str]) -> Problem:
    return Problem(d["code"], Severity(d["severity"]), d["pointer"], d["message"],
                   d.get("node"), d.get("property"))
