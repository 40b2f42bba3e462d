"""The RDF projection: every current record as its own named graph, plus a metadata graph.

Graph IRIs: `{base_uri}/graph/{ctid}`, the registry's own graph URI, even when the envelope keeps
a foreign `@id` (e.g. https://credentialengineregistry.org/graph/...). The named graph is what
this registry holds, it dereferences here (GET /graph/{ctid}), it is the name /graph/{ctid}
already uses for N-Quads, and it cannot collide with a copy held elsewhere. The envelope's own
`@id`, when different, is kept in the metadata graph as `prov:wasDerivedFrom`.

Blank nodes are skolemized per record: `_:b0` of record X becomes
`{base_uri}/.well-known/genid/{ctid}/b0` (RFC 7511-style well-known genid IRIs), so the blank
nodes of two records never merge in the shared store, and a record's skolem IRIs are stable for
a given content.

The metadata graph (`{base}/.well-known/void#records`) describes each record graph with PROV-O
and DCTERMS: publishing organization, owners, version, created/modified, content hash (SPDX
checksum, the record's ETag), type, main resource and source. It also stores the change-log
sequence the store reflects (the projection's position), written in the same transaction as
the data.
"""
from __future__ import annotations

import logging
import re

import orjson

from registry.rdfstore import Group, RdfDataError, TripleStore
from registry.store import Change, Record, Store

log = logging.getLogger("credreg.rdfstore")

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
XSD = "http://www.w3.org/2001/XMLSchema#"
DCT = "http://purl.org/dc/terms/"
PROV = "http://www.w3.org/ns/prov#"
SPDX = "http://spdx.org/rdf/terms#"
FOAF_PRIMARY_TOPIC = "http://xmlns.com/foaf/0.1/primaryTopic"
OWL_VERSION_INFO = "http://www.w3.org/2002/07/owl#versionInfo"
CTID = "https://purl.org/ctdl/terms/ctid"
_TYPE_PREFIXES = {"ceterms": "https://purl.org/ctdl/terms/", "ceasn": "https://purl.org/ctdlasn/terms/",
                  "qdata": "https://purl.org/ctdl/qdata/", "schema": "https://schema.org/"}
# N-Triples keeps a triple on one line (a literal escapes its line breaks), so a blank node is the
# subject at the start of a line or the object just before " ." at its end. The label must follow
# the N-Triples BLANK_NODE_LABEL grammar: it then cannot hold '"', '@', '^', '>' or a space, so the
# end of a literal ("... _:b1"@en .) or of an IRI (<...:_:b1> .) is never taken for a blank node;
# "_:" anywhere else is inside a literal or an IRI and stays as it is.
_PN_CHARS_U = ("A-Za-z_:\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF"
               "\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD"
               "\U00010000-\U000EFFFF")
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00B7\u0300-\u036F\u203F-\u2040"
_LABEL = f"([{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?)"
_SUBJECT = re.compile(f"^_:{_LABEL} ", re.MULTILINE)
_OBJECT = re.compile(f" _:{_LABEL} \\.$", re.MULTILINE)
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*\Z")
_SAFE_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*\Z')


def graph_iri(base_uri: str, ctid: str) -> str:
    return f"{base_uri}/graph/{ctid}"


def skolem_root(base_uri: str) -> str:
    """Where every record's skolem IRIs live (one folder per record under it)."""
    return f"{base_uri}/.well-known/genid/"


def skolem_prefix(base_uri: str, ctid: str) -> str:
    return f"{skolem_root(base_uri)}{ctid}/"


def skolemize(ntriples: str, base_uri: str, ctid: str) -> str:
    """The record's N-Triples with every blank node replaced by its skolem IRI."""
    if ntriples and not ntriples.endswith("\n"):
        ntriples += "\n"
    if "_:" not in ntriples:
        return ntriples
    if "\x00" in ntriples:  # never from ctdl.rdf (it writes \u0000); be exact anyway
        prefix = skolem_prefix(base_uri, ctid)
        ntriples = _SUBJECT.sub(lambda m: f"<{prefix}{m[1]}> ", ntriples)
        return _OBJECT.sub(lambda m: f" <{prefix}{m[1]}> .", ntriples)
    # A constant template (compiled once) with a NUL placeholder, then one C-level replace: a
    # per-record template would be re-parsed by `re` for every record.
    ntriples = _OBJECT.sub(" <\x00\\1> .", _SUBJECT.sub("<\x00\\1> ", ntriples))
    return ntriples.replace("\x00", skolem_prefix(base_uri, ctid))


def _main_iri(record: Record, base_uri: str) -> str:
    """The subject of the record's `ceterms:ctid "{ctid}"` triple (its main resource)."""
    text = record.ntriples
    at = text.find(f'> <{CTID}> "{record.ctid}" .')
    if at > 0:
        start = text.rfind("\n", 0, at) + 1
        if text.startswith("<", start):
            return text[start + 1:at]
    return f"{base_uri}/resources/{record.ctid}"


