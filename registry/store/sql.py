"""The SQL shared by the SQLite and PostgreSQL stores. Dialects differ only in connections,
placeholders, DDL types and how writers are serialized."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from registry.store import ApiKey, Change, Record, Version

RECORD_COLS = ("record_ctid, version, etag, body, ntriples, type, owners, publisher, created, modified, "
               "deleted, seq, resource")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(row: Any) -> Record:
    return Record(ctid=row[0], version=row[1], etag=row[2], body=bytes(row[3]), ntriples=row[4],
                  type=row[5], owners=tuple(row[6].split()) if row[6] else (), publisher=row[7],
                  created=row[8], modified=row[9], deleted=bool(row[10]), seq=row[11],
                  resource=bytes(row[12]))


def _key(row: Any) -> ApiKey:
    return ApiKey(id=row[0], org=row[1], admin=bool(row[2]), created=row[3], revoked=bool(row[4]),
                  label=row[5] or "")


class SQLBatch:
    """One write transaction on `conn` (see `Batch`)."""

    def __init__(self, store: SQLStore, conn: Any) -> None:
        self.store = store
        self.conn = conn
        self._savepoints = 0

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(self.store.q(sql), params)

    @contextmanager
    def item(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        self._exec(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._exec(f"ROLLBACK TO SAVEPOINT {name}")
            self._exec(f"RELEASE SAVEPOINT {name}")
            raise
        self._exec(f"RELEASE SAVEPOINT {name}")

    def current(self, ctid: str) -> Record | None:
        row = self._exec(f"SELECT {RECORD_COLS} FROM records WHERE record_ctid = ?", (ctid,)).fetchone()
        return _record(row) if row else None

    def write(self, record: Record, action: str) -> int:
        """Store `record` as the current state, a new version and a change row; return its seq."""
        seq = self.store.insert_change(self.conn, (record.ctid, record.version, action,
                                                   record.etag, record.modified))
        self._exec(
            "INSERT INTO versions (record_ctid, version, etag, body, publisher, at, action) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.ctid, record.version, record.etag, b"" if record.deleted else record.body,
             record.publisher, record.modified, action))
        self._exec(
            f"INSERT INTO records ({RECORD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (record_ctid) DO UPDATE SET version = excluded.version, etag = excluded.etag, "
            "body = excluded.body, ntriples = excluded.ntriples, type = excluded.type, "
            "owners = excluded.owners, publisher = excluded.publisher, "
            "modified = excluded.modified, deleted = excluded.deleted, seq = excluded.seq, "
            "resource = excluded.resource",
            (record.ctid, record.version, record.etag, record.body, record.ntriples, record.type,
             " ".join(record.owners), record.publisher, record.created, record.modified,
             int(record.deleted), seq, record.resource))
        return seq

    def purge(self, ctid: str) -> int:
        """Remove every trace of the record's content; the change log keeps one `purge` row."""
        self._exec("DELETE FROM records WHERE record_ctid = ?", (ctid,))
        self._exec("DELETE FROM versions WHERE record_ctid = ?", (ctid,))
        self._exec("DELETE FROM changes WHERE record_ctid = ?", (ctid,))
        return self.store.insert_change(self.conn, (ctid, 0, "purge", "", now()))


