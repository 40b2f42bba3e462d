"""Bulk dumps: `credreg dump`, GET /dumps, /dumps/latest.nq.gz and /dumps/latest.jsonld.zip.

A dump is the registry's state at one change-log sequence S, in two files written in one pass:
- `credreg-seqS.nq.gz`: N-Quads, one named graph per record (skolemized as in the triple store)
  plus the metadata graph, which also states S (`urn:credreg:changeSequence`);
- `credreg-seqS.jsonld.zip`: one graph envelope per record, `{ctid}.json` at the root of the
  archive, as Credential Engine's bulk download lays out its envelopes (its zip comment states S).
A manifest `credreg-seqS.json` (written last: its presence marks a complete dump) has both
files' SHA-256 and sizes. A consumer loads the dump, then reads /changes?after=S.

Consistency without a long read transaction (which would hold SQLite's writers or need a
PostgreSQL snapshot the Store protocol does not offer): S is read first; then every current
record is read, and one whose current version was written after S is set aside. After the
pass, the change log after S names every record that changed since S; each of those not yet
written is written as it was at S, rebuilt from its version history (absent if it did not exist
at S, was deleted at S, or has been purged since: the consumer then sees the purge in the log).
So the dump holds exactly the changes up to S: no gap and no duplicate with /changes?after=S.

A dump reads the system of record (the store) only, never the search index or the triple store,
so `credreg dump` runs beside `credreg serve` on the same data directory. Several writers may
share the dump directory (the service's refresher, `credreg dump`): one writes at a time (an
advisory lock on `.lock` in the directory, which also covers threads), each file is written under
a hidden temporary name, synced and renamed into place, and the manifest last; readers take no
lock and see only complete dumps. The service keeps `latest` fresh itself: `DumpRefresher`
writes a new dump, in a thread, once the newest is older than CREDREG_DUMP_INTERVAL_S and the
change log has moved past it.
"""
from __future__ import annotations

import asyncio
import base64
import fcntl
import gzip
import hashlib
import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ctdl import ctid as ctids
from ctdl import rdf
from registry.config import Settings
from registry.errors import NotFound
from registry.rdfstore import POSITION_PREDICATE, XSD_INTEGER, dataset_iri, meta_graph_iri, to_nquads
from registry.rdfstore.projection import graph_iri, metadata_ntriples, skolemize
from registry.store import Change, Record, Store

if TYPE_CHECKING:
    from registry.service import Registry

NQUADS_SUFFIX = ".nq.gz"
ZIP_SUFFIX = ".jsonld.zip"
KEEP = 3  # dumps kept: the newest, and two a slow download may still be reading
_ORG_TYPES = {"ceterms:CredentialOrganization", "ceterms:Organization", "ceterms:QACredentialOrganization"}
log = logging.getLogger("credreg.dumps")


class DumpCancelled(Exception):
    """The writer was asked to stop (the service is shutting down); nothing was published."""


@dataclass(frozen=True, slots=True)
class Dump:
    seq: int
    created: str
    records: int
    quads: int
    files: dict[str, dict[str, Any]]  # "nquads" | "jsonld" -> {name, media_type, bytes, sha256}

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "created": self.created, "records": self.records, "quads": self.quads,
                "continue_from": f"/changes?after={self.seq}",
                "files": {k: {**v, "href": f"/dumps/{v['name']}"} for k, v in self.files.items()}}

    def age_s(self, now: float) -> float:
        return now - datetime.fromisoformat(self.created).timestamp()


def dump_dir(settings: Settings) -> Path:
    return settings.data_dir / "dumps"


# --- the state at S --------------------------------------------------------------------------
def records_at(store: Store, seq: int) -> Iterator[Record]:
    """Every record as it was at change-log sequence `seq` (see the module docstring)."""
    written: set[str] = set()
    for record in store.iter_current():
        if record.seq <= seq:
            written.add(record.ctid)
            yield record
    first_after: dict[str, Change] = {}
    after = seq
    while True:
        page = store.changes(after, 1000)
        for change in page:
            first_after.setdefault(change.ctid, change)
        if len(page) < 1000:
            break
        after = page[-1].seq
    for ctid in sorted(first_after.keys() - written):
        earlier = _version_at(store, first_after[ctid])
        if earlier is not None:
            yield earlier


