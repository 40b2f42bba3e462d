"""Factories for search tests: small CTDL graphs with the facts search indexes (organizations,
credentials with occupations, places, costs; lists with dated members; transfer values), and a
client bound to a chosen search backend."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from registry.service import Registry
from tests.conftest import BASE

ES_URL_ENV = "CREDREG_TEST_ELASTICSEARCH_URL"
BACKENDS = ("tantivy", "elasticsearch")


def ctid() -> str:
    return f"ce-{uuid.uuid4()}"


def ref(target: str) -> str:
    return f"{BASE}/resources/{target}"


def envelope(node: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    return {"@context": "https://credreg.net/ctdl/schema/context/json",
            "@id": f"{BASE}/graph/{node['ceterms:ctid']}", "@graph": [node, *extra]}


def place(region: str | None = None, lat: float | None = None, lon: float | None = None,
          locality: str = "Springfield", country: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": "ceterms:Place", "ceterms:addressLocality": {"en-US": locality}}
    if region:
        out["ceterms:addressRegion"] = {"en-US": region}
    if country:
        out["ceterms:addressCountry"] = {"en-US": country}
    if lat is not None and lon is not None:
        out["ceterms:latitude"], out["ceterms:longitude"] = lat, lon
    return out


def concept(node: str) -> dict[str, Any]:
    return {"@type": "ceterms:CredentialAlignmentObject", "ceterms:targetNode": node}


def organization(id_: str, name: str, *, type_: str = "ceterms:CredentialOrganization",
                 region: str | None = None, **props: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": ref(id_), "@type": type_, "ceterms:ctid": id_,
                            "ceterms:name": {"en-US": name},
                            "ceterms:description": {"en-US": f"{name}, an organization."},
                            "ceterms:subjectWebpage": "https://org.example.org/"}
    if region:
        node["ceterms:address"] = [place(region)]
    node.update(props)
    return envelope(node)


def credential(id_: str, name: str, owner: str, *, type_: str = "ceterms:Certificate",
               soc: list[tuple[str, str]] = (), naics: list[str] = (), cip: list[str] = (),
               places: list[dict[str, Any]] = (), price: float | None = None,
               currency: str = "USD", duration: str | None = None, delivery: list[str] = (),
               audience: list[str] = (), status: str | None = "Active", languages: list[str] = ("en-US",),
               description: str | None = None, keywords: list[str] = (), **props: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "@id": ref(id_), "@type": type_, "ceterms:ctid": id_, "ceterms:name": {"en-US": name},
        "ceterms:description": {"en-US": description or f"{name}: hands-on training."},
        "ceterms:subjectWebpage": f"https://cred.example.org/{id_}", "ceterms:ownedBy": [ref(owner)],
        "ceterms:offeredBy": [ref(owner)]}
    if languages:
        node["ceterms:inLanguage"] = list(languages)
    if keywords:
        node["ceterms:keyword"] = {"en-US": list(keywords)}
    if soc:
        node["ceterms:occupationType"] = [
            {"@type": "ceterms:CredentialAlignmentObject", "ceterms:codedNotation": code,
             "ceterms:targetNodeName": {"en-US": title}} for code, title in soc]
    if naics:
        node["ceterms:industryType"] = [
            {"@type": "ceterms:CredentialAlignmentObject", "ceterms:codedNotation": code} for code in naics]
    if cip:
        node["ceterms:instructionalProgramType"] = [
            {"@type": "ceterms:CredentialAlignmentObject", "ceterms:codedNotation": code} for code in cip]
    if places:
        node["ceterms:availableAt"] = list(places)
    if price is not None:
        node["ceterms:estimatedCost"] = [{"@type": "ceterms:CostProfile", "ceterms:price": price,
                                          "ceterms:currency": currency,
                                          "ceterms:description": {"en-US": "Fees"}}]
    if duration:
        node["ceterms:estimatedDuration"] = [{"@type": "ceterms:DurationProfile",
                                              "ceterms:exactDuration": duration}]
    if delivery:
        node["ceterms:learningDeliveryType"] = [concept(f"deliveryType:{d}") for d in delivery]
    if audience:
        node["ceterms:audienceLevelType"] = [concept(f"audLevel:{a}") for a in audience]
    if status:
        node["ceterms:credentialStatusType"] = concept(f"credentialStat:{status}")
    node.update(props)
    return envelope(node)


def collection(id_: str, name: str, owner: str, members: list[tuple[str, str | None, str | None]],
               region: str | None = None) -> dict[str, Any]:
    nodes, refs = [], []
    for member, start, end in members:
        bnode = f"_:{uuid.uuid4()}"
        node: dict[str, Any] = {"@id": bnode, "@type": "ceterms:CollectionMember",
                                "ceterms:proxyFor": ref(member)}
        if start:
            node["ceterms:startDate"] = start
        if end:
            node["ceterms:endDate"] = end
        nodes.append(node)
        refs.append(bnode)
    main: dict[str, Any] = {"@id": ref(id_), "@type": "ceterms:Collection", "ceterms:ctid": id_,
                            "ceterms:name": {"en-US": name}, "ceterms:ownedBy": [ref(owner)],
                            "ceterms:description": {"en-US": "A state list."}, "ceterms:hasMember": refs}
    if region:
        main["ceterms:jurisdiction"] = [{"@type": "ceterms:JurisdictionProfile",
                                         "ceterms:mainJurisdiction": [place(region)]}]
    return envelope(main, *nodes)


def transfer_value(id_: str, college: str, credential_ctid: str, credits: float,
                   start: str = "2020-07-01", end: str = "2099-06-30") -> dict[str, Any]:
    bnode = f"_:{uuid.uuid4()}"
    main = {"@id": ref(id_), "@type": "ceterms:TransferValueProfile", "ceterms:ctid": id_,
            "ceterms:name": {"en-US": f"Credit for {credential_ctid[:11]}"},
            "ceterms:description": {"en-US": "College credit."},
            "ceterms:subjectWebpage": "https://tv.example.org/", "ceterms:ownedBy": [ref(college)],
            "ceterms:startDate": start, "ceterms:endDate": end,
            "ceterms:transferValue": [{"@type": "ceterms:ValueProfile", "schema:value": credits,
                                       "ceterms:creditUnitType": [concept("creditUnit:SemesterHour")]}],
            "ceterms:transferValueFrom": [ref(credential_ctid)], "ceterms:transferValueFor": [bnode]}
    program = {"@id": bnode, "@type": "ceterms:LearningProgram",
               "ceterms:name": {"en-US": "Associate of Applied Science in Nursing"}}
    return envelope(main, program)


@dataclass
class Env:
    """A registry with a search backend, and an HTTP client on it."""

    registry: Registry
    client: TestClient
    backend: str

    def publish(self, *graphs: dict[str, Any]) -> None:
        """Publish graphs in one go (one group commit), as `credreg import` does."""
        rejected: list[str] = []
        self.registry.import_many(((g["@id"], orjson.dumps(g)) for g in graphs),
                                  lambda source, status, problems: rejected.append(source)
                                  if status == "rejected" else None, workers=1)
        assert not rejected, rejected

    def search(self, **params: Any) -> dict[str, Any]:
        response = self.client.get("/search", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def ctids(self, **params: Any) -> set[str]:
        """Every result of a search, following the cursors."""
        out: set[str] = set()
        params = {"limit": 100, **params}
        while True:
            body = self.search(**params)
            out |= {r["ctid"] for r in body["results"]}
            if not body["next"]:
                return out
            params["cursor"] = body["next"]


def search_settings(tmp: Path, backend: str) -> Settings:
    if backend == "elasticsearch":
        url = os.environ.get(ES_URL_ENV)
        if not url:
            pytest.skip(f"no Elasticsearch server: set {ES_URL_ENV} to run the conformance suite "
                        "against one (the contract tests always run)")
        return Settings(data_dir=tmp / "data", base_uri=BASE, durable=False, search_url=url,
                        search_index=f"credreg-test-{uuid.uuid4().hex[:10]}")
    return Settings(data_dir=tmp / "data", base_uri=BASE, durable=False)


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    settings = search_settings(tmp_path, request.param)
    registry = Registry(settings)
    try:
        with TestClient(create_app(registry), base_url=BASE, raise_server_exceptions=False) as client:
            yield Env(registry, client, request.param)
    finally:
        if request.param == "elasticsearch":
            _drop_indices(registry, settings.search_index)
        registry.close()


def _drop_indices(registry: Registry, alias: str) -> None:
    from search.http import find_projection

    projection = find_projection(registry)
    if projection is not None:
        es = projection.backend.es  # type: ignore[attr-defined]
        es.indices.delete(index=f"{alias}-v*", ignore_unavailable=True)
        es.indices.delete_index_template(name=f"{alias}-template")
