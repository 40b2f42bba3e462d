"""The `credreg` command line."""
from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from registry import auth
from registry.config import Settings
from registry.errors import RegistryError

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic's message names the setting
        raise click.ClickException(f"invalid configuration: {exc}") from None


def _registry(settings: Settings | None = None, projections: bool = True):  # type: ignore[no-untyped-def]
    """The service. Commands that run beside a live server open no projections (their index and
    triple store are the server's, and locked by it): the server follows the change log and
    applies what they wrote within a second (or at its next start)."""
    from registry.service import Registry

    try:
        return Registry(settings or _settings(), projections=None if projections else [])
    except ValueError as exc:  # a projection's lock held by a running server
        raise click.ClickException(f"{exc} (stop `credreg serve` first)") from None


@click.group()
def main() -> None:
    """credreg: a linked-data registry for credentials (CTDL)."""


@main.command()
@click.option("--host", default=None, help="Bind address (CREDREG_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (CREDREG_PORT, default 8000).")
@click.option("--demo", is_flag=True, help="Load the demo dataset before serving.")
def serve(host: str | None, port: int | None, demo: bool) -> None:
    """Run the HTTP service."""
    import uvicorn

    from registry.app import create_app
    from registry.dumps import start_refresher

    settings = _settings(host=host, port=port)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = _registry(settings)
    if demo:
        counts = _import(registry, [DEMO_DIR], progress=False)
        click.echo(f"demo data: imported {counts['imported']}, unchanged {counts['unchanged']}, "
                   f"rejected {counts['rejected']}", err=True)
    registry.follow()  # apply what other processes (credreg import, a second server) commit
    refresher = start_refresher(registry)  # keeps /dumps/latest.* fresh (CREDREG_DUMP_INTERVAL_S)
    app = create_app(registry)
    # What is loaded by now (vocabularies, schemas, contexts) lives as long as the process: out
    # of the cyclic collector's way, whose full passes over it cost ~10% of a search request.
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port,
                    log_level=settings.log_level, proxy_headers=False)
    finally:
        if refresher is not None:
            refresher.stop()
        registry.close()


