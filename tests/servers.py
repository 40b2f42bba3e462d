"""The real servers the tests start: a free port on 127.0.0.1, and waiting until one answers."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answering(url: str, proc: subprocess.Popen[bytes], log: Path, name: str, seconds: float) -> None:
    """Until GET `url` succeeds; fails the test with the server's log if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {seconds:g} s: {log.read_text()}")
            time.sleep(0.05)