def _version_at(store: Store, first_after: Change) -> Record | None:
    """The record just before `first_after`, the first change to it after S."""
    if first_after.action == "purge" or first_after.version <= 1:
        return None
    ctid, number = first_after.ctid, first_after.version - 1
    versions = [v for v in store.versions(ctid) if v.version <= number]
    if not versions or versions[-1].version != number or versions[-1].action == "delete":
        return None
    version = versions[-1]
    created = version.at
    for earlier in reversed(versions):  # the start of the live run that ends with this version
        if earlier.action == "delete":
            break
        created = earlier.at
    envelope = orjson.loads(version.body)
    main = _main_node(envelope, ctid)
    types = main.get("@type")
    type_ = types if isinstance(types, str) else (types or [""])[0] if isinstance(types, list) else ""
    owners = ctids.owners(main)
    if not owners:
        current = store.get(ctid)
        owners = current.owners if current else ((ctid,) if type_ in _ORG_TYPES else ())
    return Record(ctid=ctid, version=number, etag=version.etag, body=version.body,
                  ntriples=rdf.to_nquads(envelope), type=str(type_), owners=owners,
                  publisher=version.publisher, created=created, modified=version.at)


def _main_node(envelope: dict[str, Any], ctid: str) -> dict[str, Any]:
    nodes = [n for n in envelope.get("@graph", []) if isinstance(n, dict)]
    return next((n for n in nodes if n.get("ceterms:ctid") == ctid), nodes[0] if nodes else {})


