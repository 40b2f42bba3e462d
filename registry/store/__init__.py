"""The system of record: the store protocol, its records, and `open_store(url)`.

Every write happens inside a `Batch` (one database transaction). Within it, each record write
stores the current graph, a new immutable version and a change-log row with the next sequence
number, so readers of the change log never see a write without its record or the reverse.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Record:
    """The current state of one graph (a deleted one keeps its last version as a tombstone)."""

    ctid: str
    version: int
    etag: str  # canonical content hash of the RDF graph
    body: bytes  # the normalized envelope, JSON
    ntriples: str  # the graph's triples, N-Triples (empty for a tombstone)
    type: str  # the main node's first @type
    owners: tuple[str, ...]  # CTIDs of the organizations that own it (ceterms:ownedBy, or itself)
    publisher: str | None  # organization CTID of the key that published this version (None: admin)
    created: str  # ISO 8601 UTC
    modified: str
    deleted: bool = False
    seq: int = 0  # change-log sequence of this version
    resource: bytes = b""  # the /resources view as JSON-LD, rendered once at write time


@dataclass(frozen=True, slots=True)
class Version:
    ctid: str
    version: int
    etag: str
    body: bytes  # empty for a deletion
    publisher: str | None
    at: str
    action: str  # create | update | delete


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    ctid: str
    version: int
    action: str  # create | update | delete | purge
    etag: str
    at: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    org: str | None  # None for an admin key
    admin: bool
    created: str
    revoked: bool
    label: str


class Batch(Protocol):
    """One transaction. `item()` wraps one record's writes in a savepoint so one failure in a
    group commit rolls back that record only."""

    def item(self) -> AbstractContextManager[None]: ...
    def current(self, ctid: str) -> Record | None: ...
    def write(self, record: Record, action: str) -> int: ...
    def purge(self, ctid: str) -> int: ...


class Store(Protocol):
    url: str

    def batch(self) -> AbstractContextManager[Batch]: ...
    def get(self, ctid: str) -> Record | None: ...
    def etags(self, ctids: list[str]) -> dict[str, str]: ...
    def versions(self, ctid: str) -> list[Version]: ...
    def version(self, ctid: str, number: int) -> Version | None: ...
    def changes(self, after: int, limit: int) -> list[Change]: ...
    def last_seq(self) -> int: ...
    def count(self) -> int: ...
    def iter_current(self, batch_size: int = 1000) -> Iterator[Record]: ...
    def create_key(self, key_hash: str, org: str | None, admin: bool, label: str) -> ApiKey: ...
    def find_key(self, key_hash: str) -> ApiKey | None: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: int) -> bool: ...
    def grant(self, grantor: str, grantee: str) -> None: ...
    def revoke_grant(self, grantor: str, grantee: str) -> bool: ...
    def grantors(self, grantee: str) -> set[str]: ...
    def list_grants(self) -> list[tuple[str, str, str]]: ...
    def schema_version(self) -> int: ...
    def upgrade(self, target: int | None = None) -> list[int]: ...
    def close(self) -> None: ...


def open_store(url: str, *, durable: bool = True) -> Store:
    """The store for a `sqlite:///path` or `postgresql://…` URL."""
    if url.startswith("sqlite:///"):
        from registry.store.sqlite import SQLiteStore

        return SQLiteStore(url, durable=durable)
    if url.startswith(("postgresql://", "postgres://")):
        from registry.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store URL: {url}")
