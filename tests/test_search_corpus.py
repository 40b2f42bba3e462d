"""Search over a generated corpus of 5,000+ graphs, checked against ground truth computed here,
independently of search/, straight from the corpus files: every filter, and every facet count with
multi-select semantics, must agree exactly."""
from __future__ import annotations

import csv
import importlib.util
import math
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from ctdl.schema import lineage
from registry.app import create_app
from registry.config import Settings
from registry.service import Registry
from search import tantivy_facets, tantivy_query
from tests.conftest import BASE, SHARED, need_shared

DOCS = 5200
TODAY = date.today()
GENERATOR = SHARED / "tools" / "ctdl_corpus.py"
ORG_TYPES = {"ceterms:CredentialOrganization", "ceterms:QACredentialOrganization"}


def _generator_states() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("ctdl_corpus", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: code for code, name in module.STATES.items()}


def _naics_sectors() -> dict[str, str]:
    with open(SHARED / "data" / "taxonomies" / "naics2022_all.csv", newline="", encoding="utf-8") as fh:
        return {row["code"]: row["naics2d"] for row in csv.DictReader(fh)}


def _ctid(iri: str) -> str:
    return iri.rsplit("/", 1)[-1]


def _months(iso: str) -> float:
    return {"P3M": 3, "P6M": 6, "P9M": 9, "P1Y": 12, "P2Y": 24, "P4Y": 48}[iso]


def _haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


@dataclass
class Truth:
    ctid: str
    type: str
    kind: str
    values: dict[str, set[str]] = field(default_factory=dict)  # term filter -> values
    points: list[tuple[float, float]] = field(default_factory=list)
    cost: float | None = None
    duration: float | None = None
    credits: float | None = None
    memberships: list[tuple[str, date, date | None]] = field(default_factory=list)


def ground_truth(graphs: list[dict[str, Any]]) -> dict[str, Truth]:
    states, sectors = _generator_states(), _naics_sectors()
    out: dict[str, Truth] = {}
    tvps: list[dict[str, Any]] = []
    for g in graphs:
        main, nodes = g["@graph"][0], {n["@id"]: n for n in g["@graph"][1:]}
        t = main["@type"]
        kind = ("organization" if t in ORG_TYPES else "transfer_value" if t == "ceterms:TransferValueProfile"
                else "collection" if t == "ceterms:Collection" else "credential")
        rec = Truth(main["ceterms:ctid"], t, kind)
        v = rec.values
        v["type"] = {c for c in lineage(t) if c.startswith("ceterms:")}  # CTDL classes only
        v["kind"] = {kind}
        v["owner"] = {_ctid(i) for i in main.get("ceterms:ownedBy", [])}
        v["qa"] = {_ctid(i) for p in ("ceterms:accreditedBy", "ceterms:approvedBy") for i in main.get(p, [])}
        socs = [a["ceterms:codedNotation"] for a in main.get("ceterms:occupationType", [])]
        v["soc"], v["soc_group"] = set(socs), {s[:2] for s in socs}
        codes = [a["ceterms:codedNotation"] for a in main.get("ceterms:industryType", [])]
        v["naics"] = {sectors[c] for c in codes} | {c[:n] for c in codes for n in range(3, len(c) + 1)}
        places = main.get("ceterms:availableAt", []) + main.get("ceterms:address", []) + [
            p for j in main.get("ceterms:jurisdiction", []) for p in j["ceterms:mainJurisdiction"]]
        v["state"] = {states[p["ceterms:addressRegion"]["en-US"]] for p in places}
        rec.points = [(p["ceterms:latitude"], p["ceterms:longitude"]) for p in places if "ceterms:latitude" in p]
        v["delivery"] = {a["ceterms:targetNode"].split(":")[1] for a in main.get("ceterms:learningDeliveryType", [])}
        status = main.get("ceterms:credentialStatusType") or main.get("ceterms:lifeCycleStatusType")
        v["status"] = {status["ceterms:targetNode"].split(":")[1]} if status else set()
        langs = main.get("ceterms:inLanguage") or list(main["ceterms:name"])
        v["lang"] = {lang.split("-")[0].lower() for lang in langs}
        v["cip"], v["audience"] = set(), set()
        prices = [nodes[b]["ceterms:price"] for b in main.get("ceterms:estimatedCost", [])]
        rec.cost = min(prices) if prices else None
        durations = [_months(d["ceterms:exactDuration"]) for d in main.get("ceterms:estimatedDuration", [])]
        rec.duration = min(durations) if durations else None
        if kind == "transfer_value":
            tvps.append(main)
        out[rec.ctid] = rec
        if kind == "collection":
            for bnode in main["ceterms:hasMember"]:
                m = nodes[bnode]
                end = date.fromisoformat(m["ceterms:endDate"]) if "ceterms:endDate" in m else None
                out.setdefault(_ctid(m["ceterms:proxyFor"]), Truth("", "", "")).memberships.append(
                    (rec.ctid, date.fromisoformat(m["ceterms:startDate"]), end))
    for tvp in tvps:
        if not date.fromisoformat(tvp["ceterms:startDate"]) <= TODAY <= date.fromisoformat(tvp["ceterms:endDate"]):
            continue
        credits = max(float(tv["schema:value"]) for tv in tvp["ceterms:transferValue"])
        for target in [tvp["ceterms:ctid"], *(_ctid(i) for i in tvp["ceterms:transferValueFrom"])]:
            rec = out[target]
            rec.credits = credits if rec.credits is None else max(rec.credits, credits)
    return out


