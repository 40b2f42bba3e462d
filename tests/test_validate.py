"""Validation of CTDL graph documents: each problem code, the reference validator's cases, real
published samples and a generated corpus. Documents are built with the real parser."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ctdl import schema
from ctdl.document import Document, parse
from ctdl.problems import Problem, Severity
from ctdl.validate import validate

BASE = "https://registry.example.org"
CTX = "https://credreg.net/ctdl/schema/context/json"
ASN_CTX = "https://credreg.net/ctdlasn/schema/context/json"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "data" / "ctdl-samples"
CORPUS_TOOL = SHARED / "tools" / "ctdl_corpus.py"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "problems.md"

CTID = "ce-59e8d15f-7895-4346-a5a8-7a0739a3d344"
ORG_CTID = "ce-79298677-d0e4-4799-853a-a633d9071826"
OTHER_CTID = "ce-d9a8ddae-ea6e-4f69-9c36-3f51a3104a0e"
THIRD_CTID = "ce-b4da9602-bb7a-4ddc-9426-f119482e32a9"


def res(ctid: str) -> str:
    return f"https://credentialengineregistry.org/resources/{ctid}"


# -- helpers -----------------------------------------------------------------------------------

def doc(raw: dict[str, Any] | bytes) -> Document:
    return parse(copy.deepcopy(raw) if isinstance(raw, dict) else raw, base_uri=BASE)


def problems(raw: dict[str, Any] | bytes, **limits: int) -> list[Problem]:
    return validate(doc(raw), **limits)


def codes(found: list[Problem], severity: Severity | None = None) -> set[str]:
    return {p.code for p in found if severity is None or p.severity is severity}


def errors(found: list[Problem]) -> list[Problem]:
    return [p for p in found if p.severity is Severity.ERROR]


def credential(**props: Any) -> dict[str, Any]:
    """A clean single-node credential; keyword arguments add properties (None removes one).

    Keyword names use `__` for the prefix colon: ceterms__ownedBy is ceterms:ownedBy."""
    node: dict[str, Any] = {
        "@context": CTX,
        "@id": res(CTID),
        "@type": "ceterms:Certification",
        "ceterms:ctid": CTID,
        "ceterms:name": {"en-US": "Welding Certification"},
        "ceterms:description": {"en-US": "Certifies structural welding skills."},
        "ceterms:subjectWebpage": "https://example.edu/welding",
        "ceterms:ownedBy": [res(ORG_CTID)],
    }
    for key, value in props.items():
        term = key.replace("__", ":")
        if value is None:
            node.pop(term, None)
        else:
            node[term] = value
    return node


def graph(*nodes: dict[str, Any], context: str = CTX) -> dict[str, Any]:
    return {"@context": context, "@id": f"https://credentialengineregistry.org/graph/{CTID}",
            "@graph": list(nodes)}


def node(ctid: str | None, type_: str, **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"@id": res(ctid) if ctid else "_:b0", "@type": type_}
    if ctid:
        out["ceterms:ctid"] = ctid
    out.update({k.replace("__", ":"): v for k, v in props.items()})
    return out


def main_credential(**props: Any) -> dict[str, Any]:
    body = {k: v for k, v in credential(**props).items() if k != "@context"}
    return body


# -- a clean document --------------------------------------------------------------------------

FULL = graph(
    main_credential(
        ceterms__inLanguage=["en-US"],
        ceterms__dateEffective="2021-06-12",
        ceterms__keyword={"en-US": ["welding", "steel"]},
        ceterms__credentialStatusType={"@type": "ceterms:CredentialAlignmentObject",
                                       "ceterms:framework": "https://credreg.net/ctdl/terms/CredentialStatus",
                                       "ceterms:targetNode": "credentialStat:Active"},
        ceterms__estimatedCost=["_:cost"],
        ceterms__hasPart=[res(OTHER_CTID)],
        ceterms__availableAt=[{"@type": "ceterms:Place", "ceterms:latitude": 41.7,
                               "ceterms:addressRegion": {"en-US": "Iowa"}}],
    ),
    {"@id": "_:cost", "@type": "ceterms:CostProfile", "ceterms:price": 120.5,
     "ceterms:currency": "USD", "ceterms:description": {"en-US": "Exam fee"}},
    node(OTHER_CTID, "ceterms:Certificate", ceterms__name={"en-US": "Part"},
         ceterms__isPartOf=[res(CTID)]),
)


def test_a_complete_clean_graph_has_no_problems() -> None:
    assert problems(FULL) == []


def test_json_ld_keywords_are_not_properties() -> None:
    raw = credential(**{"@index": "x"})
    assert codes(problems(raw)) == set()


# -- one row per problem code: a document that must produce it ---------------------------------

BARE = "b55f88e3-dfd4-430b-ab47-3e5f9986e1e4"
DEEP: dict[str, Any] = {"@type": "ceterms:ConditionProfile"}
_inner = DEEP
for _ in range(3):
    _inner["ceterms:targetCredential"] = [{"@type": "ceterms:Certification"}]
    _inner = _inner["ceterms:targetCredential"][0]

CASES: list[tuple[str, dict[str, Any], dict[str, int], str, Severity, str]] = [
    # id, document, limits, code, severity, pointer
    ("missing ctid", credential(ceterms__ctid=None), {},
     "missing-ctid", Severity.ERROR, ""),
    ("bare uuid ctid", credential(ceterms__ctid=BARE), {},
     "invalid-ctid", Severity.ERROR, "/ceterms:ctid"),
    ("language tag with a space", credential(ceterms__name={"e n": "Welding"}), {},
     "invalid-language-tag", Severity.ERROR, "/ceterms:name/e n"),
    ("iri with a character rdf forbids", credential(ceterms__subjectWebpage="https://example.org/a<b>"), {},
     "expected-iri", Severity.ERROR, "/ceterms:subjectWebpage"),
    ("malformed ctid", credential(ceterms__ctid="ce-1234"), {},
     "invalid-ctid", Severity.ERROR, "/ceterms:ctid"),
    ("ctid not a string", credential(ceterms__ctid={"en-US": CTID}), {},
     "invalid-ctid", Severity.ERROR, "/ceterms:ctid"),
    ("unknown type", credential(**{"@type": "ceterms:Certfication"}), {},
     "unknown-type", Severity.ERROR, "/@type"),
    ("missing type in @graph", graph(main_credential(), {"@id": "_:b0", "ceterms:name": "x"}), {},
     "missing-type", Severity.ERROR, "/@graph/1"),
    ("missing type nested", credential(ceterms__ownedBy=[{"ceterms:name": {"en-US": "Org"}}]), {},
     "missing-type", Severity.ERROR, "/ceterms:ownedBy/0"),
    ("unknown property", credential(ceterms__nmae={"en-US": "x"}), {},
     "unknown-property", Severity.ERROR, "/ceterms:nmae"),
    ("context inside a node",
     credential(ceterms__ownedBy=[{"@context": {"ceterms": "http://example.org/not-ctdl/"},
                                   "@type": "ceterms:CredentialOrganization", "ceterms:name": {"en-US": "Org"}}]), {},
     "nested-context", Severity.ERROR, "/ceterms:ownedBy/0/@context"),
    ("unknown property nested",
     credential(ceterms__ownedBy=[{"@type": "ceterms:CredentialOrganization", "ceterms:nmae": "x"}]),
     {}, "unknown-property", Severity.ERROR, "/ceterms:ownedBy/0/ceterms:nmae"),
    ("text where an IRI is required", credential(ceterms__ownedBy=["Acme College"]), {},
     "expected-iri", Severity.ERROR, "/ceterms:ownedBy/0"),
    ("IRI with a space", credential(ceterms__subjectWebpage="https://example.edu/a page"), {},
     "expected-iri", Severity.ERROR, "/ceterms:subjectWebpage"),
    ("language map where an IRI is required",
     credential(ceterms__subjectWebpage={"en-US": "https://example.edu"}), {},
     "expected-iri", Severity.ERROR, "/ceterms:subjectWebpage"),
    ("number where an IRI is required", credential(ceterms__ownedBy=[42]), {},
     "expected-iri", Severity.ERROR, "/ceterms:ownedBy/0"),
    ("value object where an IRI is required",
     credential(ceterms__ownedBy=[{"@value": "https://example.org"}]), {},
     "expected-iri", Severity.ERROR, "/ceterms:ownedBy/0"),
    ("bare scheme name as framework", credential(ceterms__credentialStatusType={
        "@type": "ceterms:CredentialAlignmentObject", "ceterms:framework": "CredentialStatus"}), {},
     "expected-iri", Severity.ERROR, "/ceterms:credentialStatusType/ceterms:framework"),
    ("reference where text is required", credential(ceterms__name={"@id": res(ORG_CTID)}), {},
     "expected-literal", Severity.ERROR, "/ceterms:name"),
    ("node where text is required", credential(ceterms__description=[
        {"@type": "ceterms:CredentialOrganization", "ceterms:name": "x"}]), {},
     "expected-literal", Severity.ERROR, "/ceterms:description/0"),
    ("reference where a date is required",
     credential(ceterms__dateEffective={"@id": "https://example.org/d"}), {},
     "expected-literal", Severity.ERROR, "/ceterms:dateEffective"),
    ("language map where a plain literal is required",
     credential(ceterms__dateEffective={"en-US": "2021-01-01"}), {},
     "expected-literal", Severity.ERROR, "/ceterms:dateEffective"),
    ("non-text in a language map", credential(ceterms__name={"en-US": {"x": 1}}), {},
     "expected-literal", Severity.ERROR, "/ceterms:name/en-US"),
    ("blank node not in the graph", credential(ceterms__ownedBy=["_:nowhere"]), {},
     "unresolved-blank-node", Severity.ERROR, "/ceterms:ownedBy/0"),
    ("blank node reference object", credential(ceterms__ownedBy=[{"@id": "_:nowhere"}]), {},
     "unresolved-blank-node", Severity.ERROR, "/ceterms:ownedBy/0/@id"),
    ("duplicate @id", graph(main_credential(), node(OTHER_CTID, "ceterms:Course"),
                            node(OTHER_CTID, "ceterms:Course")), {},
     "duplicate-node-id", Severity.ERROR, "/@graph/2/@id"),
    ("too many nodes in @graph", graph(main_credential(), node(OTHER_CTID, "ceterms:Course"),
                                       node(THIRD_CTID, "ceterms:Course")), {"max_nodes": 2},
     "too-many-nodes", Severity.ERROR, "/@graph"),
    ("too many nodes nested", credential(ceterms__availableAt=[
        {"@type": "ceterms:Place"}, {"@type": "ceterms:Place"}]), {"max_nodes": 2},
     "too-many-nodes", Severity.ERROR, "/ceterms:availableAt/1"),
    ("too deep", credential(ceterms__requires=[DEEP]), {"max_depth": 3},
     "too-deep", Severity.ERROR,
     "/ceterms:requires/0/ceterms:targetCredential/0/ceterms:targetCredential/0"),
    ("property outside its domain", credential(ceterms__agentType=[]), {},
     "domain-mismatch", Severity.WARNING, "/ceterms:agentType"),
    ("reference to a node of the wrong class",
     graph(main_credential(ceterms__ownedBy=[res(OTHER_CTID)]),
           node(OTHER_CTID, "ceterms:Course", ceterms__name={"en-US": "A course"})), {},
     "range-mismatch", Severity.WARNING, "/@graph/0/ceterms:ownedBy/0"),
    ("embedded node of the wrong class", credential(ceterms__ownedBy=[
        {"@type": "ceterms:Course", "ceterms:name": {"en-US": "A course"}}]), {},
     "range-mismatch", Severity.WARNING, "/ceterms:ownedBy/0"),
    ("blank node of the wrong class",
     graph(main_credential(ceterms__ownedBy=["_:c"]),
           {"@id": "_:c", "@type": "ceterms:Course", "ceterms:name": {"en-US": "A course"}}), {},
     "range-mismatch", Severity.WARNING, "/@graph/0/ceterms:ownedBy/0"),
    ("hasPart without the matching isPartOf",
     graph(main_credential(ceterms__hasPart=[res(OTHER_CTID)]),
           node(OTHER_CTID, "ceterms:Certificate", ceterms__isPartOf=[res(THIRD_CTID)])), {},
     "inverse-mismatch", Severity.WARNING, "/@graph/1/ceterms:isPartOf"),
    ("isPreparationFor through a condition profile",
     graph(main_credential(ceterms__isPreparationFor=[res(OTHER_CTID)]),
           node(OTHER_CTID, "ceterms:Certificate", ceterms__preparationFrom=[
               {"@type": "ceterms:ConditionProfile",
                "ceterms:targetCredential": [res(THIRD_CTID)]}])), {},
     "inverse-mismatch", Severity.WARNING, "/@graph/1/ceterms:preparationFrom"),
    ("version 1 uuid", credential(ceterms__ctid="ce-59e8d15f-7895-1346-a5a8-7a0739a3d344"), {},
     "ctid-not-uuid4", Severity.WARNING, "/ceterms:ctid"),
    ("no subject webpage", credential(ceterms__subjectWebpage=None), {},
     "missing-recommended", Severity.WARNING, ""),
    ("no name", credential(ceterms__name=None), {},
     "missing-recommended", Severity.WARNING, ""),
    ("no owner", credential(ceterms__ownedBy=None), {},
     "missing-policy-property", Severity.INFO, ""),
    ("no description", credential(ceterms__description=None), {},
     "missing-policy-property", Severity.INFO, ""),
]


@pytest.mark.parametrize(("raw", "limits", "code", "severity", "ptr"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_each_problem_code(raw: dict[str, Any], limits: dict[str, int], code: str,
                           severity: Severity, ptr: str) -> None:
    found = [p for p in problems(raw, **limits) if p.code == code]
    assert found, f"expected {code}"
    assert {p.severity for p in found} == {severity}
    assert ptr in {p.pointer for p in found}


@pytest.mark.parametrize("code", sorted({c[3] for c in CASES}))
def test_each_code_is_documented(code: str) -> None:
    assert f"| `{code}` |" in DOCS.read_text(encoding="utf-8")


def test_every_code_the_validator_emits_has_a_case() -> None:
    source = (Path(__file__).resolve().parents[1] / "ctdl" / "validate.py").read_text()
    emitted = set(re.findall(r'_(?:error|warning)\(\s*"([a-z0-9-]+)"', source))
    emitted |= {"missing-recommended", "missing-policy-property"}
    assert emitted == {c[3] for c in CASES}


# -- messages, pointers and labels -------------------------------------------------------------

def test_bare_uuid_message_suggests_the_ce_form() -> None:
    (p,) = [p for p in problems(credential(ceterms__ctid=BARE)) if p.code == "invalid-ctid"]
    assert f"ce-{BARE}" in p.message
    assert (p.node, p.property) == (res(CTID), "ceterms:ctid")


def test_domain_message_names_the_term_the_class_and_the_domain() -> None:
    raw = graph(main_credential(),
                node(None, "ceterms:Organization", ceterms__isPartOf=[res(CTID)]))
    (p,) = [p for p in problems(raw) if p.code == "domain-mismatch"]
    assert p.message.startswith("ceterms:isPartOf is not expected on a ceterms:Organization")
    assert "ceterms:Credential" in p.message
    assert (p.pointer, p.node, p.property) == ("/@graph/1/ceterms:isPartOf", "_:b0",
                                               "ceterms:isPartOf")


def test_subclasses_are_in_their_ancestors_domain() -> None:
    # ceterms:ownedBy lists ceterms:Credential; an associate degree is one, two levels down.
    assert problems(credential(**{"@type": "ceterms:AssociateOfArtsDegree"})) == []


def test_pointers_follow_the_document_as_received() -> None:
    raw = graph(main_credential(),
                node(OTHER_CTID, "ceterms:Course", ceterms__ownedBy=[
                    res(ORG_CTID), {"@type": "ceterms:CredentialOrganization",
                                    "ceterms:subjectWebpage": "not an iri"}]))
    (p,) = [p for p in problems(raw) if p.code == "expected-iri"]
    assert p.pointer == "/@graph/1/ceterms:ownedBy/1/ceterms:subjectWebpage"
    assert p.property == "ceterms:subjectWebpage"


def test_pointer_segments_are_escaped() -> None:
    raw = credential(**{"ceterms:a/b~c": "x"})
    (p,) = problems(raw)
    assert p.pointer == "/ceterms:a~1b~0c"


def test_ctid_may_be_a_string_value_object() -> None:
    # JSON-LD compacted from RDF writes an untyped literal this way; the parser unwraps it.
    assert problems(credential(ceterms__ctid={"@value": CTID})) == []
    (p,) = problems(credential(ceterms__ctid={"@value": BARE}))
    assert (p.code, p.pointer) == ("invalid-ctid", "/ceterms:ctid")


def test_plain_strings_are_accepted_for_language_tagged_text() -> None:
    # JSON-LD reads them as strings without a language; older publishers send them.
    assert problems(credential(ceterms__name="Welding", ceterms__keyword=["a", "b"])) == []


def test_compact_iris_and_blank_nodes_are_iris() -> None:
    raw = graph(main_credential(ceterms__ownedBy=["_:org", "ceterms:SomeTerm"]),
                {"@id": "_:org", "@type": "ceterms:CredentialOrganization"})
    assert codes(problems(raw), Severity.ERROR) == set()


def test_alignment_objects_stand_for_concepts() -> None:
    raw = credential(ceterms__requires=[{"@type": "ceterms:ConditionProfile", "ceterms:creditValue": [
        {"@type": "ceterms:ValueProfile", "ceterms:creditUnitType": [
            {"@type": "ceterms:CredentialAlignmentObject", "ceterms:targetNode": "creditUnit:Hour"}]}]}])
    assert problems(raw) == []


def test_competencies_must_be_part_of_the_framework_of_their_graph() -> None:
    framework = "ce-177f4c85-4efe-401d-acdd-1ea4adeeaf37"
    raw = graph({"@id": res(framework), "@type": "ceasn:CompetencyFramework",
                 "ceterms:ctid": framework, "ceasn:name": {"en-US": "F"}},
                node(OTHER_CTID, "ceasn:Competency", ceasn__competencyText={"en-US": "x"},
                     ceasn__isPartOf=res(THIRD_CTID)), context=ASN_CTX)
    raw["@id"] = f"https://credentialengineregistry.org/graph/{framework}"
    (p,) = [p for p in problems(raw) if p.code == "inverse-mismatch"]
    assert p.node == res(OTHER_CTID)
    assert p.pointer == "/@graph/1/ceasn:isPartOf"


@pytest.mark.parametrize("wrap", [
    lambda inner: [{"@type": "ceterms:ConditionProfile", "ceterms:targetCredential": inner}],
    lambda inner: {"@list": [inner]},
    lambda inner: [inner],
], ids=["nodes", "@list", "lists"])
def test_hostile_nesting_is_cut_at_the_depth_limit(wrap: Any) -> None:
    value: Any = [res(OTHER_CTID)]
    for _ in range(900):  # near the JSON parser's own limit, beyond Python's recursion limit
        value = wrap(value)
    node = main_credential(ceterms__requires=value, ceterms__hasPart=value)
    # Built directly: copying or serializing such a document would itself exceed the limit.
    hostile = Document({"@context": CTX, "@graph": [node]}, CTID, 0, [""], [])
    assert "too-deep" in codes(validate(hostile))


def test_empty_graph_has_nothing_to_validate() -> None:
    assert problems({"@context": CTX, "@graph": []}) == []


# -- the reference validator's cases (ChelseaKR/ctdl-validate fixtures) ------------------------

NO_ERRORS = "accepted"
CLEAN = "clean"
VALIDATION_CASES: dict[str, tuple[str, ...]] = {
    # file stem -> expected: CLEAN, NO_ERRORS, or (severity, code)
    "clean_empty_graph": (CLEAN,),
    "clean_framework": (CLEAN,),
    "clean_single_entity": (CLEAN,),
    "bug_class_250_bare_uuid_for_ctid": ("error", "invalid-ctid"),
    "owner_with_a_bare_uuid_ctid": ("error", "invalid-ctid"),
    "unresolved_bnode": ("error", "unresolved-blank-node"),
    "domain_violation": ("warning", "domain-mismatch"),
    "inverse_mismatch": ("warning", "inverse-mismatch"),
    "bug_class_252_wrong_framework_identifier": ("warning", "inverse-mismatch"),
    "ctid_warnings": ("warning", "ctid-not-uuid4"),
    "external_reference": (NO_ERRORS,),
    "framework_only": (NO_ERRORS,),
    "competency_only": (NO_ERRORS,),
    "owner_organization": (NO_ERRORS,),
    "owner_is_not_an_organization": (NO_ERRORS,),
}


def sample_files(folder: str) -> list[Path]:
    return sorted((SAMPLES / folder).glob("*.json")) if (SAMPLES / folder).is_dir() else []


def read_sample(path: Path) -> bytes:
    return path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # some samples carry a UTF-8 BOM


requires_samples = pytest.mark.skipif(not SAMPLES.is_dir(),
                                      reason=f"CTDL samples not found at {SAMPLES}")


@requires_samples
def test_every_validation_case_has_an_expectation() -> None:
    assert {p.stem for p in sample_files("validation-cases")} == set(VALIDATION_CASES)


@requires_samples
@pytest.mark.parametrize("stem", sorted(VALIDATION_CASES))
def test_validation_case(stem: str) -> None:
    path = SAMPLES / "validation-cases" / f"{stem}.json"
    found = validate(doc(read_sample(path)))
    expected = VALIDATION_CASES[stem]
    if expected[0] == CLEAN:
        assert codes(found, Severity.ERROR) | codes(found, Severity.WARNING) == set()
    elif expected[0] == NO_ERRORS:
        assert errors(found) == []
    else:
        assert expected[1] in codes(found, Severity(expected[0]))
        if expected[0] == "warning":
            assert errors(found) == []


@requires_samples
def test_wrong_framework_identifier_names_the_competencies() -> None:
    path = SAMPLES / "validation-cases" / "bug_class_252_wrong_framework_identifier.json"
    found = [p for p in validate(doc(read_sample(path))) if p.code == "inverse-mismatch"]
    wrong = {res("ce-9e492574-07fc-4154-b7f2-898425f4f3a3"),
             res("ce-b4da9602-bb7a-4ddc-9426-f119482e32a9")}
    assert {p.node for p in found} == wrong
    assert all(p.node and p.node in p.message for p in found)


@requires_samples
def test_domain_violation_case_main_node_is_the_course() -> None:
    path = SAMPLES / "validation-cases" / "domain_violation.json"
    parsed = doc(read_sample(path))
    assert parsed.main_index == 1
    assert "missing-ctid" not in codes(validate(parsed))


# -- real published data is accepted -----------------------------------------------------------

# Credential Engine's registry test fixtures from before today's CTDL: shapes no current processor
# reads the same way. They are rejected, each with the precise reason (a guessed IRI for
# "urn:ctid:…" or a bare concept-scheme name would put triples in the graph the publisher never
# wrote).
LEGACY_REJECTED = {
    # an inline context of prefixes only (no CTDL context: no CTDL value types), besides urn:ctid:
    # CTIDs, bare-UUID @ids and {"@type": "@id", ...} values
    "1_valid.json": {"missing-ctdl-context"},
    "2_valid.json": {"missing-ctdl-context"},
    "2_import-2.json": {"expected-iri"},  # ceterms:framework "AgentSector"
    "3_import-2.json": {"expected-iri"},  # ceterms:framework "Delivery"
    "3_import.json": {"expected-iri"},  # ceterms:framework "CostType"
    "4_import.json": {"expected-iri"},  # ceterms:framework "AudienceLevel", bare-UUID @id
}


def real_samples() -> list[Any]:
    return [pytest.param(path, id=f"{path.parent.name}/{path.name}")
            for path in sample_files("registry-assistant") + sample_files("credential-registry")]


@requires_samples
@pytest.mark.parametrize("path", real_samples())
def test_real_samples_are_accepted_or_rejected_with_their_reasons(path: Path) -> None:
    parsed = doc(read_sample(path))
    found = errors(parsed.problems + validate(parsed))  # the whole report, as /validate gives it
    expected = LEGACY_REJECTED.get(path.name, set())
    assert {p.code for p in found} == expected, "\n".join(f"{p.pointer}: {p.message}" for p in found)
    assert all(p.pointer and p.message for p in found)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    if not CORPUS_TOOL.is_file():
        pytest.skip(f"corpus generator not found at {CORPUS_TOOL}")
    out = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    subprocess.run([sys.executable, str(CORPUS_TOOL), "--docs", "2000", "--out", str(out)],
                   check=True, capture_output=True)
    return out.read_bytes().splitlines()


def test_generated_corpus_is_accepted(corpus: list[bytes]) -> None:
    assert len(corpus) == 2000
    failures = {}
    for line in corpus:
        found = errors(validate(doc(line)))
        if found:
            failures[orjson.loads(line)["@id"]] = [f"{p.pointer}: {p.message}" for p in found]
    assert failures == {}


# -- the vocabulary ----------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "ancestors"), [
    ("ceterms:AssociateDegree", {"ceterms:Degree", "ceterms:Credential"}),
    ("ceterms:AssociateOfArtsDegree", {"ceterms:AssociateDegree", "ceterms:Degree",
                                       "ceterms:Credential"}),
    ("ceterms:CredentialOrganization", {"ceterms:Organization"}),
    ("ceterms:DigitalBadge", {"ceterms:Badge", "ceterms:Credential"}),
    ("ceasn:CompetencyFramework", {"ceterms:Collection"}),
])
def test_superclasses_are_transitive(cls: str, ancestors: set[str]) -> None:
    assert ancestors <= schema.superclasses(cls)
    assert cls not in schema.superclasses(cls)
    assert schema.lineage(cls) == schema.superclasses(cls) | {cls}


@pytest.mark.parametrize("term", ["ceterms:Credential", "ceasn:Competency", "qdata:DataSetProfile",
                                  "qdata:DataSetTimeFrame", "schema:QuantitativeValue",
                                  "ceterms:CredentialAlignmentObject"])
def test_known_classes(term: str) -> None:
    assert schema.is_class(term)


@pytest.mark.parametrize("term", ["ceterms:name", "ceasn:competencyText", "schema:value",
                                  "qdata:dataSetTimePeriod", "schema:about"])
def test_known_properties(term: str) -> None:
    assert schema.is_property(term)


@pytest.mark.parametrize(("term", "expected"), [
    ("ceterms:ownedBy", True), ("ceterms:subjectWebpage", True), ("ceterms:name", False),
    ("ceterms:dateEffective", False), ("schema:value", False), ("ceterms:medianEarnings", None),
    ("ceterms:nonexistent", None),
])
def test_expects_iri(term: str, expected: bool | None) -> None:
    assert schema.expects_iri(term) is expected


def test_domain_range_and_inverses() -> None:
    assert "ceterms:Credential" in schema.domain("ceterms:ownedBy")
    assert "ceterms:Organization" in schema.range_("ceterms:ownedBy")
    assert schema.inverse("ceterms:hasPart") == "ceterms:isPartOf"
    assert schema.inverse("ceterms:isPartOf") == "ceterms:hasPart"
    assert schema.inverse("ceterms:isPreparationFor") == "ceterms:preparationFrom"
    assert schema.is_language_map("ceterms:name")
    assert schema.is_literal_range("rdf:langString") and not schema.is_literal_range("xsd:anyURI")


def test_concepts_and_schemes_are_known() -> None:
    vocab = schema.vocabulary()
    assert "ceterms:AgentSector" in vocab.concept_schemes
    assert "agentSector:PrivateForProfit" in vocab.concepts



def test_a_node_repeating_the_ctdl_context_url_is_fine() -> None:
    raw = credential(ceterms__ownedBy=[{"@context": CTX, "@type": "ceterms:CredentialOrganization",
                                        "ceterms:name": {"en-US": "Org"}}])
    assert "nested-context" not in {p.code for p in problems(raw)}