def _type_iri(type_: str) -> str | None:
    prefix, _, name = type_.partition(":")
    if prefix in _TYPE_PREFIXES and _SAFE_NAME.match(name):
        return _TYPE_PREFIXES[prefix] + name
    return type_ if type_.startswith(("http://", "https://")) and _SAFE_IRI.match(type_) else None


def _literal(value: str, datatype: str | None = None) -> str:
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{body}"' + (f"^^<{datatype}>" if datatype else "")


def _datetime(value: str) -> str:
    """xsd:dateTime in canonical form (no trailing zeros in the fraction), as engines store it,
    so a dump and the triple store spell the same literal the same way."""
    head, dot, rest = value.partition(".")
    if not dot:
        return value
    digits = rest.rstrip("Z")
    zone = rest[len(digits):]
    digits = digits.rstrip("0")
    return f"{head}.{digits}{zone}" if digits else f"{head}{zone}"


def meta_subjects(base_uri: str, ctid: str) -> list[str]:
    g = graph_iri(base_uri, ctid)
    return [g, g + "#sha256"]


def metadata_ntriples(record: Record, base_uri: str, source: str | None = None) -> str:
    """What the metadata graph says about one record graph (N-Triples)."""
    g = graph_iri(base_uri, record.ctid)
    s = f"<{g}> "
    lines = [
        f"{s}<{RDF_TYPE}> <{PROV}Entity> .",
        f"{s}<{DCT}identifier> {_literal(record.ctid)} .",
        f"{s}<{FOAF_PRIMARY_TOPIC}> <{_main_iri(record, base_uri)}> .",
        f"{s}<{OWL_VERSION_INFO}> {_literal(str(record.version), XSD + 'integer')} .",
        f"{s}<{DCT}created> {_literal(_datetime(record.created), XSD + 'dateTime')} .",
        f"{s}<{DCT}modified> {_literal(_datetime(record.modified), XSD + 'dateTime')} .",
        f"{s}<{SPDX}checksum> <{g}#sha256> .",
        f"<{g}#sha256> <{SPDX}algorithm> <{SPDX}checksumAlgorithm_sha256> .",
        f"<{g}#sha256> <{SPDX}checksumValue> {_literal(record.etag)} .",
    ]
    type_iri = _type_iri(record.type)
    if type_iri:
        lines.append(f"{s}<{DCT}type> <{type_iri}> .")
    if record.publisher:
        lines.append(f"{s}<{DCT}publisher> <{base_uri}/resources/{record.publisher}> .")
    for owner in record.owners:
        lines.append(f"{s}<{PROV}wasAttributedTo> <{base_uri}/resources/{owner}> .")
    if source is None:
        source = _envelope_id(record.body)
    if source and source != g and _SAFE_IRI.match(source):
        lines.append(f"{s}<{PROV}wasDerivedFrom> <{source}> .")
    return "\n".join(lines) + "\n"


def _envelope_id(body: bytes) -> str | None:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = envelope.get("@id") if isinstance(envelope, dict) else None
    return value if isinstance(value, str) else None


class RdfProjection:
    """Follows the change log into a TripleStore: one SPARQL Update transaction per batch."""

    name = "rdf"

    def __init__(self, store: TripleStore, base_uri: str) -> None:
        self.store = store
        self.base_uri = base_uri

    def position(self) -> int:
        return self.store.position()

    def apply(self, changes: list[Change], store: Store) -> None:
        if not changes:
            return
        latest: dict[str, Change] = {}
        for change in changes:  # only each record's current state matters
            latest[change.ctid] = change
        group = Group(position=changes[-1].seq)
        for ctid in latest:
            g = graph_iri(self.base_uri, ctid)
            group.drop.append(g)
            group.meta_subjects.extend(meta_subjects(self.base_uri, ctid))
            record = store.get(ctid)
            if record is None or record.deleted or not record.ntriples:
                continue
            group.graphs.append((g, skolemize(record.ntriples, self.base_uri, ctid)))
            group.metadata.append(metadata_ntriples(record, self.base_uri))
        try:
            self.store.apply(group)
        except RdfDataError as exc:
            log.warning("the triple store rejected a group (%s); applying its records one by one", exc)
            self._apply_each(group)

    def _apply_each(self, group: Group) -> None:
        """The slow path: one record at a time, N-Triples through the Graph Store route; a record
        the engine still rejects is left out (and logged) rather than blocking the projection."""
        loaded = {g for g, _ in group.graphs}
        for g in group.drop:
            if g not in loaded:
                self.store.remove_graph(g)
        self.store.update_metadata(group.meta_subjects, "", None)
        for (g, ntriples), metadata in zip(group.graphs, group.metadata, strict=True):
            try:
                self.store.replace_graph(g, ntriples)
                self.store.update_metadata([], metadata, None)
            except RdfDataError as exc:
                log.error("the triple store rejected %s; it is left out: %s", g, exc)
                self.store.remove_graph(g)
        self.store.update_metadata([], "", group.position)

    def settle(self) -> None:
        """Called by the projector once caught up: the store may compact after a bulk load."""
        self.store.settle()

    def reset(self) -> None:
        self.store.reset()

    def close(self) -> None:
        self.store.close()
