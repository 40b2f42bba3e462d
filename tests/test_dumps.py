"""Dumps: `credreg dump`, GET /dumps and the latest files, checksums, the sequence they hold,
consistency with the change log when writes happen while a dump is being written, `credreg dump`
beside a running service, several writers of one dump directory, and the service's refresher."""
from __future__ import annotations

import gzip
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from registry.cli import main
from registry.config import Settings
from registry.dumps import Dump, DumpRefresher, dump_dir, list_dumps, records_at, write_dump
from registry.rdfstore import POSITION_PREDICATE, meta_graph_iri
from registry.service import Registry
from registry.sources import iter_sources
from registry.store import Record
from tests.conftest import BASE, ORG, graph, new_ctid, organization

META = meta_graph_iri(BASE)


def add(registry: Registry, *docs: dict[str, Any]) -> None:
    counts = registry.import_many([(f"doc{i}", orjson.dumps(d)) for i, d in enumerate(docs)], lambda *a: None)
    assert counts["rejected"] == 0


@pytest.fixture
def filled(registry: Registry) -> Registry:
    add(registry, organization(), *(graph(name=f"Credential {i}") for i in range(6)))
    return registry


def read_nquads(path: Path) -> list[ox.Quad]:
    with gzip.open(path, "rb") as fh:
        return list(ox.parse(fh.read(), format=ox.RdfFormat.N_QUADS))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_dump_has_one_named_graph_per_record_and_the_metadata_graph(filled: Registry, tmp_path: Path) -> None:
    dump = write_dump(filled, tmp_path)
    assert dump.seq == filled.store.last_seq() and dump.records == 7
    quads = read_nquads(tmp_path / dump.files["nquads"]["name"])
    assert len(quads) == dump.quads
    graphs = {q.graph_name.value for q in quads}
    ctids = {r.ctid for r in filled.store.iter_current()}
    assert graphs == {f"{BASE}/graph/{c}" for c in ctids} | {META}
    assert not any(isinstance(t, ox.BlankNode) for q in quads for t in (q.subject, q.object))
    position = [q for q in quads if q.predicate.value == POSITION_PREDICATE]
    assert [int(q.object.value) for q in position] == [dump.seq]


def test_the_nquads_dump_equals_the_triple_store(filled: Registry, tmp_path: Path) -> None:
    """Loaded into Oxigraph, the dump is the registry's triple store, quad for quad."""
    dump = write_dump(filled, tmp_path)
    loaded = ox.Store()
    loaded.extend(read_nquads(tmp_path / dump.files["nquads"]["name"]))
    projection = next(p for p in filled.projector.projections if p.name == "rdf")
    result = projection.store.query("SELECT ?g ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } }", max_results=10**6)
    in_store = {ox.Quad(s["s"], s["p"], s["o"], s["g"])
                for s in ox.parse_query_results(result.body, format=ox.QueryResultsFormat.JSON)}
    assert set(loaded) == in_store


def test_the_jsonld_zip_holds_one_envelope_per_record_and_imports_back(filled: Registry, tmp_path: Path) -> None:
    dump = write_dump(filled, tmp_path)
    path = tmp_path / dump.files["jsonld"]["name"]
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"{r.ctid}.json" for r in filled.store.iter_current())
        envelope = orjson.loads(archive.read(names[0]))
        assert set(envelope) == {"@context", "@id", "@graph"}
        assert f"sequence {dump.seq}".encode() in archive.comment
    other = Registry(Settings(data_dir=tmp_path / "other", base_uri=BASE, durable=False), projections=[])
    try:
        counts = other.import_many(iter_sources([path]), lambda *a: None)
        assert counts == {"imported": 7, "unchanged": 0, "rejected": 0}
        assert {r.ctid: r.etag for r in other.store.iter_current()} == {
            r.ctid: r.etag for r in filled.store.iter_current()}
    finally:
        other.close()


