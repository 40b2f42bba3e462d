"""The production store: PostgreSQL through psycopg 3."""
from __future__ import annotations

from typing import Any

import psycopg

from registry.store.sql import SQLStore

_V1 = [
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    "CREATE TABLE records (record_ctid TEXT PRIMARY KEY, version INTEGER NOT NULL, etag TEXT NOT NULL, "
    "body BYTEA NOT NULL, ntriples TEXT NOT NULL, type TEXT NOT NULL, owners TEXT NOT NULL, "
    "publisher TEXT, created TEXT NOT NULL, modified TEXT NOT NULL, deleted SMALLINT NOT NULL, "
    "seq BIGINT NOT NULL)",
    "CREATE TABLE versions (record_ctid TEXT NOT NULL, version INTEGER NOT NULL, etag TEXT NOT NULL, "
    "body BYTEA NOT NULL, publisher TEXT, at TEXT NOT NULL, action TEXT NOT NULL, "
    "PRIMARY KEY (record_ctid, version))",
    "CREATE TABLE changes (seq BIGSERIAL PRIMARY KEY, record_ctid TEXT NOT NULL, "
    "version INTEGER NOT NULL, action TEXT NOT NULL, etag TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE api_keys (id SERIAL PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, "
    "org TEXT, admin SMALLINT NOT NULL, label TEXT, created TEXT NOT NULL, revoked SMALLINT NOT NULL)",
    "CREATE TABLE grants (grantor TEXT NOT NULL, grantee TEXT NOT NULL, created TEXT NOT NULL, "
    "PRIMARY KEY (grantor, grantee))",
]
_V2 = ["CREATE INDEX changes_ctid ON changes (record_ctid)", "CREATE INDEX grants_grantee ON grants (grantee)"]
# Records written before version 3 have an empty view; readers render it on the fly.
_V3 = ["ALTER TABLE records ADD COLUMN resource BYTEA NOT NULL DEFAULT ''::bytea"]
_WRITER_LOCK = 0x637265  # any constant shared by every credreg process on the database


class PostgresStore(SQLStore):
    placeholder = "%s"

    def connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=True)

    def migrations(self) -> list[tuple[int, list[str]]]:
        return [(1, _V1), (2, _V2), (3, _V3)]

    def lock_writers(self, conn: Any) -> None:
        # A sequence number is taken before commit; without this lock a later seq could become
        # visible before an earlier one and a feed reader would skip the earlier change forever.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))

    def insert_change(self, conn: Any, values: tuple[Any, ...]) -> int:
        row = conn.execute("INSERT INTO changes (record_ctid, version, action, etag, at) "
                           "VALUES (%s, %s, %s, %s, %s) RETURNING seq", values).fetchone()
        return int(row[0])
