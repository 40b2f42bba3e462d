"""A real Virtuoso 7 (`virtuoso-t`, Debian's virtuoso-opensource-7-bin) on free ports of 127.0.0.1,
for the tests that run against it: the conformance suite (test_rdfstore.py) and the research
examples (test_sparql_examples.py). The session fixture `virtuoso_server` is in conftest.py, so
that both modules share one server."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.servers import free_port, wait_until_answering

# The graphs a new Virtuoso 7.2.5 database holds: its mappings, the LDP vocabulary, its service
# description. The fixture makes them private, as README says for a deployment.
VIRTUOSO_OWN = {"http://www.openlinksw.com/schemas/virtrdf#", "http://www.w3.org/ns/ldp#",
                "http://localuriqaserver/sparql"}
VIRTUOSO_PASSWORD = "not-a-secret"  # of the user "credreg" on the throw-away server
VIRTUOSO_INI = """\
[Database]
DatabaseFile = {d}/virtuoso.db
ErrorLogFile = {d}/virtuoso.log
LockFile = {d}/virtuoso.lck
TransactionFile = {d}/virtuoso.trx
xa_persistent_file = {d}/virtuoso.pxa
Striping = 0
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {d}/virtuoso-temp.db
TransactionFile = {d}/virtuoso-temp.trx

[Parameters]
ServerPort = 127.0.0.1:{sql_port}
NumberOfBuffers = 4000
MaxDirtyBuffers = 3000
ServerThreads = 8
DirsAllowed = {d}
ThreadsPerQuery = 1

[HTTPServer]
ServerPort = 127.0.0.1:{http_port}
ServerRoot = {d}
ServerThreads = 8
MaxClientConnections = 8

[SPARQL]
ResultSetMaxRows = {max_rows}
MaxQueryExecutionTime = 10
"""


def isql(port: int, sql: str) -> None:
    """Run SQL as dba (the throw-away server keeps its default password)."""
    done = subprocess.run(["isql-vt", f"127.0.0.1:{port}", "dba", "dba", f"exec={sql}"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or "Error" in done.stdout + done.stderr:
        pytest.fail(f"isql-vt {sql!r} failed: {done.stdout}{done.stderr}")


@contextmanager
def running_virtuoso(max_rows: int = 1_000_000) -> Iterator[tuple[str, int]]:
    """A real Virtuoso 7 on free ports of 127.0.0.1 with its own database in a temporary
    directory, stopped (killed if it does not stop) on leaving; yields its CREDREG_RDF_URL and
    SQL port. Skips, saying why, when Virtuoso is not installed."""
    binary, isql_binary = shutil.which("virtuoso-t"), shutil.which("isql-vt")
    if binary is None or isql_binary is None:
        pytest.skip("Virtuoso is not installed (Debian: apt-get install virtuoso-opensource-7-bin, "
                    "which scripts/test.sh does as root)")
    data = Path(tempfile.mkdtemp(prefix="credreg-virtuoso-"))
    sql_port, http_port = free_port(), free_port()
    (data / "virtuoso.ini").write_text(VIRTUOSO_INI.format(d=data, sql_port=sql_port, http_port=http_port,
                                                           max_rows=max_rows))
    log = open(data / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "+foreground", "+configfile", str(data / "virtuoso.ini")],
                            stdout=log, stderr=log, cwd=data)
    url = f"http://127.0.0.1:{http_port}"
    try:
        # A first start creates the database: a few seconds.
        wait_until_answering(f"{url}/sparql?query=ASK%7B%7D", proc, data / "server.log", "virtuoso-t", 60)
        # Virtuoso's own graphs become private, as README says for a deployment; and, only on this
        # throw-away server, the anonymous SPARQL user may write (see remote.py).
        request = urllib.request.Request(f"{url}/sparql", headers={"Accept": "text/csv"}, data=urlencode(
            {"query": "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }"}).encode())
        own = {g.strip('"') for g in urllib.request.urlopen(request, timeout=30).read().decode().split()[1:]}
        assert own == VIRTUOSO_OWN
        private = "'http://www.openlinksw.com/schemas/virtrdf#PrivateGraphs'"
        isql(sql_port, " ".join([f"DB.DBA.RDF_GRAPH_GROUP_CREATE({private}, 1);",
                                 *(f"DB.DBA.RDF_GRAPH_GROUP_INS({private}, '{g}');" for g in sorted(own)),
                                 "DB.DBA.RDF_DEFAULT_USER_PERMS_SET('nobody', 0, 1);",
                                 f"DB.DBA.USER_CREATE('credreg', '{VIRTUOSO_PASSWORD}');",
                                 'GRANT SPARQL_UPDATE TO "credreg";',
                                 "DB.DBA.RDF_DEFAULT_USER_PERMS_SET('credreg', 7);",
                                 'GRANT SPARQL_UPDATE TO "SPARQL";']))
        yield f"{url}/?dialect=virtuoso", sql_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