# --- writing ---------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _exclusive(directory: Path, wait: bool) -> Iterator[bool]:
    """Hold the directory's writer lock (yields False if `wait` is off and another writer has it).
    flock, not a threading lock: it serializes processes too, and each call opens its own file
    description, so two threads of one process exclude each other as well."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def write_dump(registry: Registry, directory: Path | None = None, *, keep: int = KEEP,
               force: bool = False) -> Dump:
    """Write both dump files at the current sequence (waiting for another writer of the
    directory); keep the newest `keep` dumps."""
    dump = dump_store(registry.store, registry.settings.base_uri, directory or dump_dir(registry.settings),
                      keep=keep, force=force)
    assert dump is not None  # it waited
    return dump


def dump_store(store: Store, base: str, directory: Path, *, keep: int = KEEP, force: bool = False,
               wait: bool = True, stop: threading.Event | None = None) -> Dump | None:
    """Write both dump files at the current sequence; keep the newest `keep` dumps. Waits for a
    writer already at work in `directory`, or returns None at once if `wait` is off. Needs the
    store only (no projection), so `credreg dump` runs beside the service."""
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory, wait) as mine:
        if not mine:
            return None
        _prune(directory, keep)  # under the lock every temporary file is a dead writer's
        seq = store.last_seq()
        stem = f"credreg-seq{seq}"
        existing = _read_manifest(directory / f"{stem}.json")
        if existing is not None and not force:
            return existing
        dump = _write(store, base, directory, seq, stop)
        _prune(directory, keep)
        return dump


def _write(store: Store, base: str, directory: Path, seq: int, stop: threading.Event | None) -> Dump:
    stem = f"credreg-seq{seq}"
    meta = meta_graph_iri(base)
    nq_path, zip_path = directory / (stem + NQUADS_SUFFIX), directory / (stem + ZIP_SUFFIX)
    manifest = directory / f"{stem}.json"
    # Hidden and unique: never listed, never served, never another writer's file.
    tag = f"{os.getpid()}-{threading.get_ident()}.part"
    nq_tmp, zip_tmp, manifest_tmp = (p.with_name(f".{p.name}.{tag}") for p in (nq_path, zip_path, manifest))
    records = quads = 0
    try:
        with gzip.open(nq_tmp, "wt", encoding="utf-8", compresslevel=6) as nq, \
                zipfile.ZipFile(zip_tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for record in records_at(store, seq):
                if stop is not None and records % 1000 == 0 and stop.is_set():
                    raise DumpCancelled(f"dump at sequence {seq} stopped after {records} records")
                graph_text = to_nquads(skolemize(record.ntriples, base, record.ctid), graph_iri(base, record.ctid))
                meta_text = to_nquads(metadata_ntriples(record, base), meta)
                nq.write(graph_text)
                nq.write(meta_text)
                quads += graph_text.count("\n") + meta_text.count("\n")
                archive.writestr(f"{record.ctid}.json", record.body)
                records += 1
            nq.write(f'<{dataset_iri(base)}> <{POSITION_PREDICATE}> "{seq}"^^<{XSD_INTEGER}> <{meta}> .\n')
            quads += 1
            archive.comment = f"credreg dump: {records} graph envelopes at change-log sequence {seq}".encode()
        created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        files = {
            "nquads": {"name": nq_path.name, "media_type": "application/n-quads", "encoding": "gzip",
                       "bytes": nq_tmp.stat().st_size, "sha256": _sha256(nq_tmp)},
            "jsonld": {"name": zip_path.name, "media_type": "application/zip",
                       "content": "application/ld+json", "bytes": zip_tmp.stat().st_size,
                       "sha256": _sha256(zip_tmp)},
        }
        manifest_tmp.write_bytes(orjson.dumps({"seq": seq, "created": created, "records": records,
                                               "quads": quads, "files": files}, option=orjson.OPT_INDENT_2))
        # Synced before they are named: after a crash a manifest never points at missing data.
        for tmp in (nq_tmp, zip_tmp, manifest_tmp):
            _fsync(tmp)
        os.replace(nq_tmp, nq_path)
        os.replace(zip_tmp, zip_path)
        os.replace(manifest_tmp, manifest)  # last: from now on the dump is listed
        _fsync(directory)
    finally:
        for tmp in (nq_tmp, zip_tmp, manifest_tmp):
            tmp.unlink(missing_ok=True)
    return Dump(seq, created, records, quads, files)


def _read_manifest(path: Path) -> Dump | None:
    try:
        data = orjson.loads(path.read_bytes())
        dump = Dump(int(data["seq"]), str(data["created"]), int(data["records"]), int(data["quads"]),
                    dict(data["files"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if all((path.parent / f["name"]).is_file() for f in dump.files.values()):
        return dump
    return None


def list_dumps(directory: Path) -> list[Dump]:
    """Complete dumps, newest first."""
    if not directory.is_dir():
        return []
    dumps = [d for d in (_read_manifest(p) for p in directory.glob("credreg-seq*.json")) if d]
    return sorted(dumps, key=lambda d: (d.seq, d.created), reverse=True)


def _prune(directory: Path, keep: int) -> None:
    """Only with the writer lock held."""
    for dump in list_dumps(directory)[max(1, keep):]:
        # The manifest first: a dump is unlisted before its files go (a download already
        # running keeps its open file).
        (directory / f"credreg-seq{dump.seq}.json").unlink(missing_ok=True)
        for f in dump.files.values():
            (directory / f["name"]).unlink(missing_ok=True)
    for stale in (*directory.glob(".*.part"), *directory.glob("*.part")):  # an interrupted writer's
        stale.unlink(missing_ok=True)


class DumpRefresher:
    """Keeps the newest dump fresh for a service that runs for months: a new dump once the newest
    is older than `interval_s` and the change log has moved past its sequence (a quiet registry
    writes none). One thread; one dump at a time, and none while another writer (`credreg dump`)
    holds the directory: it tries again at its next tick."""

    def __init__(self, store: Store, base: str, directory: Path, interval_s: float, *,
                 keep: int = KEEP, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.base = base
        self.directory = directory
        self.interval_s = interval_s
        self.keep = keep
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self) -> bool:
        dumps = list_dumps(self.directory)
        if not dumps:
            return True
        latest = dumps[0]
        return latest.seq < self.store.last_seq() and latest.age_s(self.clock()) >= self.interval_s

    def refresh(self) -> Dump | None:
        """A new dump if one is due and no other writer is at work, else None."""
        if not self.due():
            return None
        return dump_store(self.store, self.base, self.directory, keep=self.keep, wait=False,
                          stop=self._stop)

    def start(self) -> None:
        # A check is two small reads, so it runs often enough that a dump is at most a tick late.
        tick = max(1.0, min(self.interval_s, 60.0))

        def loop() -> None:
            while not self._stop.wait(tick):
                try:
                    dump = self.refresh()
                    if dump is not None:
                        log.info("dump written at change-log sequence %d (%d records)", dump.seq, dump.records)
                except DumpCancelled:
                    return
                except Exception:  # logged; the next tick retries
                    log.exception("writing the dump failed")

        self._thread = threading.Thread(target=loop, name="credreg-dumps", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; a dump being written is abandoned (its temporary files removed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def start_refresher(registry: Registry) -> DumpRefresher | None:
    """The service's refresher, started (None when CREDREG_DUMP_INTERVAL_S is 0)."""
    settings = registry.settings
    if settings.dump_interval_s <= 0:
        return None
    refresher = DumpRefresher(registry.store, settings.base_uri, dump_dir(settings), settings.dump_interval_s)
    refresher.start()
    return refresher


