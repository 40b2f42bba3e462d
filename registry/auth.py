"""API keys and who may write what.

Keys are random 256-bit tokens shown once; only their SHA-256 is stored (a slow hash buys nothing
against a token with that much entropy). A key belongs to a publishing organization (its CTID) or
is an admin key. An organization may write records it owns (ceterms:ownedBy, or its own
organization record) and records of organizations that granted it the right to publish for them.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from registry.errors import Forbidden, Unauthorized
from registry.store import Store

KEY_PREFIX = "crk_"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: int
    org: str | None
    admin: bool


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def authenticate(store: Store, authorization: str | None) -> Principal:
    """The principal for an `Authorization: Bearer KEY` header; 401 if absent, unknown or revoked."""
    if not authorization:
        raise Unauthorized("Send an API key as 'Authorization: Bearer KEY'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an API key as 'Authorization: Bearer KEY'.")
    key = store.find_key(key_hash(token.strip()))
    if key is None or key.revoked:
        raise Unauthorized("The API key is not valid or was revoked.")
    return Principal(key.id, key.org, key.admin)


def authorize(store: Store, principal: Principal, ctid: str, owners: tuple[str, ...]) -> None:
    """403 unless the principal may write a record owned by `owners` (all of them must allow it)."""
    if principal.admin:
        return
    org = principal.org
    assert org is not None
    allowed = {org} | store.grantors(org)
    refused = [o for o in owners if o not in allowed]
    if refused or not owners:
        raise Forbidden(
            f"The key of organization {org} may not write {ctid}: it is owned by "
            f"{', '.join(refused or owners) or 'no organization'}, which has not granted "
            f"{org} the right to publish for it.")