def on_list(rec: Truth, lst: str, day: date) -> bool:
    return any(m == lst and start <= day and (end is None or day <= end) for m, start, end in rec.memberships)


RANGES: dict[str, Callable[[Truth, float], bool]] = {
    "cost_max": lambda r, b: r.cost is not None and r.cost <= b,
    "duration_max_months": lambda r, b: r.duration is not None and r.duration <= b,
    "credit_min": lambda r, b: r.credits is not None and r.credits >= b,
}
THRESHOLDS = {"cost_max": (100, 250, 500, 1000, 2500, 5000, 10000, 25000),
              "duration_max_months": (1, 3, 6, 12, 24, 48), "credit_min": (1, 3, 6, 12, 15, 24, 30)}


def matches(rec: Truth, params: dict[str, str], skip: str | None = None) -> bool:
    day = date.fromisoformat(params["list_as_of"]) if "list_as_of" in params else TODAY
    for name, raw in params.items():
        if name in (skip, "list_as_of", "radius_km", "facets", "facet_size", "limit"):
            continue
        if name == "near":
            lat, lon = map(float, raw.split(","))
            if not any(_haversine((lat, lon), p) <= float(params["radius_km"]) for p in rec.points):
                return False
        elif name in RANGES:
            if not RANGES[name](rec, float(raw)):
                return False
        elif name == "list":
            if not any(on_list(rec, lst, day) for lst in raw.split(",")):
                return False
        elif not rec.values[name] & set(raw.split(",")):
            return False
    return True


def facet_truth(records: list[Truth], params: dict[str, str], name: str, size: int) -> dict[str, int]:
    pool = [r for r in records if matches(r, params, skip=name)]
    if name in RANGES:
        return {f"{t:g}": sum(RANGES[name](r, t) for r in pool) for t in THRESHOLDS[name]}
    counts: Counter[str] = Counter()
    day = date.fromisoformat(params["list_as_of"]) if "list_as_of" in params else TODAY
    for r in pool:
        if name == "list":
            counts.update({m for m, _, _ in r.memberships if on_list(r, m, day)})
        elif name == "naics":
            counts.update(v for v in r.values["naics"] if len(v) == 2 or "-" in v)
        elif name == "cip":
            counts.update(v for v in r.values["cip"] if len(v) == 2)
        else:
            counts.update(r.values[name])
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ordered[:size])


