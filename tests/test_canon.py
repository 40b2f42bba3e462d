"""content_hash: one hash per graph, whatever the blank-node labels, line order and spelling."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import orjson
import pyoxigraph as ox
import pytest
from pyld import jsonld

from ctdl import rdf
from ctdl.canon import content_hash, parse_triples
from ctdl.context import CTDL, document_loader

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctdl-samples"
BASE = "https://credentialengineregistry.org/resources/"
T = "https://purl.org/ctdl/terms/"


def _sample_params() -> list[Any]:
    if not SAMPLES_DIR.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SAMPLES_DIR} is absent"))]
    return [pytest.param(f, id=str(f.relative_to(SAMPLES_DIR)))
            for f in sorted(SAMPLES_DIR.rglob("*.json"))]


def sample_nquads(path: Path) -> str:
    # Two samples start with a UTF-8 byte order mark, which a JSON parser may ignore.
    return rdf.to_nquads(orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf")))


def relabelled(nquads: str, seed: int) -> str:
    """The same graph written by pyoxigraph with fresh blank-node labels, lines shuffled."""
    rng = random.Random(seed)
    names: dict[ox.BlankNode, ox.BlankNode] = {}

    def rename(term: Any) -> Any:
        if isinstance(term, ox.BlankNode):
            return names.setdefault(term, ox.BlankNode(f"n{rng.randrange(10**9)}x{len(names)}"))
        return term

    quads = [ox.Quad(rename(q.subject), q.predicate, rename(q.object))
             for q in ox.parse(nquads, format=ox.RdfFormat.N_QUADS)]
    rng.shuffle(quads)
    text = ox.serialize(quads, format=ox.RdfFormat.N_QUADS)
    assert text is not None
    return text.decode()


def rdfc(nquads: str) -> ox.Dataset:
    """W3C RDFC-1.0 canonical form (pyoxigraph), graph names dropped: the reference."""
    dataset = ox.Dataset(ox.Quad(q.subject, q.predicate, q.object)
                         for q in ox.parse(nquads, format=ox.RdfFormat.N_QUADS))
    dataset.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return dataset


def with_blank_nodes(extra: str = "") -> str:
    """A credential with two alignment objects and an address: the usual CTDL shape."""
    return (
        f'<{BASE}ce-1> <{T}name> "Welding"@en .\n'
        f"<{BASE}ce-1> <{T}occupationType> _:a .\n"
        f"<{BASE}ce-1> <{T}occupationType> _:b .\n"
        f'_:a <{T}targetNodeName> "Welders"@en .\n'
        f'_:b <{T}targetNodeName> "Cutters"@en .\n'
        f"<{BASE}ce-1> <{T}address> _:c .\n"
        f"_:c <{T}geo> _:d .\n"
        f'_:d <{T}latitude> "4.1E1"^^<http://www.w3.org/2001/XMLSchema#float> .\n'
        + extra
    )


@pytest.mark.parametrize("path", _sample_params())
def test_hash_ignores_blank_node_labels_and_line_order(path: Path) -> None:
    nquads = sample_nquads(path)
    assert content_hash(relabelled(nquads, 1)) == content_hash(nquads)
    assert content_hash(relabelled(nquads, 2)) == content_hash(nquads)


@pytest.mark.parametrize("path", _sample_params())
def test_hash_is_the_same_for_pyld_s_serialization(path: Path) -> None:
    """PyLD escapes and names graphs differently; the graph is the same, so is the hash."""
    doc = orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    pyld = jsonld.to_rdf(doc, {"format": "application/n-quads", "documentLoader": document_loader})
    assert content_hash(pyld) == content_hash(rdf.to_nquads(doc))


@pytest.mark.parametrize("path", _sample_params())
def test_hash_changes_when_one_literal_changes(path: Path) -> None:
    nquads = sample_nquads(path)
    lines = nquads.splitlines(keepends=True)
    literal_lines = [i for i, line in enumerate(lines) if '"' in line]
    if not literal_lines:
        pytest.skip(f"{path.name} has no literal")
    for i in literal_lines[:: max(1, len(literal_lines) // 5)]:
        changed = lines.copy()
        changed[i] = changed[i].replace('"', '"~', 1)
        assert content_hash("".join(changed)) != content_hash(nquads), lines[i]


def test_hash_changes_when_a_blank_node_edge_moves() -> None:
    base = with_blank_nodes()
    moved = base.replace(f'_:b <{T}targetNodeName> "Cutters"@en',
                         f'_:a <{T}targetNodeName> "Cutters"@en')
    assert moved != base
    assert content_hash(moved) != content_hash(base)
    assert rdfc(moved) != rdfc(base)


def test_hash_changes_when_a_blank_node_is_nested_elsewhere() -> None:
    base = with_blank_nodes()
    renested = base.replace(f"_:c <{T}geo> _:d", f"_:a <{T}geo> _:d")
    assert content_hash(renested) != content_hash(base)


def test_hash_agrees_with_rdfc_on_which_graphs_are_equal() -> None:
    base = with_blank_nodes()
    variants = [
        base,
        relabelled(base, 3),
        base.replace("Welders", "Welder"),
        base + f'_:a <{T}framework> <https://example.org/soc> .\n',
        base + f'_:b <{T}framework> <https://example.org/soc> .\n',
        base.replace("_:d <", "_:c <"),
        base.replace("ce-1>", "ce-2>", 1),
    ]
    for a in variants:
        for b in variants:
            assert (content_hash(a) == content_hash(b)) == (rdfc(a) == rdfc(b)), (a, b)


def test_automorphic_blank_nodes_hash_the_same_under_relabelling() -> None:
    twins = (f"<{BASE}ce-1> <{T}keyword> _:x .\n<{BASE}ce-1> <{T}keyword> _:y .\n"
             f'_:x <{T}name> "same" .\n_:y <{T}name> "same" .\n')
    assert content_hash(relabelled(twins, 4)) == content_hash(twins)
    assert content_hash(twins) != content_hash(twins.replace("_:y", "_:x"))


@pytest.mark.parametrize("variant", [
    pytest.param(lambda t: t + t, id="every line twice"),
    pytest.param(lambda t: t.replace(" .\n", f" <{BASE}graph> .\n"), id="graph names"),
    pytest.param(lambda t: t.replace(" .\n", " .\r\n"), id="CRLF line ends"),
    pytest.param(lambda t: "# a comment\n\n" + t.replace("> <", ">\t<"), id="comments, tabs"),
    pytest.param(lambda t: t.replace('"Welders"', '"\\u0057elders"'), id="escaped character"),
    pytest.param(lambda t: t.replace('"@en', '"@EN'), id="language tag case"),
])
def test_hash_ignores_spelling(variant: Any) -> None:
    base = with_blank_nodes()
    assert content_hash(variant(base)) == content_hash(base)


def test_hash_changes_with_the_language_or_datatype() -> None:
    base = with_blank_nodes()
    assert content_hash(base.replace('"Welders"@en', '"Welders"@en-us')) != content_hash(base)
    assert content_hash(base.replace("#float>", "#double>")) != content_hash(base)


def test_explicit_xsd_string_is_the_plain_literal() -> None:
    plain = with_blank_nodes(f'<{BASE}ce-1> <{T}ctid> "ce-1" .\n')
    typed = with_blank_nodes(
        f'<{BASE}ce-1> <{T}ctid> "ce-1"^^<http://www.w3.org/2001/XMLSchema#string> .\n')
    assert content_hash(typed) == content_hash(plain)


def test_literal_escapes_are_normalised() -> None:
    raw_tab = f'<{BASE}ce-1> <{T}name> "a\tb" .\n'
    escaped_tab = f'<{BASE}ce-1> <{T}name> "a\\tb" .\n'
    unicode_tab = f'<{BASE}ce-1> <{T}name> "a\\u0009b" .\n'
    assert content_hash(raw_tab) == content_hash(escaped_tab) == content_hash(unicode_tab)
    assert content_hash(escaped_tab) != content_hash(escaped_tab.replace("\\t", "\\n"))


def test_named_graph_output_hashes_like_triples() -> None:
    doc: dict[str, Any] = {"@context": CTDL, "@id": "https://example.org/graph/1", "@graph": [
        {"@id": BASE + "ce-1", "@type": "ceterms:Certification",
         "ceterms:address": {"@type": "ceterms:Place", "ceterms:postalCode": "1"}}]}
    assert content_hash(rdf.to_nquads(doc, graph=doc["@id"])) == content_hash(rdf.to_nquads(doc))


def test_parse_triples_normalises_terms() -> None:
    text = f'<{BASE}ce-1> <{T}name> "x"@EN-us <{BASE}graph> .\n<{BASE}ce-1> <{T}name> "x"@en-US .\n'
    assert parse_triples(text) == {(f"<{BASE}ce-1>", f"<{T}name>", '"x"@en-us')}


def test_empty_graph() -> None:
    assert content_hash("") == hashlib.sha256(b"").hexdigest()


def test_text_that_is_not_n_triples_is_refused() -> None:
    with pytest.raises(ValueError):
        content_hash("<a> <b> .\n")
