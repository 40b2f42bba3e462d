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
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import threading
import zipfile
from collections.abc import Iterator
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
from registry.errors import NotFound
from registry.rdfstore import POSITION_PREDICATE, XSD_INTEGER, dataset_iri, meta_graph_iri, to_nquads
from registry.rdfstore.projection import graph_iri, metadata_ntriples, skolemize
from registry.store import Change, Record, Store

if TYPE_CHECKING:
    from registry.service import Registry

NQUADS_SUFFIX = ".nq.gz"
ZIP_SUFFIX = ".jsonld.zip"
_ORG_TYPES = {"ceterms:CredentialOrganization", "ceterms:Organization", "ceterms:QACredentialOrganization"}
_build_lock = threading.Lock()


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


def dump_dir(registry: Registry) -> Path:
    return registry.settings.data_dir / "dumps"


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


def write_dump(registry: Registry, directory: Path | None = None, *, keep: int = 3,
               force: bool = False) -> Dump:
    """Write both dump files at the current sequence; keep the newest `keep` dumps."""
    directory = directory or dump_dir(registry)
    directory.mkdir(parents=True, exist_ok=True)
    store, base = registry.store, registry.settings.base_uri
    seq = store.last_seq()
    stem = f"credreg-seq{seq}"
    existing = _read_manifest(directory / f"{stem}.json")
    if existing is not None and not force:
        return existing
    meta = meta_graph_iri(base)
    nq_path, zip_path = directory / (stem + NQUADS_SUFFIX), directory / (stem + ZIP_SUFFIX)
    nq_tmp, zip_tmp = nq_path.with_name(nq_path.name + ".part"), zip_path.with_name(zip_path.name + ".part")
    records = quads = 0
    with gzip.open(nq_tmp, "wt", encoding="utf-8", compresslevel=6) as nq, \
            zipfile.ZipFile(zip_tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records_at(store, seq):
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
    os.replace(nq_tmp, nq_path)
    os.replace(zip_tmp, zip_path)
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    files = {
        "nquads": {"name": nq_path.name, "media_type": "application/n-quads", "encoding": "gzip",
                   "bytes": nq_path.stat().st_size, "sha256": _sha256(nq_path)},
        "jsonld": {"name": zip_path.name, "media_type": "application/zip",
                   "content": "application/ld+json", "bytes": zip_path.stat().st_size,
                   "sha256": _sha256(zip_path)},
    }
    dump = Dump(seq, created, records, quads, files)
    manifest = directory / f"{stem}.json"
    manifest_tmp = manifest.with_name(manifest.name + ".part")
    manifest_tmp.write_bytes(orjson.dumps({"seq": seq, "created": created, "records": records,
                                           "quads": quads, "files": files}, option=orjson.OPT_INDENT_2))
    os.replace(manifest_tmp, manifest)
    _prune(directory, keep)
    return dump


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
    for dump in list_dumps(directory)[max(1, keep):]:
        for f in dump.files.values():
            (directory / f["name"]).unlink(missing_ok=True)
        (directory / f"credreg-seq{dump.seq}.json").unlink(missing_ok=True)
    for stale in directory.glob("*.part"):  # left by a dump that was interrupted
        stale.unlink(missing_ok=True)


# --- HTTP --------------------------------------------------------------------------------------
class DumpRoutes:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.directory = dump_dir(registry)

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

        def build() -> Dump:
            with _build_lock:  # concurrent first requests wait for one build
                found = list_dumps(self.directory)
                return found[0] if found else write_dump(self.registry, self.directory)

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