# --- the index under test ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Truth]]]:
    need_shared(GENERATOR)
    tmp = tmp_path_factory.mktemp("corpus")
    path = tmp / "corpus.jsonl"
    subprocess.run([sys.executable, str(GENERATOR), "--docs", str(DOCS), "--seed", "17", "--out", str(path)],
                   check=True, capture_output=True)
    lines = path.read_bytes().splitlines()
    assert len(lines) >= 5000
    truth = ground_truth([orjson.loads(line) for line in lines])
    registry = Registry(Settings(data_dir=tmp / "data", base_uri=BASE, durable=False))
    counts = registry.import_many(((str(i), line) for i, line in enumerate(lines)), lambda *a: None, workers=2)
    assert counts["imported"] == len(lines)
    try:
        with TestClient(create_app(registry), base_url=BASE) as client:
            yield client, {k: v for k, v in truth.items() if v.ctid}
    finally:
        registry.close()


def total(client: TestClient, params: dict[str, str]) -> int:
    response = client.get("/search", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def all_ctids(client: TestClient, params: dict[str, str]) -> set[str]:
    out: set[str] = set()
    query: dict[str, str] = {**params, "limit": "100"}
    while True:
        body = client.get("/search", params=query).json()
        out |= {r["ctid"] for r in body["results"]}
        if not body["next"]:
            return out
        query["cursor"] = body["next"]


def cases(truth: dict[str, Truth]) -> Iterator[dict[str, str]]:
    rng = random.Random(5)
    records = list(truth.values())
    for name in ("type", "kind", "soc", "soc_group", "naics", "state", "delivery", "status", "lang", "qa", "owner"):
        values = sorted({v for r in records for v in r.values[name]})
        for value in rng.sample(values, min(len(values), 25)):
            yield {name: value}
    yield {"cip": "51"}
    yield {"audience": "BachelorsDegreeLevel"}
    for name, thresholds in THRESHOLDS.items():
        for t in (*thresholds, 0.5, 7.25):
            yield {name: f"{t:g}"}
    lists = sorted({m for r in records for m, _, _ in r.memberships})
    for lst in lists:
        for day in (None, "2019-01-01", "2022-07-01", "2025-06-30", "2025-07-01", "2030-01-01"):
            yield {"list": lst, **({"list_as_of": day} if day else {})}
    for _ in range(12):
        yield {"near": f"{rng.uniform(26, 47):.4f},{rng.uniform(-122, -72):.4f}",
               "radius_km": f"{rng.choice([25, 100, 300, 800]):g}"}
    states = sorted({v for r in records for v in r.values["state"]})
    for _ in range(25):  # combinations, OR within a field
        params = {"kind": "credential", "state": ",".join(rng.sample(states, 3)),
                  "cost_max": rng.choice(["450", "1200", "9500"]),
                  "delivery": rng.choice(["InPerson", "OnlineOnly", "InPerson,BlendedDelivery"])}
        if rng.random() < 0.5:
            params["list"] = rng.choice(lists)
        if rng.random() < 0.5:
            params["duration_max_months"] = rng.choice(["6", "12"])
        yield params


def test_every_filter_matches_ground_truth(world: tuple[TestClient, dict[str, Truth]]) -> None:
    client, truth = world
    records = list(truth.values())
    assert total(client, {}) == len(records)
    checked = 0
    for i, params in enumerate(cases(truth)):
        expected = {r.ctid for r in records if matches(r, params)}
        assert total(client, params) == len(expected), params
        if i % 4 == 0 or "near" in params or "list" in params:  # and the documents themselves
            assert all_ctids(client, params) == expected, params
        checked += 1
    assert checked >= 250


def test_text_and_near_keep_the_documents_with_the_text_within_the_radius(
        world: tuple[TestClient, dict[str, Truth]]) -> None:
    # With text, the radius check of the boundary cells' documents is done among those with the
    # text only: the result must still be the text's documents within the radius, exactly.
    client, truth = world
    rng = random.Random(11)
    found = 0
    for word in ("technician", "nursing", "certificate", "program", "welding", "nursng"):
        with_text = all_ctids(client, {"q": word})
        for _ in range(4):
            near = {"near": f"{rng.uniform(26, 47):.4f},{rng.uniform(-122, -72):.4f}",
                    "radius_km": rng.choice(["100", "300", "800"])}
            expected = {c for c in with_text if matches(truth[c], near)}
            assert all_ctids(client, {"q": word, **near}) == expected, (word, near)
            found += bool(expected)
        # The same circle without the text right after: the check done among the text's
        # documents must not stand in for it.
        assert all_ctids(client, near) == {c for c, r in truth.items() if matches(r, near)}, near
    assert found >= 6


FACETS_A = ("type", "kind", "soc", "soc_group", "naics", "cip", "state", "delivery", "audience", "status",
            "lang", "qa")
FACETS_B = ("owner", "list", "cost_max", "duration_max_months", "credit_min")


@pytest.mark.parametrize("params", [
    {},
    {"state": "OH"},
    {"kind": "credential", "state": "OH,KY,TX", "cost_max": "1200", "delivery": "InPerson"},
    {"type": "ceterms:Degree", "soc_group": "29,51", "credit_min": "3"},
    {"q": "technician"},
    {"q": "technician", "state": "OH,KY"},  # the state facet's pass is the text alone
    {"list_as_of": "2022-07-01", "kind": "credential", "duration_max_months": "12"},
    {"near": "39.76,-84.19", "radius_km": "800", "naics": "31-33"},
    {"q": "technician", "near": "39.76,-84.19", "radius_km": "800", "state": "OH,KY"},
], ids=["all", "state", "combined", "degree-soc-credit", "text", "text-state", "as-of", "near", "text-near"])
@pytest.mark.parametrize("mode", [None, "columns", "postings"])
def test_every_facet_count_matches_ground_truth(world: tuple[TestClient, dict[str, Truth]],
                                                params: dict[str, str], mode: str | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Tantivy counts a facet through its set column or through postings, picked by cost (None):
    # each way on its own must give the ground truth.
    monkeypatch.setattr(tantivy_facets, "MODE", mode)
    client, truth = world
    records = [r for r in truth.values()]
    if "q" in params:  # text matching is not re-implemented here: use the engine's result set
        keep = all_ctids(client, {"q": params["q"]})
        assert keep
        records = [r for r in records if r.ctid in keep]
    for group in (FACETS_A, FACETS_B):
        body = client.get("/search", params={**params, "facets": ",".join(group), "facet_size": "100"}).json()
        filters = {k: v for k, v in params.items() if k != "q"}
        assert body["total"] == sum(matches(r, filters) for r in records)
        for name in group:
            expected = facet_truth(records, filters, name, 100)
            assert body["facets"][name] == expected, (name, params)


@pytest.mark.parametrize("words", ["level", "nursng", "certifcate", "technican", "lvel advanced"])
def test_a_typo_branch_by_regex_finds_what_the_fuzzy_one_finds(world: tuple[TestClient, dict[str, Truth]],
                                                               words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The two plans of a word's typo branch (search/tantivy_query.py _one_edit), each forced in
    # every field: the same documents in the same order.
    client, _ = world
    params = {"q": words, "limit": "100"}
    monkeypatch.setattr(tantivy_query, "REGEX_POSTINGS_PER_LETTER", 10**12)
    fuzzy = client.get("/search", params=params).json()
    monkeypatch.setattr(tantivy_query, "REGEX_POSTINGS_PER_LETTER", 0)
    regex = client.get("/search", params=params).json()
    assert fuzzy["total"] > 0
    assert regex["total"] == fuzzy["total"]
    assert [r["ctid"] for r in regex["results"]] == [r["ctid"] for r in fuzzy["results"]]
