"""Shared by the benchmarks: corpora from the shared generator, a real server on 127.0.0.1,
wrk runs (bounded in time, loopback only), and a results file."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
GENERATOR = ROOT.parent / "shared" / "tools" / "ctdl_corpus.py"
CREDREG = str(Path(sys.executable).parent / "credreg")


def corpus(docs: int, seed: int = 1) -> Path:
    """A generated corpus of `docs` graphs, one per line (cached under bench/out)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"corpus-{docs}-{seed}.jsonl"
    if not path.exists():
        subprocess.run([sys.executable, str(GENERATOR), "--docs", str(docs), "--seed", str(seed),
                        "--out", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(**env: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`credreg serve` in a fresh data directory; yields (base URL, its environment)."""
    data = Path(tempfile.mkdtemp(prefix="credreg-bench-"))
    port = free_port()
    environ = {**os.environ, "CREDREG_DATA_DIR": str(data), "CREDREG_PORT": str(port),
               "CREDREG_LOG_LEVEL": "warning", **env}
    proc = subprocess.Popen([CREDREG, "serve"], env=environ, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield base, environ
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def wait_caught_up(base: str, timeout: float = 900) -> None:
    """Wait until the server's projections have applied everything (after a `credreg import` beside
    it), so a load test measures reads, not reads competing with indexing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = json.loads(urllib.request.urlopen(base + "/health", timeout=5).read())
        if not any(health["projection_lag"].values()):
            return
        time.sleep(0.5)
    raise RuntimeError("projections did not catch up")


def admin_key(environ: dict[str, str]) -> str:
    return subprocess.run([CREDREG, "keys", "create", "--admin"], env=environ, check=True,
                          capture_output=True, text=True).stdout.strip()


def wrk(url: str, script: Path, seconds: int = 8, connections: int = 8, threads: int = 1,
        **script_env: str) -> dict[str, Any]:
    """Run wrk against 127.0.0.1 for a bounded time; parse requests/s, latency and errors."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("load tests target 127.0.0.1 only")
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url],
                         env={**os.environ, **script_env}, capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "requests": total, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50": p50.group(1) if p50 else None, "p99": p99.group(1) if p99 else None}


def record(name: str, result: dict[str, Any]) -> None:
    """Print a result and keep it in bench/out/results.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = {**result, "at": time.strftime("%Y-%m-%d %H:%M")}
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps({name: result}, indent=2))


def local_context_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with the vendored context inlined (naive baselines must not fetch it)."""
    ctx = json.loads((ROOT / "ctdl" / "vocab" / "ctdl-context.json").read_text())["@context"]
    return {**doc, "@context": ctx}
