"""Bulk import: files, directories, JSON Lines, ZIP archives; idempotent; rejects reported."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import orjson
from click.testing import CliRunner

from registry.cli import main
from registry.service import Registry
from tests.conftest import SAMPLES, graph, need_shared


def _env(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"CREDREG_DATA_DIR": str(settings.data_dir), "CREDREG_BASE_URI": settings.base_uri,
            "CREDREG_DURABLE": "false"}


def _layout(tmp_path: Path) -> tuple[list[Path], int]:
    docs = [graph() for _ in range(6)]
    folder = tmp_path / "bulk"
    folder.mkdir()
    (folder / "a.json").write_bytes(orjson.dumps(docs[0]))
    (folder / "b.jsonl").write_bytes(b"\n".join(orjson.dumps(d) for d in docs[1:3]) + b"\n")
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as z:
        for d in docs[3:]:
            z.writestr(f"graphs/{d['@graph'][0]['ceterms:ctid']}.json", orjson.dumps(d))
    bad = dict(graph())
    bad["@graph"][0]["@type"] = "ceterms:Nope"
    (folder / "bad.json").write_bytes(orjson.dumps(bad))
    return [folder, tmp_path / "download.zip"], 6


def test_import_reads_every_layout_and_is_idempotent(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    paths, good = _layout(tmp_path)
    runner = CliRunner()
    args = ["import", "--no-progress", *map(str, paths)]
    first = runner.invoke(main, args, env=_env(settings))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == f"imported {good}, unchanged 0, rejected 1"
    assert "unknown-type" in first.stderr
    second = runner.invoke(main, args, env=_env(settings))
    assert second.stdout.strip().splitlines()[-1] == f"imported 0, unchanged {good}, rejected 1"
    registry = Registry(settings)
    try:
        assert registry.store.count() == good
        assert registry.store.last_seq() == good  # nothing re-versioned
    finally:
        registry.close()


def test_import_of_real_samples(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    folder = SAMPLES / "registry-assistant"
    need_shared(folder)
    result = CliRunner().invoke(main, ["import", "--no-progress", str(folder)], env=_env(settings))
    files = len(list(folder.glob("*.json")))
    assert result.stdout.strip().splitlines()[-1] == f"imported {files}, unchanged 0, rejected 0"


def test_interrupted_import_leaves_no_half_written_record(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    registry = Registry(settings)
    docs = [graph() for _ in range(300)]

    def items():  # type: ignore[no-untyped-def]
        for i, d in enumerate(docs):
            if i == 250:
                raise KeyboardInterrupt
            yield f"item{i}", orjson.dumps(d)

    try:
        try:
            registry.import_many(items(), lambda *a: None, batch_size=100, workers=1)
        except KeyboardInterrupt:
            pass
        # two batches of 100 committed; the half-gathered third one left nothing behind
        stored = {r.ctid for r in registry.store.iter_current()}
        assert stored == {d["@graph"][0]["ceterms:ctid"] for d in docs[:200]}
        for ctid in stored:
            assert len(registry.store.versions(ctid)) == 1
        assert registry.store.last_seq() == 200
    finally:
        registry.close()


def test_worker_processes_prepare_in_order(settings) -> None:  # type: ignore[no-untyped-def]
    registry = Registry(settings)
    docs = [graph() for _ in range(700)]
    docs[450]["@graph"][0]["@type"] = "ceterms:Nope"
    seen: list[tuple[str, str]] = []
    try:
        counts = registry.import_many(((f"item{i}", orjson.dumps(d)) for i, d in enumerate(docs)),
                                      lambda source, status, problems: seen.append((source, status)),
                                      workers=2)
        assert counts == {"imported": 699, "unchanged": 0, "rejected": 1}
        assert ("item450", "rejected") in seen and len(seen) == 700
        assert registry.store.count() == 699
    finally:
        registry.close()


def test_validate_command_reports_like_the_api(tmp_path: Path, settings, client) -> None:  # type: ignore[no-untyped-def]
    doc = graph()
    doc["@graph"][0]["ceterms:bogus"] = "x"
    path = tmp_path / "doc.json"
    path.write_bytes(orjson.dumps(doc))
    result = CliRunner().invoke(main, ["validate", str(path)], env=_env(settings))
    assert result.exit_code == 1
    cli_report = json.loads(result.stdout)
    api_report = client.post("/validate", content=path.read_bytes(),
                             headers={"Content-Type": "application/ld+json"}).json()
    assert cli_report.pop("file") == str(path)
    assert cli_report == api_report


def test_keys_create_prints_only_the_key(settings) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    org = "ce-00000000-0000-4000-8000-0000000000aa"
    out = runner.invoke(main, ["keys", "create", "--org", org], env=_env(settings))
    assert out.exit_code == 0 and out.stdout.count("\n") == 1
    key = out.stdout.strip()
    assert key.startswith("crk_") and len(key) > 40
    listing = runner.invoke(main, ["keys", "list"], env=_env(settings)).output
    assert org in listing and key not in listing
    admin = runner.invoke(main, ["keys", "create", "--admin"], env=_env(settings))
    assert admin.exit_code == 0 and admin.stdout.strip().startswith("crk_")
    assert runner.invoke(main, ["keys", "create"], env=_env(settings)).exit_code != 0


def test_config_masks_secrets() -> None:
    result = CliRunner().invoke(main, ["config"], env={
        "CREDREG_STORE_URL": "postgresql://reg:hunter2@db/credreg"})
    assert result.exit_code == 0
    assert "hunter2" not in result.output and "reg:***@db/credreg" in result.output


def test_config_refuses_unsafe_production_defaults() -> None:
    result = CliRunner().invoke(main, ["config"], env={"CREDREG_ENV": "production"})
    assert result.exit_code != 0 and "CREDREG_BASE_URI" in result.output


def test_db_upgrade(settings) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    first = runner.invoke(main, ["db", "upgrade"], env=_env(settings))
    assert "schema version 3 (applied 1, 2, 3)" in first.output
    assert "up to date" in runner.invoke(main, ["db", "upgrade"], env=_env(settings)).output


def test_commands_run_beside_a_live_server(settings) -> None:  # type: ignore[no-untyped-def]
    """keys and import do not need the server's index or triple store (which it holds locked);
    the server applies what they commit by following the change log."""
    from starlette.testclient import TestClient

    from registry.app import create_app

    live = Registry(settings)
    live.follow(interval=0.05)
    try:
        runner = CliRunner()
        key = runner.invoke(main, ["keys", "create", "--admin"], env=_env(settings))
        assert key.exit_code == 0, key.output
        doc = graph()
        path = settings.data_dir.parent / "one.json"
        path.write_bytes(orjson.dumps(doc))
        imported = runner.invoke(main, ["import", "--no-progress", str(path)], env=_env(settings))
        assert imported.stdout.strip().endswith("imported 1, unchanged 0, rejected 0"), imported.output
        import time

        deadline = time.monotonic() + 10
        while any(live.projector.lag().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(live.projector.lag().values())
        client = TestClient(create_app(live), base_url=settings.base_uri)
        assert client.get(f"/graph/{doc['@graph'][0]['ceterms:ctid']}").status_code == 200
    finally:
        live.close()


def test_reindex_after_an_import_shows_its_progress_and_catches_every_projection_up(
        tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    paths, good = _layout(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["import", "--no-progress", *map(str, paths)], env=_env(settings)).exit_code == 0
    result = runner.invoke(main, ["reindex"], env=_env(settings))
    assert result.exit_code == 0, result.output
    projections = 2  # the search index and the triple store
    assert f"{good * projections}/{good * projections}" in result.stderr  # the bar reached its total
    registry = Registry(settings, catch_up=False)
    try:
        assert registry.projector.lag() == {"search": 0, "rdf": 0}
    finally:
        registry.close()


def test_projections_can_be_chosen_and_unknown_ones_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from registry.app import create_app
    from registry.config import Settings

    bad = CliRunner().invoke(main, ["config"], env={"CREDREG_PROJECTIONS": "search,graphql"})
    assert bad.exit_code != 0 and "graphql" in bad.output
    registry = Registry(Settings(**{**settings.model_dump(), "projections": "search"}))
    try:
        assert [p.name for p in registry.projector.projections] == ["search"]
        with TestClient(create_app(registry)) as client:
            assert client.get("/search?q=x").status_code == 200
            assert client.get("/sparql?query=ASK{}").status_code == 404
    finally:
        registry.close()
