"""Parsing and normalizing graph documents as received."""
from __future__ import annotations

import pytest

from ctdl.context import load_context
from ctdl.document import CTDL_CONTEXT, parse
from ctdl.problems import Severity
from tests.conftest import BASE, graph, new_ctid


def codes(doc) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.code for p in doc.problems]


@pytest.mark.parametrize("url", [
    "http://credreg.net/ctdl/schema/context/json",
    "https://credreg.net/ctdl/schema/context/json/",
    "http://credreg.net/ctdl/schema/context/json/",
])
def test_context_url_variants_resolve_to_the_vendored_context(url: str) -> None:
    raw = graph()
    raw["@context"] = url
    doc = parse(raw, base_uri=BASE)
    assert doc.envelope["@context"] == CTDL_CONTEXT
    assert codes(doc) == ["context-normalized"]


def test_other_remote_contexts_are_refused() -> None:
    raw = graph()
    raw["@context"] = "https://schema.org/"
    doc = parse(raw, base_uri=BASE)
    assert doc.has_errors and codes(doc) == ["remote-context-refused"]
    assert "never fetched" in doc.problems[0].message


def test_missing_context_is_an_error() -> None:
    raw = graph()
    del raw["@context"]
    assert codes(parse(raw, base_uri=BASE)) == ["missing-context"]


def test_an_inline_context_may_not_give_a_ctdl_prefix_another_namespace() -> None:
    raw = graph()
    raw["@context"] = [CTDL_CONTEXT, {"ceterms": "http://example.org/not-ctdl/"}]
    doc = parse(raw, base_uri=BASE)
    assert codes(doc) == ["context-redefines-term"]
    assert doc.problems[0].pointer == "/@context/1/ceterms"
    assert "https://purl.org/ctdl/terms/" in doc.problems[0].message


def test_an_inline_context_may_not_redefine_a_ctdl_term() -> None:
    raw = graph()
    raw["@context"] = [CTDL_CONTEXT, {"ceterms:name": {"@id": "http://example.org/title"}}]
    assert codes(parse(raw, base_uri=BASE)) == ["context-redefines-term"]
    # the same IRI with another coercion changes what the values mean just as much
    raw["@context"] = [CTDL_CONTEXT, {"ceterms:subjectWebpage": {"@id": "https://purl.org/ctdl/terms/subjectWebpage"}}]
    doc = parse(raw, base_uri=BASE)
    assert codes(doc) == ["context-redefines-term"] and "value type or container" in doc.problems[0].message


def test_an_inline_context_with_only_its_own_prefixes_is_not_ctdl() -> None:
    raw = graph()
    raw["@context"] = {"schema": "https://schema.org/", "ceterms": "https://purl.org/ctdl/terms/"}
    doc = parse(raw, base_uri=BASE)
    assert codes(doc) == ["missing-ctdl-context"]


def test_an_inline_prefix_that_is_not_an_iri_is_refused() -> None:
    raw = graph()
    raw["@context"] = [CTDL_CONTEXT, {"ctdl": "[CTI Namespace Not Determined Yet]"}]
    doc = parse(raw, base_uri=BASE)
    assert codes(doc) == ["malformed-context"] and doc.problems[0].pointer == "/@context/1/ctdl"
    raw["@context"] = [CTDL_CONTEXT, {"terms": "ceterms"}]  # another term: JSON-LD expands it
    assert codes(parse(raw, base_uri=BASE)) == []


def test_inline_contexts_that_keep_ctdl_meanings_are_accepted() -> None:
    raw = graph()
    # the http:// form of the namespace is read as CTDL's; own prefixes and a nulled
    # vocabulary prefix (to write an IRI of that scheme literally) are fine
    raw["@context"] = [CTDL_CONTEXT, {"ceterms": "http://purl.org/ctdl/terms/", "ex": "http://example.org/",
                                      "credentialStat": None}]
    doc = parse(raw, base_uri=BASE)
    assert codes(doc) == ["context-normalized"]
    assert doc.envelope["@context"][1]["ceterms"] == "https://purl.org/ctdl/terms/"


def test_a_prefix_alone_is_not_the_ctdl_context_but_a_whole_inline_copy_is() -> None:
    raw = graph()
    raw["@context"] = {"ceterms": "https://purl.org/ctdl/terms/"}
    assert codes(parse(raw, base_uri=BASE)) == ["missing-ctdl-context"]
    raw["@context"] = load_context(CTDL_CONTEXT)["@context"]
    assert not parse(raw, base_uri=BASE).has_errors


