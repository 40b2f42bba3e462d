"""The embedded store: one SQLite file in WAL mode."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from registry.store.sql import SQLStore

_V1 = [
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    "CREATE TABLE records (record_ctid TEXT PRIMARY KEY, version INTEGER NOT NULL, etag TEXT NOT NULL, "
    "body BLOB NOT NULL, ntriples TEXT NOT NULL, type TEXT NOT NULL, owners TEXT NOT NULL, "
    "publisher TEXT, created TEXT NOT NULL, modified TEXT NOT NULL, deleted INTEGER NOT NULL, "
    "seq INTEGER NOT NULL)",
    "CREATE TABLE versions (record_ctid TEXT NOT NULL, version INTEGER NOT NULL, etag TEXT NOT NULL, "
    "body BLOB NOT NULL, publisher TEXT, at TEXT NOT NULL, action TEXT NOT NULL, "
    "PRIMARY KEY (record_ctid, version))",
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, record_ctid TEXT NOT NULL, "
    "version INTEGER NOT NULL, action TEXT NOT NULL, etag TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE api_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, key_hash TEXT NOT NULL UNIQUE, "
    "org TEXT, admin INTEGER NOT NULL, label TEXT, created TEXT NOT NULL, revoked INTEGER NOT NULL)",
    "CREATE TABLE grants (grantor TEXT NOT NULL, grantee TEXT NOT NULL, created TEXT NOT NULL, "
    "PRIMARY KEY (grantor, grantee))",
]
_V2 = ["CREATE INDEX changes_ctid ON changes (record_ctid)", "CREATE INDEX grants_grantee ON grants (grantee)"]

# Records written before version 3 have an empty view; readers render it on the fly.
_V3 = ["ALTER TABLE records ADD COLUMN resource BLOB NOT NULL DEFAULT x''"]


class SQLiteStore(SQLStore):
    def __init__(self, url: str, *, durable: bool = True) -> None:
        super().__init__(url)
        self.path = Path(url.removeprefix("sqlite:///"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.durable = durable

    def connect(self) -> Any:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the WAL on every commit: a 201 means the graph survives a power cut.
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def migrations(self) -> list[tuple[int, list[str]]]:
        return [(1, _V1), (2, _V2), (3, _V3)]

    def insert_change(self, conn: Any, values: tuple[Any, ...]) -> int:
        cur = conn.execute("INSERT INTO changes (record_ctid, version, action, etag, at) "
                           "VALUES (?, ?, ?, ?, ?)", values)
        return int(cur.lastrowid)