# --- HTTP --------------------------------------------------------------------------------------
class DumpRoutes:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.directory = dump_dir(registry.settings)

    def routes(self) -> list[Route]:
        return [Route("/dumps", self.listing, methods=["GET"]),
                Route("/dumps/latest.nq.gz", self.latest_nquads, methods=["GET", "HEAD"]),
                Route("/dumps/latest.jsonld.zip", self.latest_jsonld, methods=["GET", "HEAD"]),
                Route("/dumps/{name}", self.file, methods=["GET", "HEAD"])]

    async def listing(self, request: Request) -> Response:
        dumps = list_dumps(self.directory)
        body = {"dumps": [d.as_json() for d in dumps],
                "latest": {"nquads": "/dumps/latest.nq.gz", "jsonld": "/dumps/latest.jsonld.zip"},
                "last_seq": self.registry.store.last_seq()}
        return Response(orjson.dumps(body), 200, media_type="application/json")

    async def _latest(self) -> Dump:
        dumps = list_dumps(self.directory)
        if dumps:
            return dumps[0]

        def build() -> Dump:  # no dump yet: concurrent first requests wait for one writer
            return write_dump(self.registry, self.directory)

        return await asyncio.to_thread(build)

    async def latest_nquads(self, request: Request) -> Response:
        return self._serve(await self._latest(), "nquads")

    async def latest_jsonld(self, request: Request) -> Response:
        return self._serve(await self._latest(), "jsonld")

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        for dump in list_dumps(self.directory):
            for kind, f in dump.files.items():
                if f["name"] == name:
                    return self._serve(dump, kind)
        raise NotFound(f"No dump file {name!r}; GET /dumps lists them.")

    def _serve(self, dump: Dump, kind: str) -> Response:
        f = dump.files[kind]
        digest = base64.b64encode(bytes.fromhex(f["sha256"])).decode()
        headers = {"ETag": f'"{f["sha256"]}"', "Repr-Digest": f"sha-256=:{digest}:",
                   "Credreg-Seq": str(dump.seq), "Content-Location": f"/dumps/{f['name']}",
                   "Link": f'</changes?after={dump.seq}>; rel="next"; title="changes after this dump"'}
        media = "application/gzip" if kind == "nquads" else "application/zip"
        return FileResponse(self.directory / f["name"], media_type=media, headers=headers,
                            filename=f["name"])


def openapi_paths() -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    file_ok = {"description": "The file; ETag and Repr-Digest carry its SHA-256, Credreg-Seq the "
                              "change-log sequence to continue from with /changes?after=",
               "headers": {"Credreg-Seq": {"schema": {"type": "integer"}},
                           "Repr-Digest": {"schema": {"type": "string"}}}}
    return {
        "/dumps": {"get": {"summary": "Bulk dumps with their SHA-256 and change-log sequence",
                           "responses": {"200": {"description": "Listing", "content": {
                               "application/json": {"schema": {"type": "object"}}}}}}},
        "/dumps/latest.nq.gz": {"get": {
            "summary": "The newest N-Quads dump (one named graph per record, plus the metadata graph)",
            "responses": {"200": {**file_ok, "content": {"application/gzip": {}}}}}},
        "/dumps/latest.jsonld.zip": {"get": {
            "summary": "The newest JSON-LD dump: {ctid}.json graph envelopes (Credential Engine layout)",
            "responses": {"200": {**file_ok, "content": {"application/zip": {}}}}}},
        "/dumps/{name}": {"parameters": [{"name": "name", "in": "path", "required": True,
                                          "schema": {"type": "string"}}],
                          "get": {"summary": "One dump file by name (see /dumps)",
                                  "responses": {"200": file_ok,
                                                "404": {"description": "No such file", "content": problem}}}},
    }
