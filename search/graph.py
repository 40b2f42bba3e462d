"""Reading a stored (normalized) CTDL graph envelope: values as lists, language maps, blank-node
and embedded-node resolution, references to other records by CTID, concept names."""
from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import orjson

from ctdl import ctid as ctids

Node = dict[str, Any]
PREFERRED_LANGUAGES = ("en-us", "en", "en-gb")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


class Graph:
    def __init__(self, envelope: dict[str, Any]) -> None:
        nodes = envelope.get("@graph") or []
        self.nodes: list[Node] = [n for n in nodes if isinstance(n, dict)]
        self.main: Node = self.nodes[0] if self.nodes else {}
        self._by_id = {n["@id"]: n for n in self.nodes if isinstance(n.get("@id"), str)}

    @classmethod
    def from_bytes(cls, body: bytes) -> Graph:
        return cls(orjson.loads(body))

    @property
    def ctid(self) -> str | None:
        value = self.main.get("ceterms:ctid")
        return ctids.normalize(value) if isinstance(value, str) else None

    @property
    def type(self) -> str:
        types = as_list(self.main.get("@type"))
        return types[0] if types and isinstance(types[0], str) else ""

    def node(self, value: Any) -> Node | None:
        """The node a value stands for: an embedded node, or a node of this graph named by a
        (blank-node) identifier; None for references to other records and literals."""
        if isinstance(value, dict):
            ref = value.get("@id")
            if isinstance(ref, str) and len(value) == 1:
                return self._by_id.get(ref)
            return value if "@value" not in value else None
        if isinstance(value, str):
            return self._by_id.get(value)
        return None

    def nodes_of(self, node: Node, prop: str) -> Iterator[Node]:
        for value in as_list(node.get(prop)):
            found = self.node(value)
            if found is not None:
                yield found


def ref_ctid(value: Any) -> str | None:
    """The CTID a reference names (an IRI ending in a CTID, {"@id": IRI}, or a node carrying
    ceterms:ctid), or None."""
    if isinstance(value, dict):
        inner = value.get("ceterms:ctid")
        if isinstance(inner, str) and (found := ctids.normalize(inner)):
            return found
        value = value.get("@id")
    if not isinstance(value, str) or value.startswith("_:"):
        return None
    return _ref_ctid(value)


@lru_cache(maxsize=65536)
def _ref_ctid(value: str) -> str | None:
    # The same references (owners, lists, colleges) recur across thousands of records.
    return ctids.from_uri(value) or ctids.normalize(value)


def texts(value: Any) -> list[tuple[str, str]]:
    """(language, text) pairs of a literal value: a language map, a plain string, a value object,
    or a list of those. The language is lower-case, "" when unknown."""
    if isinstance(value, dict) and len(value) == 1:  # the usual shape: {"en-US": "text"}
        (lang, text), = value.items()
        if isinstance(text, str) and not lang.startswith("@"):
            text = text.strip()
            return [(lang.lower(), text)] if text else []
    out: list[tuple[str, str]] = []
    for v in as_list(value):
        if isinstance(v, str):
            out.append(("", v))
        elif isinstance(v, dict):
            if "@value" in v:
                if isinstance(v["@value"], str):
                    out.append((str(v.get("@language", "")).lower(), v["@value"]))
                continue
            for lang, text in v.items():
                if lang.startswith("@"):
                    continue
                for t in as_list(text):
                    if isinstance(t, str):
                        out.append((lang.lower(), t))
    return [(lang, t.strip()) for lang, t in out if t and t.strip()]


def first_text(value: Any) -> str | None:
    """The text to show: the English value if there is one, else the first."""
    pairs = texts(value)
    if not pairs:
        return None
    for preferred in PREFERRED_LANGUAGES:
        for lang, text in pairs:
            if lang == preferred:
                return text
    for lang, text in pairs:
        if lang.startswith("en"):
            return text
    return pairs[0][1]


def by_language(value: Any) -> dict[str, str]:
    """The first text of each language ("" for untagged)."""
    out: dict[str, str] = {}
    for lang, text in texts(value):
        out.setdefault(lang, text)
    return out


def number(value: Any) -> float | None:
    """A number from a JSON number, a numeric string or a value object; None otherwise."""
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("@value")
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.replace(",", "").strip())
            except ValueError:
                continue
    return None


def concept_names(node: Node, prop: str) -> list[str]:
    """Concept names of a concept-valued property: "deliveryType:InPerson",
    "https://purl.org/ctdl/vocabs/deliveryType/InPerson" and alignment objects whose targetNode is
    either all give "InPerson"."""
    out = []
    for v in as_list(node.get(prop)):
        if isinstance(v, dict):
            v = v.get("ceterms:targetNode") or v.get("@id")
        if isinstance(v, str) and v:
            name = v.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit("#", 1)[-1]
            if name and name not in out:
                out.append(name)
    return out


def string(value: Any) -> str | None:
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("@value")
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None
