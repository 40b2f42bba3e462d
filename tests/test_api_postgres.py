"""The HTTP API end to end on the PostgreSQL store (a real server, see conftest.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from registry import auth
from registry.app import create_app
from registry.config import Settings
from registry.service import Registry
from registry.store import Store
from tests.conftest import BASE, ORG, graph

JSONLD = {"Content-Type": "application/ld+json"}


@pytest.fixture
def pg_client(pg_store: Store, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    registry = Registry(Settings(data_dir=tmp_path, base_uri=BASE, durable=False), store=pg_store)
    key = auth.new_key()
    pg_store.create_key(auth.key_hash(key), ORG, False, "test")
    with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {key}"}
    registry.committer.close()


def test_publish_replace_delete_and_feed_on_postgres(pg_client: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = pg_client
    doc = graph()
    ctid = doc["@graph"][0]["ceterms:ctid"]
    created = client.put(f"/graph/{ctid}", content=orjson.dumps(doc), headers={**JSONLD, **headers})
    assert created.status_code == 201
    etag = created.headers["etag"]
    renamed = graph(ctid, name="Welding Level 2")
    assert client.put(f"/graph/{ctid}", content=orjson.dumps(renamed),
                      headers={**JSONLD, **headers}).status_code == 428
    replaced = client.put(f"/graph/{ctid}", content=orjson.dumps(renamed),
                          headers={**JSONLD, **headers, "If-Match": etag})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    turtle = client.get(f"/resources/{ctid}", headers={"Accept": "text/turtle"})
    assert "Welding Level 2" in turtle.text
    deleted = client.delete(f"/graph/{ctid}", headers={**headers, "If-Match": replaced.headers["etag"]})
    assert deleted.status_code == 200
    assert client.get(f"/graph/{ctid}").status_code == 410
    feed = client.get("/changes?after=0&limit=10").json()["changes"]
    assert [(c["action"], c["version"]) for c in feed] == [("create", 1), ("update", 2), ("delete", 3)]
