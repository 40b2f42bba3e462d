"""JSON-LD -> RDF: the fast path agrees with PyLD, from_rdf round-trips, contexts stay local.

PyLD (``jsonld.to_rdf`` with the local document loader) is the oracle; graphs are compared with
rdflib's isomorphism test. All triples are compared whatever graph PyLD puts them in (an
envelope with an ``@id`` names a graph), which is what ``to_nquads`` promises.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox
import pytest
from pyld import jsonld
from rdflib import XSD, BNode, Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.term import Node

from ctdl import rdf
from ctdl.compact import from_rdf
from ctdl.context import CTDL, CTDLASN, ContextError, document_loader, term_table

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES_DIR = SHARED / "data" / "ctdl-samples"
CORPUS_TOOL = SHARED / "tools" / "ctdl_corpus.py"
CORPUS_SIZE = 2000
NO_SHARED = f"{SHARED} is absent (the shared data sits beside the project)"
BASE = "https://credentialengineregistry.org/resources/"


def _sample_params() -> list[Any]:
    if not SAMPLES_DIR.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_SHARED))]
    files = sorted(SAMPLES_DIR.rglob("*.json"))
    return [pytest.param(f, id=str(f.relative_to(SAMPLES_DIR))) for f in files]


def load_sample(path: Path | None) -> dict[str, Any]:
    """A sample as a JSON-LD document; skips (with the reason) one that is not JSON-LD."""
    if path is None:
        pytest.skip(NO_SHARED)
    data = path.read_bytes()
    # Two of Credential Engine's outputs start with a UTF-8 byte order mark, which RFC 8259
    # lets a parser ignore; the JSON after it is fine.
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        pytest.skip(f"{path.name} is not JSON, so not JSON-LD: {e}")
    if not isinstance(doc, dict):
        pytest.skip(f"{path.name} is a JSON {type(doc).__name__}, not a JSON-LD document object")
    return doc


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not CORPUS_TOOL.is_file():
        pytest.skip(NO_SHARED)
    out = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--docs", str(CORPUS_SIZE), "--seed", "1",
                    "--out", str(out)], check=True, capture_output=True)
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    assert len(docs) == CORPUS_SIZE
    return docs


def _rdflib_term(term: Any) -> Node:
    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return BNode(term.value)
    if term.language:
        return Literal(term.value, lang=term.language)
    if term.datatype.value == str(XSD.string):
        return Literal(term.value)
    # normalize=False: lexical forms are compared as written ("1.0" is not "1").
    return Literal(term.value, datatype=URIRef(term.datatype.value), normalize=False)


def quads(nquads: str) -> list[ox.Quad]:
    """Parsed by pyoxigraph, the parser the registry loads its triples with."""
    return list(ox.parse(nquads, format=ox.RdfFormat.N_QUADS))


def triples(nquads: str) -> Graph:
    """All triples of N-Triples/N-Quads text in one rdflib Graph, whatever their graph."""
    graph = Graph()
    for q in quads(nquads):
        graph.add((_rdflib_term(q.subject), _rdflib_term(q.predicate), _rdflib_term(q.object)))
    return graph


def rdfc(nquads: str) -> ox.Dataset:
    """The triples in the default graph, blank nodes renamed by W3C RDFC-1.0 (pyoxigraph):
    a second, faster isomorphism oracle, used where the corpus is large."""
    dataset = ox.Dataset(ox.Quad(q.subject, q.predicate, q.object) for q in quads(nquads))
    dataset.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return dataset


def pyld_nquads(doc: dict[str, Any]) -> str:
    result: str = jsonld.to_rdf(doc, {"format": "application/n-quads",
                                      "documentLoader": document_loader})
    return result


def fallbacks() -> int:
    return sum(rdf.FALLBACKS.values())


def assert_same_graph(ours: str, reference: str) -> None:
    a, b = triples(ours), triples(reference)
    assert isomorphic(a, b), (
        f"{len(a)} vs {len(b)} triples; only ours: "
        f"{sorted(str(t) for t in set(a) - set(b))[:5]}; only PyLD's: "
        f"{sorted(str(t) for t in set(b) - set(a))[:5]}"
    )


def context_of(doc: dict[str, Any]) -> str | list[str]:
    ctx = doc.get("@context")
    if isinstance(ctx, str) and "ctdlasn" in ctx:
        return [CTDL, CTDLASN]
    return CTDL


def envelope(*nodes: dict[str, Any], context: Any = CTDL) -> dict[str, Any]:
    return {"@context": context, "@id": "https://example.org/graph/1", "@graph": list(nodes)}


def node(**props: Any) -> dict[str, Any]:
    return {"@id": BASE + "ce-1", "@type": "ceterms:Certification", **props}


def single(**props: Any) -> dict[str, Any]:
    """A single-node document with the CTDL context."""
    return {"@context": CTDL, **node(**props)}


# --- samples and corpus: the fast path equals PyLD, and from_rdf round-trips -----------------

@pytest.mark.parametrize("path", _sample_params())
def test_sample_matches_pyld(path: Path | None) -> None:
    doc = load_sample(path)
    assert_same_graph(rdf.to_nquads(doc), pyld_nquads(doc))


@pytest.mark.parametrize("path", _sample_params())
def test_sample_round_trips_through_from_rdf(path: Path | None) -> None:
    doc = load_sample(path)
    nt = rdf.to_nquads(doc)
    back = rdf.to_nquads(from_rdf(nt, context_of(doc), graph_id=doc.get("@id")))
    assert_same_graph(back, nt)


def test_samples_leave_the_fast_path_only_for_the_documented_reasons() -> None:
    """Samples go to PyLD only for an inline context, a relative IRI or a key that is neither a
    term nor an IRI (one has ``"ceterms:financialAssistanceType "``, with a space)."""
    if not SAMPLES_DIR.is_dir():
        pytest.skip(NO_SHARED)
    fast, reasons = 0, set()
    for path in sorted(SAMPLES_DIR.rglob("*.json")):
        doc = load_sample(path)
        before = dict(rdf.FALLBACKS)
        rdf.to_nquads(doc)
        new = {r for r, n in rdf.FALLBACKS.items() if n != before.get(r, 0)}
        fast += not new
        reasons |= new
    assert {r.split("'")[0] for r in reasons} <= {
        "inline or missing @context", "relative or invalid IRI", "key "}
    assert fast >= 20


def test_corpus_matches_pyld_on_the_fast_path(corpus: list[dict[str, Any]]) -> None:
    before = fallbacks()
    mismatched = []
    for doc in corpus:
        if not isomorphic(triples(rdf.to_nquads(doc)), triples(pyld_nquads(doc))):
            mismatched.append(doc["@id"])
    assert mismatched == []
    assert fallbacks() == before, dict(rdf.FALLBACKS)


def test_corpus_round_trips_through_from_rdf_on_the_fast_path(
        corpus: list[dict[str, Any]]) -> None:
    before = fallbacks()
    broken = []
    for doc in corpus:
        nt = rdf.to_nquads(doc)
        env = from_rdf(nt, graph_id=doc["@id"])
        if env["@id"] != doc["@id"] or rdfc(rdf.to_nquads(env)) != rdfc(nt):
            broken.append(doc["@id"])
    assert broken == []
    assert fallbacks() == before, dict(rdf.FALLBACKS)


# --- the shapes of JSON-LD the fast path handles, each against PyLD --------------------------

SHAPES: dict[str, dict[str, Any]] = {
    "language map, list values, null": single(**{
        "ceterms:name": {"en-US": "Welding", "es": ["Soldadura", "Soldar"], "fr": None}}),
    "string under a language container": single(**{"ceterms:name": "Plain"}),
    "numbers": single(**{"ceterms:latitude": 41.6946, "ceterms:longitude": -95,
                       "schema:value": 1.0, "ceterms:price": 1e21, "ceterms:ctid": 7,
                       "http://example.org/big": 10**22, "http://example.org/small": 1.5e-7}),
    "booleans": single(**{"ceterms:globalJurisdiction": True, "http://example.org/flag": False}),
    "typed and tagged value objects": single(**{
        "ceterms:dateEffective": {"@value": "2020-01-01", "@type": "xsd:date"},
        "ceterms:keyword": [{"@value": "soudure", "@language": "FR-ca"}, {"@value": None}],
        "http://example.org/n": {"@value": 5, "@type": "xsd:decimal"}}),
    "datatype coercion": single(**{"ceterms:dateEffective": "2020-01-01",
                                 "ceterms:latitude": "46.07323"}),
    "@id coercion with compact IRIs and blank nodes": single(**{
        "ceterms:audienceLevelType": "audLevel:BeginnerLevel",
        "ceterms:ownedBy": [BASE + "ce-2", "_:org"],
        "ceterms:offeredBy": {"@id": "_:org"}}),
    "explicit blank nodes shared across nodes": {
        "@context": CTDL, "@graph": [
            node(**{"ceterms:ownedBy": "_:x"}),
            {"@id": "_:x", "@type": "ceterms:CredentialOrganization",
             "ceterms:name": {"en": "Org"}, "ceterms:subjectWebpage": "https://org.example/"}]},
    "nested objects, empty object, several types": single(**{
        "@type": ["ceterms:Certification", "ceterms:Badge"],
        "ceterms:address": [{"@type": "ceterms:Place", "ceterms:postalCode": "12345",
                             "ceterms:geoCoordinates": {"ceterms:latitude": 1.25}}, {}],
        "ceterms:estimatedCost": {"@type": "ceterms:CostProfile", "ceterms:price": 100}}),
    "@list": single(**{"http://example.org/steps": {"@list": ["a", {"@id": BASE + "x"}, 3]},
                     "http://example.org/none": {"@list": []}}),
    "literal escapes": single(**{"ceterms:description": {
        "en": 'quote " backslash \\ newline \n return \r tab \t bell \x07 del \x7f é 中'}}),
    "nulls and keys that are absolute IRIs": single(**{
        "ceterms:description": None, "https://schema.org/keywords": ["x", None],
        "ceterms:notATerm": "compact IRI with a known prefix"}),
    "single node document": {"@context": CTDL, **node(**{"ceterms:name": {"en": "Single"}})},
    "@graph holding one object": {"@context": CTDL, "@id": "https://example.org/g",
                                  "@graph": node(**{"ceterms:name": {"en": "One"}})},
    "context list of CTDL and CTDL-ASN": {
        "@context": [CTDL, CTDLASN], "@graph": [{
            "@id": BASE + "ce-3", "@type": "ceasn:Competency",
            "ceasn:competencyText": {"en-US": "Weld"}, "ceasn:isPartOf": BASE + "ce-4"}]},
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_fast_path_shape_matches_pyld(name: str) -> None:
    doc = SHAPES[name]
    before = fallbacks()
    ours = rdf.to_nquads(doc)
    assert fallbacks() == before, dict(rdf.FALLBACKS)  # really the fast path
    assert_same_graph(ours, pyld_nquads(doc))


FALLBACK_SHAPES: dict[str, dict[str, Any]] = {
    "inline context": {
        "@context": {"ceterms": "https://purl.org/ctdl/terms/", "name": "ceterms:name"},
        "@id": BASE + "ce-1", "name": "Inline"},
    "inline context in a nested node": single(**{"ceterms:ownedBy": {
        "@context": {"nm": "https://purl.org/ctdl/terms/name"}, "nm": "Org"}}),
    "@reverse": single(**{"@reverse": {"ceterms:ownedBy": {"@id": BASE + "ce-9"}}}),
    "@included": single(**{"@included": [{"@id": BASE + "ce-8", "ceterms:name": "x"}]}),
    "key that is not a term": single(**{"name": "dropped", "ceterms:name": {"en": "kept"}}),
    "relative IRI": single(**{"ceterms:framework": "AudienceLevel"}),
    "string typed xsd:double": single(**{"http://example.org/d": {"@value": "1.50",
                                                                "@type": "xsd:double"}}),
    "envelope that is itself a node": {**envelope(node()), "@type": "ceterms:Collection"},
}


@pytest.mark.parametrize("name", list(FALLBACK_SHAPES))
def test_unhandled_shape_falls_back_to_pyld_and_still_matches(name: str) -> None:
    doc = FALLBACK_SHAPES[name]
    before = fallbacks()
    ours = rdf.to_nquads(doc)
    assert fallbacks() == before + 1
    assert_same_graph(ours, pyld_nquads(doc))


def test_keys_that_are_not_terms_or_iris_are_dropped() -> None:
    doc = single(**{"name": "dropped", "ceterms:name": {"en": "kept"}})
    nt = rdf.to_nquads(doc)
    assert "dropped" not in nt and '"kept"@en' in nt


def test_blank_node_ids_are_scoped_to_one_document() -> None:
    doc = envelope(node(**{"ceterms:ownedBy": "_:b0"}),
                   {"@id": "_:b0", "ceterms:name": {"en": "Org"}})
    nt = rdf.to_nquads(doc)
    # The document's own "_:b0" is renamed; its two mentions still name one node.
    (owner,) = [line.split()[2] for line in nt.splitlines() if "ownedBy" in line]
    assert any(line.startswith(owner + " ") and "name" in line for line in nt.splitlines())
    assert len(triples(nt)) == 3


def test_named_graph_puts_every_triple_in_that_graph() -> None:
    doc = envelope(node(**{"ceterms:name": {"en": "Named"}}))
    nq = rdf.to_nquads(doc, graph=doc["@id"])
    lines = nq.splitlines()
    assert lines and all(line.endswith(f" <{doc['@id']}> .") for line in lines)
    # PyLD puts the nodes of an envelope with an @id in the graph that @id names.
    assert {q.graph_name for q in quads(nq)} == {q.graph_name for q in quads(pyld_nquads(doc))}
    assert_same_graph(nq, pyld_nquads(doc))


def test_without_a_graph_the_triples_are_in_the_default_graph() -> None:
    nt = rdf.to_nquads(envelope(node()))
    assert all(len(line.split()) == 4 for line in nt.splitlines())


def test_graph_name_must_be_an_iri() -> None:
    with pytest.raises(ValueError):
        rdf.to_nquads(envelope(node()), graph="not an iri")


def test_invalid_json_ld_raises_rdf_error() -> None:
    with pytest.raises(rdf.RdfError):
        rdf.to_nquads(single(**{"ceterms:name": {"en": 5}}))


@pytest.mark.parametrize("value", [0.0, 1.5, -2.25, 41.6946, 1e-7, 123456789.125, 1e300, 2.5e21,
                                   -0.001, math.pi])
def test_canonical_double_is_json_ld_s(value: float) -> None:
    from pyld.jsonld import _canonicalize_double  # the oracle's own function

    assert rdf.canonical_double(value) == _canonicalize_double(value)


# --- contexts: only the vendored ones ---------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://credreg.net/ctdl/schema/context/json", "http://credreg.net/ctdl/schema/context/json",
    "https://credreg.net/ctdl/schema/context/json/", "http://credreg.net/ctdl/schema/context/json/",
])
def test_http_and_https_context_urls_give_the_same_graph(url: str) -> None:
    doc = envelope(node(**{"ceterms:name": {"en": "Either"}}), context=url)
    reference = envelope(node(**{"ceterms:name": {"en": "Either"}}))
    before = fallbacks()
    assert_same_graph(rdf.to_nquads(doc), rdf.to_nquads(reference))
    assert fallbacks() == before
    assert document_loader(url)["document"] == document_loader(CTDL)["document"]
    assert term_table(url) is term_table(CTDL)


@pytest.mark.parametrize("url", ["https://schema.org/", "https://example.org/context.jsonld",
                                 "https://credreg.net/ctdl/schema/context/jsonx"])
def test_remote_contexts_are_refused(url: str) -> None:
    with pytest.raises(ContextError, match="remote contexts are not fetched") as raised:
        rdf.to_nquads(envelope(node(), context=url))
    assert raised.value.url == url
    with pytest.raises(ContextError):
        document_loader(url)
    with pytest.raises(ContextError):
        term_table(url)


def test_remote_context_inside_an_inline_context_is_refused() -> None:
    doc = envelope(node(), context=[{"x": "https://example.org/x"}, "https://example.org/ctx"])
    with pytest.raises(ContextError):
        rdf.to_nquads(doc)
    with pytest.raises(ContextError):
        rdf.to_expanded(doc)


def test_term_table_records_iri_coercion_and_container() -> None:
    table = term_table(CTDL)
    assert table.prefixes["ceterms"] == "https://purl.org/ctdl/terms/"
    name, owned, lat = (table.terms[t] for t in
                        ("ceterms:name", "ceterms:ownedBy", "ceterms:latitude"))
    assert (name.iri, name.container) == ("https://purl.org/ctdl/terms/name", ("@language",))
    assert owned.type == "@id"
    assert lat.type == "http://www.w3.org/2001/XMLSchema#float"
    assert table.by_iri["https://purl.org/ctdl/terms/name"] == "ceterms:name"
    merged = term_table([CTDL, CTDLASN])
    assert "ceasn:competencyText" in merged.terms and "ceterms:name" in merged.terms


def test_to_expanded_uses_full_iris() -> None:
    (expanded,) = rdf.to_expanded(single(**{"ceterms:name": {"en": "X"}}))
    assert expanded["https://purl.org/ctdl/terms/name"] == [{"@value": "X", "@language": "en"}]


# --- from_rdf ---------------------------------------------------------------------------------

def test_from_rdf_writes_the_ctdl_style() -> None:
    terms = "https://purl.org/ctdl/terms/"
    nt = "".join(f"{line} .\n" for line in [
        f"<{BASE}ce-1> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{terms}Certification>",
        f'<{BASE}ce-1> <{terms}name> "Welding"@en-us',
        f'<{BASE}ce-1> <{terms}name> "Soldadura"@es',
        f"<{BASE}ce-1> <{terms}ownedBy> <{BASE}ce-2>",
        f"<{BASE}ce-1> <{terms}audienceLevelType> _:place",
        f'_:place <{terms}latitude> "4.16946E1"^^<http://www.w3.org/2001/XMLSchema#float>',
        f'_:place <{terms}postalCode> "12345"',
        f'_:place <{terms}targetNode> <https://purl.org/ctdl/vocabs/audLevel/BeginnerLevel>',
        '_:place <http://example.org/count> "3"^^<http://www.w3.org/2001/XMLSchema#integer>',
    ])
    env = from_rdf(nt, graph_id="https://example.org/graph/1")
    assert env == {
        "@context": CTDL,
        "@id": "https://example.org/graph/1",
        "@graph": [
            {"@id": BASE + "ce-1", "@type": "ceterms:Certification",
             "ceterms:name": {"en-US": "Welding", "es": "Soldadura"},
             "ceterms:ownedBy": BASE + "ce-2", "ceterms:audienceLevelType": "_:b0"},
            {"@id": "_:b0", "ceterms:latitude": 41.6946, "ceterms:postalCode": "12345",
             "ceterms:targetNode": "audLevel:BeginnerLevel", "http://example.org/count": 3},
        ],
    }
    assert_same_graph(rdf.to_nquads(env), nt)


def test_from_rdf_keeps_an_iri_whose_scheme_is_a_ctdl_prefix() -> None:
    status = "https://purl.org/ctdl/terms/credentialStatusType"
    nt = f"<{BASE}ce-1> <{status}> <credentialStat:Active> .\n"
    env = from_rdf(nt)
    assert env["@context"] == [CTDL, {"credentialStat": None}]
    assert_same_graph(rdf.to_nquads(env), nt)
