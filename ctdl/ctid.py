"""CTIDs: `ce-` followed by a lower-case UUID."""
from __future__ import annotations

import re
from typing import Any

CTID_RE = re.compile(r"^ce-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LOOSE_RE = re.compile(r"^ce-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BARE_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IN_URI_RE = re.compile(r"(ce-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$")


def is_ctid(value: object) -> bool:
    """True for a CTID in canonical (lower-case) form."""
    return isinstance(value, str) and CTID_RE.match(value) is not None


def normalize(value: str) -> str | None:
    """The canonical form of a CTID written in any case, or None if it is not a CTID at all."""
    if _LOOSE_RE.match(value):
        return value.lower()
    return None


def is_bare_uuid(value: str) -> bool:
    return _BARE_UUID_RE.match(value) is not None


def uuid_version(ctid: str) -> int:
    """The UUID version digit of a canonical CTID."""
    return int(ctid[17], 16)


def from_uri(uri: str) -> str | None:
    """The CTID that ends a resource or graph URI, lower-cased, if there is one."""
    m = _IN_URI_RE.search(uri)
    return m.group(1).lower() if m else None


def of_reference(value: object) -> str | None:
    """The CTID a reference names: a node `{"@id": …}` or `{"ceterms:ctid": …}`, a registry URI, or
    a bare CTID."""
    if isinstance(value, dict):
        value = value.get("@id") or value.get("ceterms:ctid")
    if not isinstance(value, str):
        return None
    return normalize(value) or from_uri(value)


def owners(node: dict[str, Any]) -> tuple[str, ...]:
    """The CTIDs of the organizations a node's `ceterms:ownedBy` names, sorted."""
    refs = node.get("ceterms:ownedBy")
    refs = refs if isinstance(refs, list) else [] if refs is None else [refs]
    return tuple(sorted({c for c in map(of_reference, refs) if c}))