class SQLStore:
    """Reads use a connection per thread; writes go through `batch()`, one writer at a time."""

    url: str
    placeholder = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()

    # --- dialect hooks -------------------------------------------------------------------------
    def connect(self) -> Any:
        raise NotImplementedError

    def migrations(self) -> list[tuple[int, list[str]]]:
        raise NotImplementedError

    def lock_writers(self, conn: Any) -> None:
        """Serialize writers across processes so change-log sequence order is commit order."""

    def insert_change(self, conn: Any, values: tuple[Any, ...]) -> int:
        raise NotImplementedError

    # --- plumbing ------------------------------------------------------------------------------
    def q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return list(self._conn().execute(self.q(sql), params).fetchall())

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn().execute(self.q(sql), params).fetchone()

    @contextmanager
    def batch(self) -> Iterator[SQLBatch]:
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE" if self.placeholder == "?" else "BEGIN")
            self.lock_writers(conn)
            try:
                yield SQLBatch(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _autocommit_write(self) -> Iterator[Any]:
        with self.batch() as b:
            yield b.conn

    # --- records -------------------------------------------------------------------------------
    def get(self, ctid: str) -> Record | None:
        row = self._one(f"SELECT {RECORD_COLS} FROM records WHERE record_ctid = ?", (ctid,))
        return _record(row) if row else None

    def etags(self, ctids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(ctids), 500):
            chunk = ctids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            for ctid, etag in self._all(
                    f"SELECT record_ctid, etag FROM records WHERE deleted = 0 AND record_ctid IN ({marks})",
                    tuple(chunk)):
                out[ctid] = etag
        return out

    def versions(self, ctid: str) -> list[Version]:
        rows = self._all("SELECT record_ctid, version, etag, body, publisher, at, action FROM versions "
                         "WHERE record_ctid = ? ORDER BY version", (ctid,))
        return [Version(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6]) for r in rows]

    def version(self, ctid: str, number: int) -> Version | None:
        r = self._one("SELECT record_ctid, version, etag, body, publisher, at, action FROM versions "
                      "WHERE record_ctid = ? AND version = ?", (ctid, number))
        return Version(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6]) if r else None

    def changes(self, after: int, limit: int) -> list[Change]:
        rows = self._all("SELECT seq, record_ctid, version, action, etag, at FROM changes WHERE seq > ? "
                         "ORDER BY seq LIMIT ?", (after, limit))
        return [Change(*r) for r in rows]

    def last_seq(self) -> int:
        row = self._one("SELECT MAX(seq) FROM changes")
        return int(row[0] or 0)

    def count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM records WHERE deleted = 0")[0])

    def iter_current(self, batch_size: int = 1000) -> Iterator[Record]:
        last = ""
        while True:
            rows = self._all(f"SELECT {RECORD_COLS} FROM records WHERE record_ctid > ? AND deleted = 0 "
                             "ORDER BY record_ctid LIMIT ?", (last, batch_size))
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = rows[-1][0]

    # --- keys and grants -----------------------------------------------------------------------
    def create_key(self, key_hash: str, org: str | None, admin: bool, label: str) -> ApiKey:
        created = now()
        with self._autocommit_write() as conn:
            conn.execute(self.q("INSERT INTO api_keys (key_hash, org, admin, label, created, revoked) "
                                "VALUES (?, ?, ?, ?, ?, 0)"), (key_hash, org, int(admin), label,
                                                               created))
        key = self.find_key(key_hash)
        assert key is not None
        return key

    def find_key(self, key_hash: str) -> ApiKey | None:
        row = self._one("SELECT id, org, admin, created, revoked, label FROM api_keys "
                        "WHERE key_hash = ?", (key_hash,))
        return _key(row) if row else None

    def list_keys(self) -> list[ApiKey]:
        return [_key(r) for r in self._all(
            "SELECT id, org, admin, created, revoked, label FROM api_keys ORDER BY id")]

    def revoke_key(self, key_id: int) -> bool:
        with self._autocommit_write() as conn:
            cur = conn.execute(self.q("UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0"),
                               (key_id,))
            return bool(cur.rowcount)

    def grant(self, grantor: str, grantee: str) -> None:
        with self._autocommit_write() as conn:
            conn.execute(self.q("INSERT INTO grants (grantor, grantee, created) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING"), (grantor, grantee, now()))

    def revoke_grant(self, grantor: str, grantee: str) -> bool:
        with self._autocommit_write() as conn:
            cur = conn.execute(self.q("DELETE FROM grants WHERE grantor = ? AND grantee = ?"),
                               (grantor, grantee))
            return bool(cur.rowcount)

    def grantors(self, grantee: str) -> set[str]:
        return {r[0] for r in self._all("SELECT grantor FROM grants WHERE grantee = ?", (grantee,))}

    def list_grants(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._all(  # type: ignore[misc]
            "SELECT grantor, grantee, created FROM grants ORDER BY grantor, grantee")]

    # --- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        try:
            row = self._one("SELECT MAX(version) FROM schema_migrations")
        except Exception:  # no table yet: a new data directory
            return 0
        return int(row[0] or 0)

    def upgrade(self, target: int | None = None) -> list[int]:
        """Apply pending migrations in order (up to `target`), each in its own transaction; return
        those applied."""
        applied: list[int] = []
        current = self.schema_version()
        for number, statements in self.migrations():
            if number <= current or (target is not None and number > target):
                continue
            with self._autocommit_write() as conn:
                for sql in statements:
                    conn.execute(sql)
                conn.execute(self.q("INSERT INTO schema_migrations (version, applied_at) "
                                    "VALUES (?, ?)"), (number, now()))
            applied.append(number)
        return applied

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # closing a connection owned by a finished thread
                    pass
            self._conns.clear()
        self._local = threading.local()