def test_the_manifest_has_checksums_and_old_dumps_are_pruned(filled: Registry, tmp_path: Path) -> None:
    tmp_path = tmp_path / "dumps"
    seqs = []
    for i in range(4):
        add(filled, graph(name=f"More {i}"))
        seqs.append(write_dump(filled, tmp_path, keep=2).seq)
    dumps = list_dumps(tmp_path)
    assert [d.seq for d in dumps] == seqs[:-3:-1]
    for dump in dumps:
        for f in dump.files.values():
            assert sha256(tmp_path / f["name"]) == f["sha256"]
            assert (tmp_path / f["name"]).stat().st_size == f["bytes"]
    listed = [p.name for p in tmp_path.iterdir() if p.name != ".lock"]  # the writers' lock file
    assert len(listed) == 6, listed  # two dumps: two files and a manifest each, no temporary file
    assert write_dump(filled, tmp_path, keep=2) == dumps[0]  # nothing changed: the same dump


def test_writes_during_a_dump_neither_leak_in_nor_go_missing(filled: Registry, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """Change, delete, create and purge records while the dump reads them: the dump is the state
    at S, and replaying /changes?after=S over it gives today's state, without gaps or repeats."""
    store = filled.store
    current = sorted(store.iter_current(), key=lambda r: r.ctid)
    first, second, third = current[1], current[3], current[5]
    real = store.iter_current
    state_at_start = {r.ctid: r.etag for r in current}

    def racing(batch_size: int = 1000) -> Iterator[Record]:
        for i, record in enumerate(real(batch_size)):
            if i == 2:  # the dump has read some records and not others
                doc = orjson.loads(second.body)
                doc["@graph"][0]["ceterms:name"] = {"en-US": "Renamed during the dump"}
                filled.publish(filled.prepare(orjson.dumps(doc)), None, if_match=second.etag)
                doc = orjson.loads(first.body)
                doc["@graph"][0]["ceterms:name"] = {"en-US": "Renamed after it was read"}
                filled.publish(filled.prepare(orjson.dumps(doc)), None, if_match=first.etag)
                filled.delete(third.ctid, None, None)
                filled.publish(filled.prepare(orjson.dumps(graph(name="Born during the dump"))), None)
            yield record

    monkeypatch.setattr(store, "iter_current", racing)
    seq = store.last_seq()
    dump = write_dump(filled, tmp_path)
    monkeypatch.undo()
    assert dump.seq == seq
    with zipfile.ZipFile(tmp_path / dump.files["jsonld"]["name"]) as archive:
        in_zip = {n.removesuffix(".json"): orjson.loads(archive.read(n)) for n in archive.namelist()}
    assert set(in_zip) == set(state_at_start)
    assert in_zip[second.ctid] == orjson.loads(second.body)  # as it was at S
    quads = read_nquads(tmp_path / dump.files["nquads"]["name"])
    names = {q.object.value for q in quads if q.predicate.value.endswith("/name")}
    assert "Renamed during the dump" not in names and "Born during the dump" not in names
    versions = {q.subject.value.rsplit("/", 1)[1]: int(q.object.value) for q in quads
                if q.predicate.value == "http://www.w3.org/2002/07/owl#versionInfo"}
    assert versions[second.ctid] == second.version and versions[third.ctid] == third.version
    # Replaying the changes after S over the dump gives the current state exactly.
    state = {ctid: store.get(ctid) for ctid in in_zip}
    state_etags = {c: state_at_start[c] for c in in_zip}
    for change in store.changes(seq, 1000):
        if change.action in ("delete", "purge"):
            state_etags.pop(change.ctid)
        else:
            state_etags[change.ctid] = change.etag
    assert state_etags == {r.ctid: r.etag for r in store.iter_current()}
    assert all(v is not None for v in state.values())


def test_a_record_purged_after_s_is_left_to_the_change_log(filled: Registry) -> None:
    seq = filled.store.last_seq()
    victim = next(iter(filled.store.iter_current()))
    filled.purge(victim.ctid, None)
    assert victim.ctid not in {r.ctid for r in records_at(filled.store, seq)}
    assert [c.action for c in filled.store.changes(seq, 10)] == ["purge"]


def test_credreg_dump_beside_the_running_service(client: TestClient, filled: Registry, settings: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The service holds its search index and triple store (locked) on the same data directory: a
    dump reads the store only, and the service serves it."""
    monkeypatch.setenv("CREDREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CREDREG_BASE_URI", BASE)
    assert {p.name for p in filled.projector.projections} == {"search", "rdf"}
    result = CliRunner().invoke(main, ["dump", "--keep", "1"])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.output)
    assert out["seq"] == filled.store.last_seq() and out["records"] == 7
    assert out["continue_from"] == f"/changes?after={out['seq']}"
    path = settings.data_dir / "dumps" / out["files"]["nquads"]["name"]
    assert sha256(path) == out["files"]["nquads"]["sha256"]
    latest = client.get("/dumps/latest.nq.gz")
    assert int(latest.headers["credreg-seq"]) == out["seq"]
    assert latest.headers["etag"] == f'"{out["files"]["nquads"]["sha256"]}"'


def test_writers_of_one_directory_take_turns(filled: Registry, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """`credreg dump` and the service's refresher may write one directory at the same time: while
    one writes, another `credreg dump` waits and the refresher skips its turn; each publishes whole
    files that match their manifest."""
    store = filled.store
    real = store.iter_current
    refresher = DumpRefresher(store, BASE, tmp_path, interval_s=0)
    waiting: list[threading.Thread] = []
    second: list[Dump] = []

    def racing(batch_size: int = 1000) -> Iterator[Record]:
        for i, record in enumerate(real(batch_size)):
            if i == 2 and not waiting:  # the first writer is half-way
                assert refresher.refresh() is None
                other = threading.Thread(target=lambda: second.append(write_dump(filled, tmp_path, force=True)))
                other.start()
                waiting.append(other)
                other.join(0.5)
                assert other.is_alive(), "the second writer did not wait for the first"
            yield record

    monkeypatch.setattr(store, "iter_current", racing)
    first = write_dump(filled, tmp_path)
    waiting[0].join(30)
    monkeypatch.undo()
    (again,) = second
    assert again.seq == first.seq and again.records == first.records == 7
    (listed,) = list_dumps(tmp_path)
    assert listed == again
    for f in listed.files.values():
        assert sha256(tmp_path / f["name"]) == f["sha256"]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


def test_the_refresher_moves_latest_to_the_new_sequence(client: TestClient, filled: Registry,
                                                         org_headers: dict[str, str]) -> None:
    """A dump once the newest is older than the interval and the change log has moved past it;
    `latest`, the listing and their checksums follow; old dumps are pruned. The clock is the
    test's: no waiting for an interval."""
    now = [0.0]
    refresher = DumpRefresher(filled.store, BASE, dump_dir(filled.settings), 3600, keep=2,
                              clock=lambda: now[0])
    newest = refresher.refresh()  # no dump yet: one is due at once
    assert newest is not None and newest.seq == filled.store.last_seq()
    now[0] = written_at(newest) + 7200
    assert refresher.refresh() is None  # old, but nothing changed since
    seqs = [newest.seq]
    for _ in range(2):
        for _ in range(2):
            publish(client, org_headers)
        now[0] = written_at(newest) + 3599
        assert refresher.refresh() is None  # changed, but the newest dump is younger than the interval
        now[0] = written_at(newest) + 3600
        newer = refresher.refresh()
        assert newer is not None and newer.seq == filled.store.last_seq() > newest.seq
        newest = newer
        seqs.append(newer.seq)
        latest = client.get("/dumps/latest.nq.gz")
        assert int(latest.headers["credreg-seq"]) == newer.seq
        assert latest.headers["etag"] == f'"{hashlib.sha256(latest.content).hexdigest()}"'
        assert latest.headers["etag"] == f'"{newer.files["nquads"]["sha256"]}"'
        archive = client.get("/dumps/latest.jsonld.zip")
        assert hashlib.sha256(archive.content).hexdigest() == newer.files["jsonld"]["sha256"]
    listing = client.get("/dumps").json()
    assert [d["seq"] for d in listing["dumps"]] == seqs[:0:-1]  # the newest two
    assert listing["last_seq"] == seqs[-1]


def written_at(dump: Dump) -> float:
    return datetime.fromisoformat(dump.created).timestamp()


def publish(client: TestClient, headers: dict[str, str], ctid: str | None = None,
            name: str = "Welding Level 1") -> str:
    """Create a record, or replace one (`ctid`) with the ETag just read."""
    headers = {**headers, "Content-Type": "application/ld+json"}
    if ctid is not None:
        headers["If-Match"] = client.get(f"/graph/{ctid}").headers["etag"]
    ctid = ctid or new_ctid()
    response = client.put(f"/graph/{ctid}", content=orjson.dumps(graph(ctid, name=name)), headers=headers)
    assert response.status_code in (200, 201), response.text
    return ctid


def test_http_listing_and_latest_files(client: TestClient, filled: Registry) -> None:
    assert client.get("/dumps").json()["dumps"] == []
    response = client.get("/dumps/latest.nq.gz")  # no dump yet: one is written on first request
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["etag"] == f'"{digest}"'
    seq = int(response.headers["credreg-seq"])
    assert seq == filled.store.last_seq()
    assert response.headers["repr-digest"].startswith("sha-256=:")
    listing = client.get("/dumps").json()
    (entry,) = listing["dumps"]
    assert entry["seq"] == seq and entry["files"]["nquads"]["sha256"] == digest
    archive = client.get("/dumps/latest.jsonld.zip")
    assert archive.headers["content-type"] == "application/zip"
    assert hashlib.sha256(archive.content).hexdigest() == entry["files"]["jsonld"]["sha256"]
    named = client.get(entry["files"]["jsonld"]["href"])
    assert named.content == archive.content
    changes = client.get(entry["continue_from"]).json()
    assert changes["changes"] == []
    missing = client.get("/dumps/../../etc/passwd")
    assert missing.status_code == 404
    assert client.get("/dumps/credreg-seq1.nq.gz.part").status_code == 404


def test_consumers_continue_from_the_dump(client: TestClient, filled: Registry, org_headers: dict[str, str]) -> None:
    """A consumer loads `latest` and follows /changes?after=its sequence; after more changes and a
    refresh, a new consumer loads the new `latest` and follows on from its sequence: each ends with
    the registry's state, having seen every change once."""
    refresher = DumpRefresher(filled.store, BASE, dump_dir(filled.settings), 0)  # due whenever the log moved

    def consume() -> dict[str, bytes]:
        response = client.get("/dumps/latest.jsonld.zip")
        seq = int(response.headers["credreg-seq"])
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            state = {n.removesuffix(".json"): archive.read(n) for n in archive.namelist()}
        changes = client.get(f"/changes?after={seq}&limit=1000").json()["changes"]
        seqs = [c["seq"] for c in changes]
        assert seqs == sorted(set(seqs)) and all(s > seq for s in seqs)
        for change in changes:
            if change["action"] in ("delete", "purge"):
                del state[change["ctid"]]  # a KeyError is a change the dump already held
            else:
                state[change["ctid"]] = client.get(f"/graph/{change['ctid']}").content
        return state

    def registry_state() -> dict[str, bytes]:
        return {r.ctid: r.body for r in filled.store.iter_current()}

    records = sorted((r for r in filled.store.iter_current() if r.ctid != ORG), key=lambda r: r.ctid)
    first_seq = int(client.get("/dumps/latest.nq.gz").headers["credreg-seq"])
    created = publish(client, org_headers)
    publish(client, org_headers, records[1].ctid, name="Renamed")
    deleted = client.delete(f"/graph/{records[2].ctid}", headers={**org_headers, "If-Match": f'"{records[2].etag}"'})
    assert deleted.status_code == 200, deleted.text
    assert consume() == registry_state()
    dump = refresher.refresh()
    assert dump is not None and dump.seq == filled.store.last_seq() > first_seq
    publish(client, org_headers, created, name="Renamed after the dump")
    publish(client, org_headers)
    assert int(client.get("/dumps/latest.nq.gz").headers["credreg-seq"]) == dump.seq
    assert consume() == registry_state()
    after = client.get(f"/changes?after={dump.seq}").json()["changes"]
    assert [c["action"] for c in after] == ["update", "create"]
