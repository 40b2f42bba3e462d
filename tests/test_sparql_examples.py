"""Every query in docs/sparql-examples.md, run through /sparql against a generated corpus, with its
answer checked against one computed independently in Python from the corpus JSON; against the
embedded store and against a real Virtuoso 7 (the session's server from conftest.py)."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from registry.service import Registry
from registry.sources import iter_sources
from tests.conftest import ROOT, SHARED, need_shared

DOC = ROOT / "docs" / "sparql-examples.md"
CT = "https://purl.org/ctdl/terms/"
DATE = "2025-01-01"
HEALTHCARE = ("29-", "31-")
# Big enough that every question has a non-empty answer (4 lists; 6 credentials answer question 4).
DOCS, SEED = 2000, 2

Row = tuple[Any, ...]


def examples() -> list[tuple[str, str, str]]:
    """(id, title, query) for each ```sparql block of the document."""
    text = DOC.read_text()
    found = []
    for match in re.finditer(r"^## (.+?)\n(.*?)```sparql\n(.*?)```", text, re.MULTILINE | re.DOTALL):
        query = match.group(3)
        ident = re.match(r"# id: (\S+)", query)
        assert ident, f"the query under {match.group(1)!r} has no '# id:' line"
        found.append((ident.group(1), match.group(1), query))
    return found


# --- the corpus, read as JSON -------------------------------------------------------------------
@dataclass
class Corpus:
    names: dict[str, str] = field(default_factory=dict)  # IRI -> English name
    types: dict[str, str] = field(default_factory=dict)  # main node IRI -> type IRI
    soc: dict[str, list[str]] = field(default_factory=dict)  # credential -> SOC codes
    naics: dict[str, list[str]] = field(default_factory=dict)
    accredited_by: dict[str, list[str]] = field(default_factory=dict)
    approved_by: dict[str, list[str]] = field(default_factory=dict)
    prepares: set[tuple[str, str]] = field(default_factory=set)  # (earlier, next)
    tvps: list[dict[str, Any]] = field(default_factory=list)  # {id, owner, from, credits, end}
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # list -> members

    def active(self, member: dict[str, Any]) -> bool:
        return bool(member["start"] <= DATE and (member["end"] is None or member["end"] > DATE))

    def best_credits(self) -> dict[str, float]:
        best: dict[str, float] = {}
        for tvp in self.tvps:
            for cred in tvp["from"]:
                best[cred] = max(best.get(cred, tvp["credits"]), tvp["credits"])
        return best

    def listed(self) -> set[str]:
        return {m["cred"] for members in self.lists.values() for m in members}


def _en(value: Any) -> str:
    return str(value["en-US"]) if isinstance(value, dict) else str(value)


def read_corpus(path: Path) -> Corpus:
    c = Corpus()
    for line in path.read_bytes().splitlines():
        nodes = orjson.loads(line)["@graph"]
        main = nodes[0]
        iri, type_ = main["@id"], main["@type"].split(":", 1)[1]
        c.types[iri] = CT + type_
        c.names[iri] = _en(main["ceterms:name"])
        if type_ == "TransferValueProfile":
            c.tvps.append({"id": iri, "owner": main["ceterms:ownedBy"][0], "from": main["ceterms:transferValueFrom"],
                           "credits": float(main["ceterms:transferValue"][0]["schema:value"]),
                           "end": main.get("ceterms:endDate")})
        elif type_ == "Collection":
            c.lists[iri] = [{"cred": n["ceterms:proxyFor"], "start": n["ceterms:startDate"],
                             "end": n.get("ceterms:endDate")} for n in nodes[1:]
                            if n.get("@type") == "ceterms:CollectionMember"]
        elif "ceterms:occupationType" in main:
            c.soc[iri] = [o["ceterms:codedNotation"] for o in main["ceterms:occupationType"]]
            c.naics[iri] = [o["ceterms:codedNotation"] for o in main.get("ceterms:industryType", [])]
            c.accredited_by[iri] = main.get("ceterms:accreditedBy", [])
            c.approved_by[iri] = main.get("ceterms:approvedBy", [])
            for condition in main.get("ceterms:preparationFrom", []):
                for earlier in condition["ceterms:targetCredential"]:
                    c.prepares.add((earlier, iri))
    return c


# --- ground truth, one function per question ------------------------------------------------------
def t_list_sizes(c: Corpus) -> list[Row]:
    return [(lst, c.names[lst], len({m["cred"] for m in ms}), len({m["cred"] for m in ms if c.active(m)}))
            for lst, ms in c.lists.items()]


def _by_year(c: Corpus, key: str) -> list[Row]:
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for lst, members in c.lists.items():
        for m in members:
            if m[key]:
                out[(c.names[lst], int(m[key][:4]))].add(m["cred"])
    return [(name, year, len(creds)) for (name, year), creds in out.items()]


def t_two_lists(c: Corpus) -> list[Row]:
    lists_of: dict[str, set[str]] = defaultdict(set)
    for lst, members in c.lists.items():
        for m in members:
            if c.active(m):
                lists_of[m["cred"]].add(lst)
    best = c.best_credits()
    return [(cred, len(lists), best[cred]) for cred, lists in lists_of.items()
            if len(lists) >= 2 and best.get(cred, 0) >= 15
            and any(code.startswith(HEALTHCARE) for code in c.soc.get(cred, []))]


def t_by_group(c: Corpus) -> list[Row]:
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for lst, members in c.lists.items():
        for m in members:
            if c.active(m):
                for code in c.soc[m["cred"]]:
                    out[(c.names[lst], code[:2])].add(m["cred"])
    return [(name, group, len(creds)) for (name, group), creds in out.items()]


def t_credit_by_college(c: Corpus) -> list[Row]:
    credits: dict[str, list[float]] = defaultdict(list)
    creds: dict[str, set[str]] = defaultdict(set)
    for tvp in c.tvps:
        for cred in tvp["from"]:
            credits[tvp["owner"]].append(tvp["credits"])
            creds[tvp["owner"]].add(cred)
    return [(college, c.names[college], len(creds[college]), sum(v) / len(v), max(v))
            for college, v in credits.items()]


def t_funding_tiers(c: Corpus) -> list[Row]:
    best = c.best_credits()
    out: dict[tuple[str, str], int] = defaultdict(int)
    for lst, members in c.lists.items():
        for cred in {m["cred"] for m in members if c.active(m)}:
            b = best.get(cred)
            tier = "none" if b is None else "1-14" if b < 15 else "15-29" if b < 30 else "30+"
            out[(c.names[lst], tier)] += 1
    return [(name, tier, n) for (name, tier), n in out.items()]


def t_qa_by_list(c: Corpus) -> list[Row]:
    rows = []
    for lst, members in c.lists.items():
        creds = {m["cred"] for m in members if c.active(m)}
        rows.append((c.names[lst], len(creds), sum(1 for x in creds if c.accredited_by[x]),
                     sum(1 for x in creds if c.approved_by[x])))
    return rows


def t_accrediting(c: Corpus) -> list[Row]:
    creds: dict[str, set[str]] = defaultdict(set)
    for cred, bodies in c.accredited_by.items():
        for qa in bodies:
            creds[qa].add(cred)
    listed = c.listed()
    return [(qa, c.names[qa], len(cs), len(cs & listed)) for qa, cs in creds.items()]


def t_industries(c: Corpus) -> list[Row]:
    creds: dict[str, set[str]] = defaultdict(set)
    for cred, codes in c.naics.items():
        for code in codes:
            creds[code[:2]].add(cred)
    listed = c.listed()
    return [(sector, len(cs), len(cs & listed)) for sector, cs in creds.items()]


def t_stacks(c: Corpus) -> list[Row]:
    following: dict[str, set[str]] = defaultdict(set)
    for earlier, later in c.prepares:
        following[earlier].add(later)
    out = []
    for first, seconds in following.items():
        thirds = {t for s in seconds for t in following.get(s, ())}
        if thirds:
            out.append((first, len(thirds)))
    return out


def t_next_steps(c: Corpus) -> list[Row]:
    best = c.best_credits()
    listed = c.listed()
    return [(earlier, later, best.get(later)) for earlier, later in c.prepares if earlier in listed]


def t_credit_after_removal(c: Corpus) -> list[Row]:
    return [(c.names[lst], m["cred"], m["end"], tvp["id"], tvp["end"])
            for lst, members in c.lists.items() for m in members if m["end"]
            for tvp in c.tvps if m["cred"] in tvp["from"] and tvp["end"] and tvp["end"] > m["end"]]


def t_records_by_type(c: Corpus, registry: Registry) -> list[Row]:
    counts: dict[str, int] = defaultdict(int)
    for type_ in c.types.values():
        counts[type_] += 1
    modified: dict[str, str] = {}
    for record in registry.store.iter_current():  # modification times exist only in the registry
        type_ = CT + record.type.split(":", 1)[1]
        modified[type_] = max(modified.get(type_, ""), record.modified)
    return [(type_, n, modified[type_]) for type_, n in counts.items()]


def t_record_count_by_type(c: Corpus) -> list[Row]:
    counts: dict[str, int] = defaultdict(int)
    for type_ in c.types.values():
        counts[type_] += 1
    return list(counts.items())


TRUTH: dict[str, Callable[..., list[Row]]] = {
    "list-sizes": t_list_sizes,
    "removals-by-year": lambda c: _by_year(c, "end"),
    "additions-by-year": lambda c: _by_year(c, "start"),
    "two-lists-credit-healthcare": t_two_lists,
    "approved-by-occupation-group": t_by_group,
    "credit-by-college": t_credit_by_college,
    "funding-tiers": t_funding_tiers,
    "quality-assurance-by-list": t_qa_by_list,
    "accrediting-bodies": t_accrediting,
    "industries": t_industries,
    "three-step-stacks": t_stacks,
    "next-steps-with-credit": t_next_steps,
    "credit-after-removal": t_credit_after_removal,
    "records-by-type": t_records_by_type,
    "record-count-by-type": t_record_count_by_type,
}


# --- running them -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_shared(SHARED / "tools" / "ctdl_corpus.py")
    path = tmp_path_factory.mktemp("corpus") / f"corpus-{DOCS}-{SEED}.jsonl"
    subprocess.run([sys.executable, str(SHARED / "tools" / "ctdl_corpus.py"), "--docs", str(DOCS), "--seed",
                    str(SEED), "--out", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module", params=["embedded", "virtuoso"])
def research(request: pytest.FixtureRequest, corpus_path: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Registry]]:
    """The corpus loaded once per backend: the embedded store, and Virtuoso (the session's server,
    emptied first; skipped when it is not installed). Same questions, same expected answers."""
    from registry.rdfstore import open_triple_store
    from registry.rdfstore.projection import RdfProjection

    rdf_url = request.getfixturevalue("virtuoso_server") if request.param == "virtuoso" else ""
    settings = Settings(data_dir=tmp_path_factory.mktemp("research"), durable=False, rdf_url=rdf_url)
    store = open_triple_store(settings)
    store.reset()  # a shared server may hold another test's graphs
    registry = Registry(settings, projections=[RdfProjection(store, settings.base_uri)])
    counts = registry.import_many(iter_sources([corpus_path]), lambda *a: None)
    assert counts["rejected"] == 0
    with TestClient(create_app(registry), raise_server_exceptions=False) as client:
        yield client, registry
    registry.close()


def _key(row: Row) -> str:
    return repr(tuple(round(v, 2) if isinstance(v, float) else v for v in row))


def _norm(value: Any) -> Any:
    if value is None:
        return None
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        pass
    try:  # xsd:dateTime in its canonical form drops trailing zeros of the fraction
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
    except ValueError:
        return str(value)


def test_the_document_has_at_least_ten_questions_each_with_ground_truth() -> None:
    ids = [ident for ident, _, _ in examples()]
    assert len(ids) >= 10 and len(set(ids)) == len(ids)
    assert set(ids) == set(TRUTH)


@pytest.mark.parametrize(("ident", "title", "query"), examples(), ids=[e[0] for e in examples()])
def test_each_example_answers_its_question(research: tuple[TestClient, Registry], corpus_path: Path,
                                           ident: str, title: str, query: str) -> None:
    client, registry = research
    response = client.post("/sparql", content=query.encode(),
                           headers={"Content-Type": "application/sparql-query",
                                    "Accept": "application/sparql-results+json"})
    assert response.status_code == 200, response.text
    body = response.json()
    names = body["head"]["vars"]
    got = sorted((tuple(_norm(b.get(v, {}).get("value")) for v in names) for b in body["results"]["bindings"]),
                 key=_key)
    corpus = _corpus(corpus_path)
    truth = TRUTH[ident]
    expected_rows = truth(corpus, registry) if ident == "records-by-type" else truth(corpus)
    expected = sorted((tuple(_norm(x) for x in row) for row in expected_rows), key=_key)
    assert expected, f"the corpus gives no answer to {title!r}: the check would prove nothing"
    assert len(got) == len(expected)
    for got_row, expected_row in zip(got, expected, strict=True):  # AVG of xsd:float is single precision
        assert len(got_row) == len(expected_row)
        for a, b in zip(got_row, expected_row, strict=True):
            assert a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-5)), \
                (got_row, expected_row)


_CORPORA: dict[Path, Corpus] = {}


def _corpus(path: Path) -> Corpus:
    if path not in _CORPORA:
        _CORPORA[path] = read_corpus(path)
    return _CORPORA[path]