def test_single_node_is_wrapped_into_an_envelope() -> None:
    ctid = new_ctid()
    node = {"@context": CTDL_CONTEXT, "@type": "ceterms:Certification", "ceterms:ctid": ctid}
    doc = parse(node, base_uri=BASE)
    assert doc.envelope["@id"] == f"{BASE}/graph/{ctid}"
    assert doc.main == {"@id": f"{BASE}/resources/{ctid}", "@type": "ceterms:Certification",
                        "ceterms:ctid": ctid}
    assert doc.node_pointers == [""]


def test_main_node_is_the_one_the_envelope_names() -> None:
    first, second = new_ctid(), new_ctid()
    raw = graph(first)
    raw["@graph"].insert(0, graph(second)["@graph"][0])
    doc = parse(raw, base_uri=BASE)
    assert doc.ctid == first and doc.main_index == 1


def test_full_namespace_iris_are_read_as_terms() -> None:
    raw = graph()
    node = raw["@graph"][0]
    node["http://purl.org/ctdl/terms/keyword"] = [{"en-US": "welding"}]
    node["@type"] = "http://purl.org/ctdl/terms/Certification"
    doc = parse(raw, base_uri=BASE)
    assert doc.main is not None
    assert doc.main["@type"] == "ceterms:Certification"
    assert doc.main["ceterms:keyword"] == [{"en-US": "welding"}]
    assert all(p.severity is Severity.INFO for p in doc.problems)


def test_schema_value_profile_variant_is_normalized() -> None:
    raw = graph()
    raw["@graph"][0]["ceterms:creditValue"] = [{"@type": "schema:ValueProfile", "schema:value": 3}]
    doc = parse(raw, base_uri=BASE)
    assert doc.main is not None
    assert doc.main["ceterms:creditValue"][0]["@type"] == "ceterms:ValueProfile"
    assert "type-normalized" in codes(doc)


def test_upper_case_ctid_is_lowered_with_an_info() -> None:
    ctid = new_ctid()
    raw = graph(ctid)
    raw["@graph"][0]["ceterms:ctid"] = "ce-" + ctid[3:].upper()
    doc = parse(raw, base_uri=BASE)
    assert doc.ctid == ctid and codes(doc) == ["ctid-normalized"]


def test_envelope_and_main_node_must_agree() -> None:
    raw = graph()
    raw["@id"] = f"{BASE}/graph/{new_ctid()}"
    doc = parse(raw, base_uri=BASE)
    # the named node is absent, so the first node with a CTID is the main node, and they disagree
    assert codes(doc) == ["graph-ctid-mismatch"]


@pytest.mark.parametrize("raw, code", [
    (b"{", "malformed-json"),
    (b'"text"', "not-a-json-ld-object"),
    (b'{"@context": "https://credreg.net/ctdl/schema/context/json", "@graph": 3}',
     "malformed-graph"),
    (b'{"@context": 5, "@graph": []}', "malformed-context"),
])
def test_malformed_documents(raw: bytes, code: str) -> None:
    assert codes(parse(raw, base_uri=BASE)) == [code]


def test_ctid_as_a_value_object_is_read_as_the_same_literal() -> None:
    ctid = new_ctid()
    raw = graph(ctid)
    raw["@graph"][0]["ceterms:ctid"] = {"@value": ctid}
    assert parse(raw, base_uri=BASE).ctid == ctid


def test_absurd_nesting_does_not_crash_the_parser() -> None:
    raw = graph()
    node = raw["@graph"][0]
    for _ in range(900):
        child = {"@type": "ceterms:CostProfile"}
        node["ceterms:estimatedCost"] = [child]
        node = child
    doc = parse(raw, base_uri=BASE)
    assert doc.ctid is not None  # the validator reports too-deep; the parser just survives


def test_locale_style_language_keys_are_read_as_language_tags() -> None:
    raw = graph()
    raw["@graph"][0]["ceterms:name"] = {"en_US": "Welding"}
    doc = parse(raw, base_uri=BASE)
    assert doc.main is not None and doc.main["ceterms:name"] == {"en-US": "Welding"}
    assert codes(doc) == ["language-normalized"]
