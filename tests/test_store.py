"""Store conformance: the same cases against SQLite and PostgreSQL (a real server)."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from registry.auth import Principal
from registry.config import Settings
from registry.errors import PreconditionFailed
from registry.service import Registry
from registry.store import Record, Store
from tests.conftest import ORG, graph, new_ctid


def _record(ctid: str, version: int = 1, etag: str = "e1", deleted: bool = False) -> Record:
    return Record(ctid=ctid, version=version, etag=etag, body=b'{"x": 1}', ntriples="<a> <b> <c> .\n",
                  type="ceterms:Certification", owners=(ORG,), publisher=ORG,
                  created="2026-01-01T00:00:00Z", modified=f"2026-01-0{version}T00:00:00Z",
                  deleted=deleted)


@pytest.fixture
def ready(store: Store) -> Store:
    store.upgrade()
    return store


def test_upgrade_is_in_place_and_idempotent(store: Store) -> None:
    assert store.schema_version() == 0
    assert store.upgrade() == [1, 2, 3]
    assert store.schema_version() == 3
    assert store.upgrade() == []


def test_write_stores_record_version_and_change_together(ready: Store) -> None:
    ctid = new_ctid()
    with ready.batch() as b:
        seq = b.write(_record(ctid), "create")
    got = ready.get(ctid)
    assert got is not None and got.version == 1 and got.seq == seq and got.owners == (ORG,)
    assert [v.version for v in ready.versions(ctid)] == [1]
    assert [(c.ctid, c.action) for c in ready.changes(0, 10)] == [(ctid, "create")]


def test_failed_batch_writes_nothing(ready: Store) -> None:
    ctid = new_ctid()
    with pytest.raises(RuntimeError), ready.batch() as b:
        b.write(_record(ctid), "create")
        raise RuntimeError("crash before commit")
    assert ready.get(ctid) is None and ready.changes(0, 10) == [] and ready.versions(ctid) == []


def test_savepoint_rolls_back_one_item_only(ready: Store) -> None:
    kept, lost = new_ctid(), new_ctid()
    with ready.batch() as b:
        with b.item():
            b.write(_record(kept), "create")
        with pytest.raises(ValueError), b.item():
            b.write(_record(lost), "create")
            raise ValueError("bad item")
    assert ready.get(kept) is not None and ready.get(lost) is None
    assert [c.ctid for c in ready.changes(0, 10)] == [kept]


def test_change_sequence_is_monotonic_and_paged(ready: Store) -> None:
    ctids = [new_ctid() for _ in range(5)]
    for c in ctids:
        with ready.batch() as b:
            b.write(_record(c), "create")
    first = ready.changes(0, 3)
    rest = ready.changes(first[-1].seq, 3)
    seqs = [c.seq for c in first + rest]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [c.ctid for c in first + rest] == ctids
    assert ready.last_seq() == seqs[-1]


def test_versions_are_immutable_history(ready: Store) -> None:
    ctid = new_ctid()
    with ready.batch() as b:
        b.write(_record(ctid), "create")
    with ready.batch() as b:
        b.write(replace(_record(ctid, 2, "e2"), body=b'{"x": 2}'), "update")
    with ready.batch() as b:
        b.write(_record(ctid, 3, "e2", deleted=True), "delete")
    versions = ready.versions(ctid)
    assert [(v.version, v.action) for v in versions] == [(1, "create"), (2, "update"),
                                                         (3, "delete")]
    one = ready.version(ctid, 1)
    assert one is not None and one.body == b'{"x": 1}'
    current = ready.get(ctid)
    assert current is not None and current.deleted
    assert ready.count() == 0


def test_purge_removes_content_and_leaves_one_change(ready: Store) -> None:
    ctid = new_ctid()
    with ready.batch() as b:
        b.write(_record(ctid), "create")
    with ready.batch() as b:
        b.purge(ctid)
    assert ready.get(ctid) is None and ready.versions(ctid) == []
    assert [c.action for c in ready.changes(0, 10)] == ["purge"]


def test_keys_are_found_by_hash_and_revoked(ready: Store) -> None:
    key = ready.create_key("h1", ORG, False, "label")
    found = ready.find_key("h1")
    assert found == key and found.org == ORG and not found.admin
    assert ready.find_key("nope") is None
    assert ready.revoke_key(key.id) and not ready.revoke_key(key.id)
    revoked = ready.find_key("h1")
    assert revoked is not None and revoked.revoked


def test_grants(ready: Store) -> None:
    a, b = new_ctid(), new_ctid()
    ready.grant(a, b)
    ready.grant(a, b)  # idempotent
    assert ready.grantors(b) == {a} and ready.grantors(a) == set()
    assert ready.revoke_grant(a, b) and ready.grantors(b) == set()


def test_etags_for_many(ready: Store) -> None:
    ctids = [new_ctid() for _ in range(3)]
    with ready.batch() as b:
        for i, c in enumerate(ctids):
            b.write(_record(c, etag=f"e{i}"), "create")
    assert ready.etags(ctids + [new_ctid()]) == {c: f"e{i}" for i, c in enumerate(ctids)}


def test_concurrent_writers_never_lose_an_update(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two writers read the same ETag and both try to replace: exactly one wins, one gets 412."""
    registry = Registry(Settings(data_dir=tmp_path, base_uri="http://registry.test",
                                 durable=False), store=store)
    try:
        ctid = new_ctid()
        principal = Principal(1, ORG, False)
        first = registry.publish(registry.prepare(_json(graph(ctid))), principal)
        etag = first.record.etag
        results: list[str] = []

        def replace_with(name: str) -> None:
            prepared = registry.prepare(_json(graph(ctid, name=name)))
            try:
                registry.publish(prepared, principal, if_match=f'"{etag}"')
                results.append("ok")
            except PreconditionFailed:
                results.append("412")

        threads = [threading.Thread(target=replace_with, args=(f"Name {i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["412", "ok"]
        assert registry.get(ctid).version == 2
    finally:
        registry.committer.close()


def _json(doc: dict) -> bytes:  # type: ignore[type-arg]
    import orjson

    return orjson.dumps(doc)


def test_an_existing_database_upgrades_in_place(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A data directory from schema 2 (before the stored resource view) upgrades and still serves."""
    from starlette.testclient import TestClient

    from registry.app import create_app

    assert store.upgrade(target=2) == [1, 2]
    registry = Registry(Settings(data_dir=tmp_path, base_uri="http://registry.test", durable=False,
                                 auto_migrate=False), store=store)
    try:
        prepared = registry.prepare(_json(graph()))
        conn = store._conn()  # type: ignore[attr-defined]
        conn.execute(store.q(  # type: ignore[attr-defined]
            "INSERT INTO records (record_ctid, version, etag, body, ntriples, type, owners, publisher, "
            "created, modified, deleted, seq) VALUES (?, 1, ?, ?, ?, ?, '', NULL, ?, ?, 0, 1)"),
            (prepared.ctid, prepared.etag, prepared.body, prepared.ntriples, prepared.type,
             "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
        assert store.upgrade() == [3]
        record = store.get(prepared.ctid)
        assert record is not None and record.resource == b""
        client = TestClient(create_app(registry), base_url="http://registry.test")
        served = client.get(f"/resources/{prepared.ctid}")
        assert served.status_code == 200 and served.json()["ceterms:ctid"] == prepared.ctid
    finally:
        registry.committer.close()
