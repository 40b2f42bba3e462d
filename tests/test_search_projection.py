"""The search index as a projection: following the change log it ends up exactly where a rebuild
from the store does (dependency tracking is complete), a failure mid-index converges on restart,
re-applying is harmless, dated facts expire, and `credreg reindex` rebuilds."""
from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from registry.config import Settings
from registry.service import Registry
from search.http import find_projection
from search.projection import SearchProjection
from search.query import parse
from search.tantivy_backend import TantivyBackend
from search.timeline import parse_day
from tests.conftest import BASE, SHARED, need_shared
from tests.search_fixtures import credential, ctid, organization, transfer_value

GENERATOR = SHARED / "tools" / "ctdl_corpus.py"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    need_shared(GENERATOR)
    out = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    subprocess.run([sys.executable, str(GENERATOR), "--docs", "700", "--seed", "5", "--out", str(out)],
                   check=True, capture_output=True)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def settings_at(path: Path) -> Settings:
    return Settings(data_dir=path, base_uri=BASE, durable=False)


def publish(registry: Registry, graphs: list[dict[str, Any]]) -> None:
    registry.import_many(((g["@id"], orjson.dumps(g)) for g in graphs), lambda *a: None, workers=1)


def snapshot(registry: Registry) -> dict[str, Any]:
    """Every document's card, plus the results of filters that read other records."""
    backend = find_projection(registry).backend  # type: ignore[union-attr]
    cards: dict[str, Any] = {}
    offset = 0
    while True:
        query = parse([("limit", "100"), ("sort", "name")], 100)
        from dataclasses import replace

        page = backend.search(replace(query, after=offset))
        cards.update({h.ctid: {k: v for k, v in h.card.items() if k != "modified"} for h in page.hits})
        if page.after is None:
            break
        offset = page.after
    facets = backend.search(parse([("facets", "list,credit_min,owner,qa,state,type"),
                                   ("facet_size", "100")], 100)).facets
    return {"cards": cards, "facets": facets}