def _import(registry, paths: list[Path], progress: bool = True) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    from registry.sources import count_sources, iter_sources

    bar = tqdm(total=count_sources(paths), unit="graph", disable=not progress,
               file=sys.stderr, mininterval=0.5)

    def on_result(source: str, status: str, problems: list | None) -> None:  # type: ignore[type-arg]
        bar.update(1)
        if status == "rejected" and problems:
            lines = "\n".join(f"  {p.severity.value} {p.code} at {p.pointer or '/'}: {p.message}"
                              for p in problems if p.severity.value == "error")
            bar.write(f"rejected {source}:\n{lines}", file=sys.stderr)

    try:
        return registry.import_many(iter_sources(paths), on_result)
    finally:
        bar.close()


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def import_(paths: tuple[Path, ...], no_progress: bool) -> None:
    """Import graph documents: files, directories, .jsonl and .zip (bulk download layout)."""
    registry = _registry(projections=False)
    try:
        counts = _import(registry, list(paths), progress=not no_progress)
    finally:
        registry.close()
    click.echo(f"imported {counts['imported']}, unchanged {counts['unchanged']}, "
               f"rejected {counts['rejected']}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Validate graph documents; print one JSON report per file; exit 1 if any has errors."""
    from ctdl.document import parse
    from ctdl.validate import validate as check
    from registry.preparer import report

    settings = _settings()
    failed = False
    for path in files:
        document = parse(path.read_bytes(), base_uri=settings.base_uri)
        problems = document.problems if document.has_errors else document.problems + check(
            document, max_nodes=settings.max_nodes, max_depth=settings.max_depth)
        result = {"file": str(path), **report(problems, document.ctid)}
        failed = failed or not result["valid"]
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    sys.exit(1 if failed else 0)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys; grant publishing rights."""


@keys.command("create")
@click.option("--org", help="CTID of the publishing organization the key belongs to.")
@click.option("--admin", is_flag=True, help="An admin key (may write and delete any record).")
@click.option("--label", default="", help="A note to recognise the key by.")
def keys_create(org: str | None, admin: bool, label: str) -> None:
    """Print a new key (shown once; only its hash is stored)."""
    from ctdl import ctid

    if admin == bool(org):
        raise click.UsageError("give exactly one of --org CTID or --admin")
    canonical = ctid.normalize(org) if org else None
    if org and canonical is None:
        raise click.UsageError(f"{org!r} is not a CTID")
    registry = _registry(projections=False)
    try:
        key = auth.new_key()
        registry.store.create_key(auth.key_hash(key), canonical, admin, label)
    finally:
        registry.close()
    click.echo(key)


@keys.command("list")
def keys_list() -> None:
    """List keys (never the keys themselves) and grants."""
    registry = _registry(projections=False)
    try:
        for k in registry.store.list_keys():
            click.echo(f"{k.id}\t{'admin' if k.admin else k.org}\t"
                       f"{'revoked' if k.revoked else 'active'}\t{k.created}\t{k.label}")
        for grantor, grantee, created in registry.store.list_grants():
            click.echo(f"grant\t{grantor} -> {grantee}\t{created}")
    finally:
        registry.close()


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id (see `keys list`)."""
    registry = _registry(projections=False)
    try:
        if not registry.store.revoke_key(key_id):
            raise click.ClickException(f"no active key {key_id}")
    finally:
        registry.close()
    click.echo(f"revoked {key_id}")


@keys.command("grant")
@click.argument("grantor")
@click.argument("grantee")
@click.option("--revoke", is_flag=True, help="Take the grant back.")
def keys_grant(grantor: str, grantee: str, revoke: bool) -> None:
    """Let organization GRANTEE publish records owned by GRANTOR (both CTIDs)."""
    from ctdl import ctid

    a, b = ctid.normalize(grantor), ctid.normalize(grantee)
    if a is None or b is None:
        raise click.UsageError("both arguments must be CTIDs")
    registry = _registry(projections=False)
    try:
        if revoke:
            registry.store.revoke_grant(a, b)
        else:
            registry.store.grant(a, b)
    finally:
        registry.close()
    click.echo(f"{'revoked' if revoke else 'granted'}: {b} may {'no longer ' if revoke else ''}"
               f"publish for {a}")


@main.command()
@click.argument("ctid")
def purge(ctid: str) -> None:
    """Remove a record physically, with all its versions (admin operation)."""
    registry = _registry(projections=False)
    try:
        registry.purge(ctid.lower(), None)
    except RegistryError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        registry.close()
    click.echo(f"purged {ctid.lower()}")


@main.command()
def reindex() -> None:
    """Rebuild every projection (search index, triple store) from the store."""
    from tqdm import tqdm

    from registry.service import Registry
    from registry.wiring import build_projections

    settings = _settings()
    try:
        projections = build_projections(settings)
    except ValueError as exc:  # a projection's lock held by a running server
        raise click.ClickException(f"{exc} (stop `credreg serve` first)") from None
    for projection in projections:
        projection.reset()
    registry = Registry(settings, projections=projections, catch_up=False)
    try:
        total = registry.store.last_seq()
        with tqdm(total=total * len(projections), unit="change", file=sys.stderr, mininterval=0.5) as bar:
            registry.projector.catch_up(progress=bar.update)
    finally:
        registry.close()
    click.echo(f"reindexed: {len(registry.projector.projections)} projections")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of the dumps (default DATA_DIR/dumps, which GET /dumps serves).")
@click.option("--keep", type=int, default=3, show_default=True, help="How many dumps to keep.")
@click.option("--force", is_flag=True, help="Rewrite a dump that exists for the current sequence.")
def dump(out_dir: Path | None, keep: int, force: bool) -> None:
    """Write the bulk dumps (N-Quads and JSON-LD zip) at the current change-log sequence."""
    from registry.dumps import write_dump

    # No projections: a dump is read from the system of record, so it runs beside `credreg serve`
    # (whose search index and triple store are locked by it), sharing the dump directory safely.
    registry = _registry(projections=False)
    try:
        result = write_dump(registry, out_dir, keep=keep, force=force)
    finally:
        registry.close()
    click.echo(orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode())


@main.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    click.echo(orjson.dumps(_settings().masked(), option=orjson.OPT_INDENT_2).decode())


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply pending schema migrations in place."""
    from registry.store import open_store

    settings = _settings()
    store = open_store(settings.store_url, durable=settings.durable)
    try:
        applied = store.upgrade()
        click.echo(f"schema version {store.schema_version()}"
                   + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))
    finally:
        store.close()


if __name__ == "__main__":
    main()
