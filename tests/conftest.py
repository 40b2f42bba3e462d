"""Shared fixtures: settings in a temporary data directory, a registry, an in-process HTTP client,
API keys, record factories, and real PostgreSQL and Virtuoso servers started for the session."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from registry import auth
from registry.app import create_app
from registry.config import Settings
from registry.service import Registry
from registry.store import Store, open_store
from tests.servers import free_port
from tests.virtuoso import running_virtuoso

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "data" / "ctdl-samples"
BASE = "http://registry.test"
ORG = "ce-00000000-0000-4000-8000-000000000001"
OTHER_ORG = "ce-00000000-0000-4000-8000-000000000002"


def need_shared(path: Path) -> None:
    """Skip, saying why, when a test's input from ../shared (samples, the corpus generator) is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data (../shared) must sit beside the project")


def new_ctid() -> str:
    return f"ce-{uuid.uuid4()}"


def graph(ctid: str | None = None, *, type_: str = "ceterms:Certification",
          owned_by: str | None = ORG, name: str = "Welding Level 1",
          **props: Any) -> dict[str, Any]:
    """A small valid credential graph envelope owned by `owned_by`."""
    ctid = ctid or new_ctid()
    node: dict[str, Any] = {
        "@id": f"{BASE}/resources/{ctid}", "@type": type_, "ceterms:ctid": ctid,
        "ceterms:name": {"en-US": name},
        "ceterms:description": {"en-US": f"{name}: hands-on training."},
        "ceterms:subjectWebpage": "https://example.org/welding",
    }
    if owned_by:
        node["ceterms:ownedBy"] = [f"{BASE}/resources/{owned_by}"]
    node.update(props)
    return {"@context": "https://credreg.net/ctdl/schema/context/json",
            "@id": f"{BASE}/graph/{ctid}", "@graph": [node]}


def organization(ctid: str = ORG, name: str = "Example College") -> dict[str, Any]:
    return graph(ctid, type_="ceterms:CredentialOrganization", owned_by=None, name=name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_uri=BASE, durable=False)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    yield reg
    reg.close()


@pytest.fixture
def client(registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_key(registry: Registry) -> Callable[..., str]:
    def make(org: str | None = ORG, admin: bool = False) -> str:
        key = auth.new_key()
        registry.store.create_key(auth.key_hash(key), None if admin else org, admin, "test")
        return key
    return make


@pytest.fixture
def org_headers(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(ORG)}"}


@pytest.fixture
def admin_headers(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(admin=True)}"}


# --- PostgreSQL: a real server from Debian's package, started once per session ---------------
def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("CREDREG_TEST_POSTGRES_URL"):
        yield url
        return
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (scripts/test.sh installs it from Debian's "
                    "packages when run as root)")
    # Not under pytest's tmp dirs: they are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="credreg-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (base, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "credreg", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(base / "log"), "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://credreg@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    """A PostgreSQL store in a fresh database of its own."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    store = open_store(postgres_url.rsplit("/", 1)[0] + "/" + name)
    yield store
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store backend in turn: the conformance suite runs against both."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_store")
        return
    s = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", durable=False)
    yield s
    s.close()


# --- Virtuoso 7: one real server for the session, shared by every module that runs against it ----
@pytest.fixture(scope="session")
def virtuoso_server() -> Iterator[str]:
    """CREDREG_RDF_URL of a real Virtuoso started once per session (tests/virtuoso.py); each user
    resets it before use."""
    with running_virtuoso() as (url, _):
        yield url