def mutations(corpus: list[dict[str, Any]], rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    """Renames of organizations and credentials, lists that drop and add members, transfer
    values that move to another credential: each batch published in one go."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for g in corpus:
        by_type.setdefault(g["@graph"][0]["@type"], []).append(g)
    orgs = by_type["ceterms:CredentialOrganization"] + by_type["ceterms:QACredentialOrganization"]
    creds = [g for g in corpus if g["@graph"][0]["@type"] not in (
        "ceterms:CredentialOrganization", "ceterms:QACredentialOrganization", "ceterms:Collection",
        "ceterms:TransferValueProfile")]
    for round_ in range(4):
        batch = []
        for g in rng.sample(orgs, 3) + rng.sample(creds, 3):
            g = orjson.loads(orjson.dumps(g))
            g["@graph"][0]["ceterms:name"] = {"en-US": f"Renamed {round_} {rng.random():.6f}"}
            batch.append(g)
        lst = orjson.loads(orjson.dumps(rng.choice(by_type["ceterms:Collection"])))
        members = [n for n in lst["@graph"][1:]]
        keep = rng.sample(members, len(members) // 2)
        for n in keep[: len(keep) // 3]:
            n["ceterms:endDate"] = "2025-01-31"
        extra = {"@id": f"_:added-{round_}", "@type": "ceterms:CollectionMember",
                 "ceterms:proxyFor": rng.choice(creds)["@graph"][0]["@id"], "ceterms:startDate": "2023-03-01"}
        lst["@graph"] = [lst["@graph"][0], *keep, extra]
        lst["@graph"][0]["ceterms:hasMember"] = [n["@id"] for n in lst["@graph"][1:]]
        batch.append(lst)
        tvp = orjson.loads(orjson.dumps(rng.choice(by_type["ceterms:TransferValueProfile"])))
        tvp["@graph"][0]["ceterms:transferValueFrom"] = [rng.choice(creds)["@graph"][0]["@id"]]
        batch.append(tvp)
        yield batch
        # Changes that leave what dependants show as it was (they are not re-derived), beside
        # one that changes a single member's dates on another list.
        quiet = []
        for g in rng.sample(orgs, 2) + rng.sample(by_type["ceterms:TransferValueProfile"], 2):
            g = orjson.loads(orjson.dumps(g))
            g["@graph"][0]["ceterms:description"] = {"en-US": f"Edited {round_}"}
            quiet.append(g)
        other = orjson.loads(orjson.dumps(rng.choice(by_type["ceterms:Collection"])))
        other["@graph"][0]["ceterms:description"] = {"en-US": f"Edited {round_}"}
        other["@graph"][1 + round_]["ceterms:endDate"] = "2024-12-31"
        quiet.append(other)
        yield quiet


def test_following_the_log_equals_a_rebuild(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    registry = Registry(settings_at(tmp_path))
    try:
        publish(registry, corpus[:400])  # in many groups, as a live registry sees them
        publish(registry, corpus[400:])
        for batch in mutations(corpus, random.Random(3)):
            publish(registry, batch)
        by_type = [g for g in corpus if g["@graph"][0]["@type"] == "ceterms:Certificate"]
        registry.delete(by_type[0]["@graph"][0]["ceterms:ctid"], None, None)
        registry.purge(by_type[1]["@graph"][0]["ceterms:ctid"], None)
        followed = snapshot(registry)
        projection = find_projection(registry)
        assert projection is not None and projection.position() == registry.store.last_seq()
        projection.reset()
        registry.projector.catch_up()
        rebuilt = snapshot(registry)
    finally:
        registry.close()
    assert followed["cards"].keys() == rebuilt["cards"].keys()
    for key, card in rebuilt["cards"].items():
        assert followed["cards"][key] == card, key
    assert followed["facets"] == rebuilt["facets"]


def test_only_documents_that_show_a_change_are_rederived(tmp_path: Path, corpus: list[dict[str, Any]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(settings_at(tmp_path))
    try:
        publish(registry, corpus)
        backend = find_projection(registry).backend  # type: ignore[union-attr]
        written: list[set[str]] = []
        write = backend.write

        def recording(docs: list[Any], deletes: list[str], position: int) -> None:
            written.append({d.ctid for d in docs})
            write(docs, deletes, position)

        monkeypatch.setattr(backend, "write", recording)

        def first(type_: str) -> dict[str, Any]:
            return orjson.loads(orjson.dumps(next(g for g in corpus if g["@graph"][0]["@type"] == type_)))

        def ctid_of(g: dict[str, Any]) -> str:
            return str(g["@graph"][0]["ceterms:ctid"])

        def owned_by(org: str) -> set[str]:
            return {ctid_of(g) for g in corpus
                    if any(o.endswith(org) for o in g["@graph"][0].get("ceterms:ownedBy", []))}

        # A list re-dates one member: the list and that member, not the list's other members.
        lst = first("ceterms:Collection")
        member = lst["@graph"][1]
        member["ceterms:endDate"] = "2024-12-31"
        publish(registry, [lst])
        assert written[-1] == {ctid_of(lst), member["ceterms:proxyFor"].rsplit("/", 1)[1]}
        # An organization edits its description: its own document only ...
        org = next(g for g in corpus if g["@graph"][0]["@type"] == "ceterms:CredentialOrganization"
                   and len(owned_by(ctid_of(g))) >= 2)
        org = orjson.loads(orjson.dumps(org))
        org["@graph"][0]["ceterms:description"] = {"en-US": "A new description."}
        publish(registry, [org])
        assert written[-1] == {ctid_of(org)}
        # ... a new name shows on everything it owns.
        org["@graph"][0]["ceterms:name"] = {"en-US": "Renamed College"}
        publish(registry, [org])
        assert written[-1] >= {ctid_of(org)} | owned_by(ctid_of(org))
        # A transfer value that changes its credits re-derives its credential.
        tvp = first("ceterms:TransferValueProfile")
        tvp["@graph"][0]["ceterms:transferValue"][0]["schema:value"] = 99.0
        publish(registry, [tvp])
        credential_ = tvp["@graph"][0]["ceterms:transferValueFrom"][0].rsplit("/", 1)[1]
        assert written[-1] == {ctid_of(tvp), credential_}
    finally:
        registry.close()


def test_a_failure_mid_index_converges_on_restart(tmp_path: Path, corpus: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(settings_at(tmp_path))
    publish(registry, corpus[:300])
    position = registry.projector.projections[0].position()

    def crash(self: TantivyBackend, position: int) -> None:
        raise OSError("disk full")  # after the documents were added, before the commit

    monkeypatch.setattr(TantivyBackend, "_commit", crash)
    with pytest.raises(OSError, match="disk full"):
        publish(registry, corpus[300:])  # the store commits; the index cannot
    assert registry.projector.projections[0].position() == position
    monkeypatch.undo()
    registry.close()

    restarted = Registry(settings_at(tmp_path))  # start-up catch-up repairs the index
    try:
        assert restarted.projector.projections[0].position() == restarted.store.last_seq()
        followed = snapshot(restarted)
        find_projection(restarted).reset()  # type: ignore[union-attr]
        restarted.projector.catch_up()
        assert snapshot(restarted) == followed
    finally:
        restarted.close()


def test_reapplying_changes_is_harmless(tmp_path: Path, corpus: list[dict[str, Any]]) -> None:
    registry = Registry(settings_at(tmp_path))
    try:
        publish(registry, corpus[:200])
        before = snapshot(registry)
        projection = find_projection(registry)
        assert projection is not None
        last = registry.store.last_seq()
        projection.apply(registry.store.changes(last - 50, 50), registry.store)
        projection.apply(registry.store.changes(last - 50, 50), registry.store)
        assert snapshot(registry) == before and projection.position() == last
    finally:
        registry.close()


def test_a_write_that_may_be_half_done_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends whose writes are not atomic (Elasticsearch's bulk) journal the ids a write touches
    (`pending`); if the write tore, those records are re-derived with the next changes."""
    registry = Registry(settings_at(tmp_path))
    try:
        org, cred = ctid(), ctid()
        publish(registry, [organization(org, "Old Name"), credential(cred, "Nursing Aide", org)])
        projection = find_projection(registry)
        assert projection is not None
        backend = projection.backend
        write = backend.write

        def torn(docs: list[Any], deletes: list[str], position: int) -> None:
            write([d for d in docs if d.ctid != cred], deletes, position)  # the credential was lost

        monkeypatch.setattr(backend, "write", torn)
        publish(registry, [organization(org, "New Name")])
        monkeypatch.undo()

        def owner_name() -> str:
            return backend.search(parse([("q", "nursing")], 10)).hits[0].card["owner"][0]["name"]

        assert owner_name() == "Old Name"  # stale: what a torn bulk leaves behind
        monkeypatch.setattr(backend, "pending", lambda: [cred])  # ... and what its journal says
        publish(registry, [organization(ctid(), "Unrelated")])
        assert owner_name() == "New Name"
    finally:
        registry.close()


def test_dated_facts_expire(tmp_path: Path) -> None:
    today = {"day": parse_day("2026-06-01")}
    backend = TantivyBackend(tmp_path / "search")
    projection = SearchProjection(backend, clock=lambda: today["day"])
    registry = Registry(settings_at(tmp_path), projections=[projection])
    try:
        college, cred = ctid(), ctid()
        publish(registry, [organization(college, "College"), credential(cred, "Welding", college),
                           transfer_value(ctid(), college, cred, 12, start="2024-01-01", end="2026-06-30")])

        def credited() -> set[str]:
            return {h.ctid for h in backend.search(parse([("credit_min", "1"), ("kind", "credential")], 10)).hits}

        assert credited() == {cred}
        today["day"] = parse_day("2026-07-01")  # the agreement ended yesterday
        assert projection.refresh_if_due(registry.store)
        assert projection._refresher is not None
        projection._refresher.join(10)
        assert credited() == set()
        assert not projection.refresh_if_due(registry.store)  # nothing else is due
    finally:
        registry.close()


def test_reindex_command_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  corpus: list[dict[str, Any]]) -> None:
    from registry.cli import main

    registry = Registry(settings_at(tmp_path))
    publish(registry, corpus[:100])
    before = snapshot(registry)
    changes = registry.store.last_seq() * len(registry.projector.projections)
    registry.close()
    monkeypatch.setenv("CREDREG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDREG_BASE_URI", BASE)
    monkeypatch.setenv("CREDREG_DURABLE", "false")
    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    # Progress goes to stderr (stdout stays the one-line summary): every change of every projection.
    assert f"{changes}/{changes}" in result.stderr and "change" in result.stderr
    assert result.stdout == "reindexed: 2 projections\n" and changes >= 200
    registry = Registry(settings_at(tmp_path))
    try:
        assert snapshot(registry) == before
        assert registry.projector.projections[0].position() == registry.store.last_seq()
    finally:
        registry.close()
