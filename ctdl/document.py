"""A CTDL graph document as received: parsed, wrapped into an envelope, normalized.

Credential Engine publishes `{"@context", "@id": graph URI, "@graph": [main node, ...]}`; publishers
also send single-node documents. Both become the same envelope here. Real-world variants are
normalized rather than rejected (http:// context and namespace forms, `schema:ValueProfile`,
upper-case CTIDs); each normalization is reported as an info problem so the publisher learns of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ctdl import ctid as ctids
from ctdl.context import check_inline, copies_ctdl
from ctdl.problems import Problem, Severity, pointer

CTDL_CONTEXT = "https://credreg.net/ctdl/schema/context/json"
CTDLASN_CONTEXT = "https://credreg.net/ctdlasn/schema/context/json"
_CONTEXT_FORMS = {
    url.replace("https://", scheme).rstrip("/") + slash: url
    for url in (CTDL_CONTEXT, CTDLASN_CONTEXT)
    for scheme in ("https://", "http://")
    for slash in ("", "/")
}
# Full namespace IRIs written where a compact term belongs, in both the http and https forms.
_NAMESPACES = {
    "https://purl.org/ctdl/terms/": "ceterms:",
    "http://purl.org/ctdl/terms/": "ceterms:",
    "https://purl.org/ctdlasn/terms/": "ceasn:",
    "http://purl.org/ctdlasn/terms/": "ceasn:",
    "https://purl.org/ctdl/qdata/": "qdata:",
    "http://purl.org/ctdl/qdata/": "qdata:",
    "https://schema.org/": "schema:",
    "http://schema.org/": "schema:",
}
# Type names seen in published data that the vocabulary spells differently.
_TYPE_ALIASES = {"schema:ValueProfile": "ceterms:ValueProfile"}
CTID_PROP = "ceterms:ctid"


@dataclass
class Document:
    envelope: dict[str, Any]
    ctid: str | None
    main_index: int | None
    node_pointers: list[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def main(self) -> dict[str, Any] | None:
        return None if self.main_index is None else self.envelope["@graph"][self.main_index]

    @property
    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = self.envelope["@graph"]
        return nodes

    @property
    def has_errors(self) -> bool:
        return any(p.severity is Severity.ERROR for p in self.problems)


def _error(code: str, ptr: str, message: str, **kw: Any) -> Problem:
    return Problem(code, Severity.ERROR, ptr, message, **kw)


def _info(code: str, ptr: str, message: str, **kw: Any) -> Problem:
    return Problem(code, Severity.INFO, ptr, message, **kw)


def parse(raw: bytes | str | dict[str, Any], *, base_uri: str) -> Document:
    """Parse and normalize a graph document. Never raises on bad input: problems say what is wrong.

    `base_uri` is the registry's public base; a main node without an `@id` gets
    `{base_uri}/resources/{ctid}` and an envelope without one gets `{base_uri}/graph/{ctid}`.
    """
    if isinstance(raw, dict):
        data: Any = raw
    else:
        # Files saved by Windows tools start with a byte order mark; JSON forbids it, we forgive it.
        if isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        elif isinstance(raw, str):
            raw = raw.removeprefix("\ufeff")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _failed(_error("malformed-json", "", f"The body is not valid JSON: {exc}."))
    if not isinstance(data, dict):
        return _failed(_error("not-a-json-ld-object", "",
                              "A graph document must be a JSON object, not a "
                              f"{type(data).__name__}."))
    problems: list[Problem] = []
    context = _normalize_context(data.get("@context"), problems)
    if context is None:
        return Document({"@graph": []}, None, None, [], problems)

    if "@graph" in data:
        graph = data["@graph"]
        if isinstance(graph, dict):
            graph = [graph]
        if not isinstance(graph, list) or not all(isinstance(n, dict) for n in graph):
            problems.append(_error("malformed-graph", "/@graph",
                                   "@graph must be a list of node objects."))
            return Document({"@graph": []}, None, None, [], problems)
        nodes = [dict(n) for n in graph]
        node_paths: list[tuple[str | int, ...]] = [("@graph", i) for i in range(len(nodes))]
        graph_id = data.get("@id")
        extra = [k for k in data if k not in ("@context", "@id", "@graph")]
        if extra:
            problems.append(_error("unexpected-envelope-key", pointer(extra[0]),
                                   f"The envelope may hold only @context, @id and @graph; "
                                   f"found {extra[0]!r}.", property=extra[0]))
    else:
        node = {k: v for k, v in data.items() if k != "@context"}
        nodes = [node]
        node_paths = [()]
        graph_id = None

    for node, path in zip(nodes, node_paths, strict=True):
        _normalize_node(node, path, problems)
    node_pointers = [pointer(*path) for path in node_paths]

    main_index = _main_index(nodes, graph_id)
    ctid = None
    if main_index is not None:
        main = nodes[main_index]
        ctid = main.get(CTID_PROP) if ctids.is_ctid(main.get(CTID_PROP)) else None
        if ctid is not None and "@id" not in main:
            main["@id"] = f"{base_uri}/resources/{ctid}"
            nodes[main_index] = {"@id": main.pop("@id"), **main}
    if isinstance(graph_id, str) and ctid is not None:
        named = ctids.from_uri(graph_id)
        if named is not None and named != ctid:
            problems.append(_error("graph-ctid-mismatch", "/@id",
                                   f"The envelope @id names {named} but its main node's CTID is "
                                   f"{ctid}.", node=graph_id))
    if not isinstance(graph_id, str):
        graph_id = f"{base_uri}/graph/{ctid}" if ctid else None
    envelope: dict[str, Any] = {"@context": context}
    if graph_id is not None:
        envelope["@id"] = graph_id
    envelope["@graph"] = nodes
    return Document(envelope, ctid, main_index, node_pointers, problems)


def _failed(problem: Problem) -> Document:
    return Document({"@graph": []}, None, None, [], [problem])


def _normalize_context(context: Any, problems: list[Problem]) -> Any:
    """The context with known URLs in their canonical https form; None (and an error) if unusable."""
    if context is None:
        problems.append(_error("missing-context", "/@context",
                               f"The document has no @context; use {CTDL_CONTEXT!r}."))
        return None
    items = context if isinstance(context, list) else [context]
    out: list[Any] = []
    unusable = False
    for i, item in enumerate(items):
        at: tuple[str | int, ...] = ("@context", i) if isinstance(context, list) else ("@context",)
        ptr = pointer(*at)
        if isinstance(item, str):
            canonical = _CONTEXT_FORMS.get(item.strip())
            if canonical is None:
                problems.append(_error(
                    "remote-context-refused", ptr,
                    f"The context {item!r} is not one the registry knows; remote contexts are never "
                    f"fetched. Use {CTDL_CONTEXT!r} (or the CTDL-ASN context)."))
                return None
            if canonical != item:
                problems.append(_info("context-normalized", ptr,
                                      f"The context URL {item!r} was read as {canonical!r}."))
            out.append(canonical)
        elif isinstance(item, dict):
            # inline definitions: converted exactly by the JSON-LD fallback path, so they may not
            # give a CTDL term another meaning than the one the validator checks
            checked, issues = check_inline(item)
            for issue in issues:
                make = _info if issue.code == "context-normalized" else _error
                problems.append(make(issue.code, pointer(*at, issue.term), issue.message))
            unusable = unusable or any(issue.code != "context-normalized" for issue in issues)
            out.append(checked)
        else:
            problems.append(_error("malformed-context", ptr,
                                   "@context must be a URL, an object or a list of them."))
            return None
    if not any(isinstance(x, str) or copies_ctdl(x) for x in out):
        unusable = True
        problems.append(_error(
            "missing-ctdl-context", "/@context",
            f"The @context does not name the CTDL context ({CTDL_CONTEXT!r}) or the CTDL-ASN one: "
            "without it 'ceterms:' keys are not read as CTDL terms (a prefix alone drops CTDL's "
            "value types, such as which properties take IRIs). Add the CTDL context URL."))
    if unusable:
        return None
    return out if isinstance(context, list) else out[0]


def _compact_term(name: str) -> str:
    """The compact term a key stands for: full namespace IRIs and stray whitespace (seen in
    Credential Engine's own published samples, e.g. "ceterms:financialAssistanceType ") removed."""
    name = name.strip()
    if "://" not in name:
        return name
    for ns, prefix in _NAMESPACES.items():
        if name.startswith(ns):
            return prefix + name[len(ns):]
    return name


_MAX_NESTING = 100  # beyond the validator's depth limit, which reports it; bounds the recursion


def _needs_compacting(name: str) -> bool:
    return "://" in name or name[:1].isspace() or name[-1:].isspace()


# Keys already seen to need no normalization: nearly every key of every document is one of a few
# hundred vocabulary terms, and a set lookup is far cheaper than re-checking each (bounded size).
_CLEAN_KEYS: set[str] = set()
_CLEAN_KEYS_MAX = 50_000


def _dirty_keys(node: dict[str, Any]) -> list[str]:
    dirty = [k for k in node if k not in _CLEAN_KEYS]
    if not dirty:
        return dirty
    out = []
    for k in dirty:
        if _needs_compacting(k):
            out.append(k)
        elif len(_CLEAN_KEYS) < _CLEAN_KEYS_MAX:
            _CLEAN_KEYS.add(k)
    return out


def _normalize_node(node: dict[str, Any], path: tuple[str | int, ...], problems: list[Problem],
                    depth: int = 0) -> None:
    """Normalize one node in place, recursing into embedded nodes. `path` locates the node in the
    document as received (pointers are built only when there is something to report)."""
    if depth > _MAX_NESTING:
        return
    for key in _dirty_keys(node):
        new = _compact_term(key)
        if new == key or new in node:
            continue  # both forms present: leave it for the validator to report
        node[new] = node.pop(key)
        problems.append(_info("term-normalized", pointer(*path, key),
                              f"Property {key!r} was read as {new!r}.", property=new))
    types = node.get("@type")
    if isinstance(types, str):
        new_type = _type_name(types)
        if new_type != types:
            node["@type"] = new_type
            problems.append(_info("type-normalized", pointer(*path, "@type"),
                                  f"Type {types!r} was read as {new_type!r}."))
    elif isinstance(types, list):
        fixed = [_type_name(t) if isinstance(t, str) else t for t in types]
        if fixed != types:
            node["@type"] = fixed
            problems.append(_info("type-normalized", pointer(*path, "@type"),
                                  f"Types {types!r} were read as {fixed!r}."))
    value = node.get(CTID_PROP)
    if isinstance(value, dict) and isinstance(value.get("@value"), str) and len(value) == 1:
        value = node[CTID_PROP] = value["@value"]  # {"@value": "ce-…"} is the same literal
    if isinstance(value, str):
        canonical = ctids.normalize(value.strip())
        if canonical is not None and canonical != value:
            node[CTID_PROP] = canonical
            problems.append(_info("ctid-normalized", pointer(*path, CTID_PROP),
                                  f"CTID {value!r} was read as {canonical!r}.",
                                  property=CTID_PROP))
    for key, val in node.items():
        if isinstance(val, dict):
            if _is_node(val):
                _normalize_node(val, (*path, key), problems, depth + 1)
            elif any("_" in k for k in val):
                _normalize_languages(val, (*path, key), problems)
        elif isinstance(val, list):
            for i, item in enumerate(val):
                if isinstance(item, dict) and _is_node(item):
                    _normalize_node(item, (*path, key, i), problems, depth + 1)


def _normalize_languages(value: dict[str, Any], path: tuple[str | int, ...], problems: list[Problem]) -> None:
    """Language maps keyed by locale names ("en_US", as .NET and Java write them) use BCP 47 tags."""
    for lang in [k for k in value if "_" in k and k.replace("_", "-") not in value]:
        tag = lang.replace("_", "-")
        value[tag] = value.pop(lang)
        problems.append(_info("language-normalized", pointer(*path, lang),
                              f"Language {lang!r} was read as {tag!r}."))


def _type_name(name: str) -> str:
    if name in _TYPE_ALIASES:
        return _TYPE_ALIASES[name]
    if not _needs_compacting(name):
        return name
    compact = _compact_term(name)
    return _TYPE_ALIASES.get(compact, compact)


def _is_node(obj: dict[str, Any]) -> bool:
    """A nested object is a node (not a language map or value) when it has a keyword or term key."""
    if "@value" in obj or "@language" in obj:
        return False
    return any(k[:1] == "@" or ":" in k for k in obj)


def _main_index(nodes: list[dict[str, Any]], graph_id: Any) -> int | None:
    """The main node: the one whose CTID the envelope's @id names, else the first with a CTID."""
    if not nodes:
        return None
    named = ctids.from_uri(graph_id) if isinstance(graph_id, str) else None
    if named is not None:
        for i, node in enumerate(nodes):
            if node.get(CTID_PROP) == named:
                return i
    for i, node in enumerate(nodes):
        if CTID_PROP in node:
            return i
    return 0
