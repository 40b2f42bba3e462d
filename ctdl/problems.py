"""Validation problems: what is wrong, where (a JSON pointer), how bad, in words a publisher reads."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the document is rejected
    WARNING = "warning"  # accepted and reported
    INFO = "info"  # accepted; something the registry did for the publisher (e.g. normalized)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # stable, kebab-case, documented in docs/problems.md
    severity: Severity
    pointer: str  # RFC 6901 pointer into the document as received, e.g. "/@graph/0/ceterms:ownedBy/0"
    message: str  # one sentence a publisher understands
    node: str | None = None  # @id (or blank-node label) of the node concerned, when it has one
    property: str | None = None  # compact property name concerned, when there is one

    def as_dict(self) -> dict[str, str]:
        d = {"code": self.code, "severity": self.severity.value, "pointer": self.pointer,
             "message": self.message}
        if self.node is not None:
            d["node"] = self.node
        if self.property is not None:
            d["property"] = self.property
        return d


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
