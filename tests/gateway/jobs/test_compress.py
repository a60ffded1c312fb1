"""The compress job through /v1/jobs on the real embedder: summaries linked to their archived
sources, archive semantics of search, list, get, update and delete, idempotent reruns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for
from support.jobs import listed, wait_done
from support.scripted_llm import ScriptedLLM, answer
from support.triton_stats import quiet

from gateway.app import create_app
from gateway.backup.jsonl import export_jsonl, import_jsonl
from gateway.jobs import runner
from gateway.triton import TritonServer

COOKING = ["I baked sourdough bread with rye flour on Sunday.",
           "My lasagna recipe needs ricotta and fresh basil.",
           "I burned the risotto because I forgot to stir it.",
           "We made dumplings with pork and cabbage filling.",
           "The pasta machine makes thin tagliatelle.",
           "I roast vegetables at 220 degrees for crispy edges."]
TRAVEL = ["We flew to Lisbon and took the tram to Alfama.",
          "The train from Kyoto to Osaka took fifteen minutes.",
          "Our hotel in Reykjavik had a view of the harbour.",
          "I lost my passport at the airport in Madrid.",
          "We hiked to the glacier near Chamonix.",
          "The ferry to Santorini was delayed by wind."]
RECENT = ["I started a pottery class last week.", "My sister adopted a grey cat.",
          "I switched my phone plan to a cheaper one.", "The new bike lane opened downtown.",
          "I am reading a novel about lighthouse keepers.", "We repainted the kitchen green.",
          "My dentist appointment moved to Friday.", "I joined a chess club.",
          "The library extended its opening hours.", "I fixed the leaking tap myself.",
          "Our team won the quiz night.", "I planted tomatoes on the balcony."]


@pytest.fixture
def client(triton: TritonServer, tmp_path: Path) -> Iterator[TestClient]:
    """A gateway whose compress job clusters about 4 memories a group."""
    settings = settings_for(triton, tmp_path / "data", compress_group_size=4)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def old_dates(count: int, year: int = 2024) -> list[str]:
    return [f"{year}-01-{day + 1:02d}T10:00:00Z" for day in range(count)]


def add_dated(client: TestClient, user: str, texts: list[str], dates: list[str | None],
              **fields: object) -> list[dict]:
    response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": user, "text": t, **({"occurred_at": d} if d else {}), **fields}
        for t, d in zip(texts, dates, strict=True)]})
    assert response.status_code == 201, response.text
    return response.json()["results"]


def add_all(client: TestClient, user: str, texts: list[str], **fields: object) -> list[dict]:
    return add_dated(client, user, texts, [None] * len(texts), **fields)


def search_ids(client: TestClient, user: str, query: str, **body: object) -> list[str]:
    response = client.post("/v1/memories/search",
                           json={"user_id": user, "query": query, "limit": 5, **body})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def compress(client: TestClient, user: str | None = "alice") -> dict:
    started = client.post("/v1/jobs", json={"kind": "compress", "user_id": user})
    assert started.status_code == 202, started.text
    job = wait_done(client, started.json()["id"])
    assert job["status"] == "done", job
    return job


def test_compress_folds_old_low_priority_groups_and_archives_sources(
        client: TestClient) -> None:
    old = add_dated(client, "alice", COOKING + TRAVEL, old_dates(12))
    recent = add_dated(client, "alice", RECENT, [f"2099-01-{d + 1:02d}T10:00:00Z"
                                                 for d in range(12)])
    important = add_dated(client, "alice", ["My passport number ends in 4471."],
                          ["2023-05-01T10:00:00Z"], priority=9)
    other_user = add_dated(client, "bob", COOKING, old_dates(6))
    before = listed(client, "alice")
    job = compress(client)
    progress = job["progress"]
    assert progress["users_done"] == 1 and progress["memories"] == 12  # the oldest half
    assert progress["summaries"] >= 1 and progress["archived"] >= 2 * progress["summaries"]

    everything = listed(client, "alice", include_archived="true")
    summaries = {i: m for i, m in everything.items() if m["sources"] is not None}
    archived = {i: m for i, m in everything.items() if m["archived_at"] is not None}
    assert len(summaries) == progress["summaries"] and len(archived) == progress["archived"]
    assert set(everything) == set(before) | set(summaries)  # nothing lost, nothing else new
    old_ids = {m["id"] for m in old}
    assert set(archived) <= old_ids  # recent and important ones stay
    assert not archived.keys() & ({m["id"] for m in recent} | {important[0]["id"]})
    for summary in summaries.values():
        members = [everything[s] for s in summary["sources"]]
        assert len(members) >= 2 and all(m["summary_id"] == summary["id"] for m in members)
        assert summary["occurred_at"] == max(m["occurred_at"] for m in members)
        assert summary["priority"] == 5 and summary["archived_at"] is None
        assert all(m["text"] in summary["text"] for m in members)  # extractive, all fit
        added = client.get(f"/v1/memories/{summary['id']}/history").json()["results"][0]
        assert added["event"] == "ADD"
        assert sorted(added["payload"]["sources"]) == sorted(summary["sources"])
        assert added["payload"]["summariser"] == "extractive"
    assert {s for m in summaries.values() for s in m["sources"]} == set(archived)

    # Default list and search leave the archived out; include_archived brings them back.
    default = listed(client, "alice")
    assert set(default) == (set(before) - set(archived)) | set(summaries)
    source_id = next(iter(archived))
    source = everything[source_id]
    read = client.get(f"/v1/memories/{source_id}").json()  # readable by id, says where
    assert read["archived_at"] is not None and read["summary_id"] == source["summary_id"]
    trail = client.get(f"/v1/memories/{source_id}/history").json()["results"]
    assert trail[-1]["event"] == "UPDATE"
    assert trail[-1]["payload"]["archived_into"] == source["summary_id"]
    for mode in ("hybrid", "semantic", "keyword"):
        assert source_id not in search_ids(client, "alice", source["text"], mode=mode)
        found = search_ids(client, "alice", source["text"], mode=mode, include_archived=True)
        assert found[0] == source_id, (mode, found)
    assert len(listed(client, "bob")) == len(other_user)  # another user: untouched

    again = compress(client)
    assert again["progress"]["summaries"] == 0 and again["progress"]["archived"] == 0
    assert listed(client, "alice", include_archived="true") == everything


def test_an_extractive_summary_is_its_members_centroid_and_runs_no_model(
        client: TestClient, triton: TritonServer) -> None:
    """Folding costs Triton nothing: the summary's vector is its members' mean direction."""
    rng = np.random.default_rng(7)
    bases = rng.standard_normal((2, 384))
    rows = np.concatenate([base + 0.15 * rng.standard_normal((4, 384)) for base in bases])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    texts = COOKING[:4] + TRAVEL[:4]
    response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": "cy", "text": t, "embedding": v.tolist(), "occurred_at": d}
        for t, v, d in zip(texts, rows, old_dates(8), strict=True)]})
    assert response.status_code == 201, response.text
    ids = [m["id"] for m in response.json()["results"]]
    add_dated(client, "cy", RECENT[:8], [f"2099-01-{d + 1:02d}T10:00:00Z" for d in range(8)])
    models = {name: quiet(triton, name) for name in ("embedder", "embedder_query")}
    job = compress(client, "cy")
    assert job["progress"]["summaries"] == 2
    assert {name: quiet(triton, name) for name in models} == models
    for summary in (m for m in listed(client, "cy").values() if m["sources"]):
        members = [ids.index(source) for source in summary["sources"]]
        assert sorted(members) in ([0, 1, 2, 3], [4, 5, 6, 7])
        middle = rows[members].mean(axis=0)
        found = client.post("/v1/memories/search", json={
            "user_id": "cy", "embedding": (middle / np.linalg.norm(middle)).tolist(),
            "limit": 1}).json()["results"]
        assert found[0]["id"] == summary["id"]
        assert found[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_archive_stays_consistent_through_updates_and_deletes(client: TestClient) -> None:
    add_dated(client, "alice", COOKING + RECENT[:6], old_dates(12))
    compress(client)
    everything = listed(client, "alice", include_archived="true")
    summary = next(m for m in everything.values() if m["sources"] is not None)
    first, second, *rest = summary["sources"]

    # An edited archived memory stays archived (not back in default search).
    edited = client.patch(f"/v1/memories/{first}", json={"text": "Zanzibar spice market."})
    assert edited.status_code == 200 and edited.json()["archived_at"] is not None
    assert first not in search_ids(client, "alice", "Zanzibar spice market.")
    assert search_ids(client, "alice", "Zanzibar spice market.", include_archived=True,
                      mode="keyword")[0] == first

    # A deleted archived source leaves its summary's list.
    assert client.delete(f"/v1/memories/{second}").status_code == 204
    assert client.get(f"/v1/memories/{summary['id']}").json()["sources"] == [first, *rest]

    # A deleted summary gives its sources back: listed, searched, no longer archived.
    assert client.delete(f"/v1/memories/{summary['id']}").status_code == 204
    back = listed(client, "alice")
    for source in (first, *rest):
        assert back[source]["archived_at"] is None and back[source]["summary_id"] is None
        history = client.get(f"/v1/memories/{source}/history").json()["results"]
        assert history[-1]["payload"]["restored_from"] == summary["id"]
    assert search_ids(client, "alice", "Zanzibar spice market.", mode="semantic")[0] == first
    assert search_ids(client, "alice", "Zanzibar spice market.", mode="keyword")[0] == first


def test_expire_deletes_what_is_past_its_expiry(client: TestClient) -> None:
    gone = add_all(client, "alice", ["The parking permit runs out in May."],
                   expires_at="2024-06-01T00:00:00Z")
    kept = add_all(client, "alice", ["I like green tea.", "The code is 1234."])
    later = add_all(client, "alice", ["Call the plumber."], expires_at="2099-01-01T00:00:00Z")
    add_all(client, "bob", ["Bob's coupon is void."], expires_at="2024-06-01T00:00:00Z")
    started = client.post("/v1/jobs", json={"kind": "expire", "user_id": "alice"})
    job = wait_done(client, started.json()["id"])
    assert job["status"] == "done" and job["progress"]["expired"] == 1
    left = listed(client, "alice", include_expired="true")
    assert set(left) == {m["id"] for m in kept + later}
    expired_id = gone[0]["id"]
    assert client.get(f"/v1/memories/{expired_id}").status_code == 404
    trail = client.get(f"/v1/memories/{expired_id}/history").json()["results"]
    assert trail[-1]["event"] == "DELETE" and trail[-1]["payload"]["reason"] == "expired"
    again = wait_done(client, client.post("/v1/jobs", json={"kind": "expire"}).json()["id"])
    assert again["progress"]["expired"] == 1  # bob's; alice has nothing left to expire
    assert listed(client, "bob", include_expired="true") == {}


def test_an_expired_summary_gives_its_unexpired_sources_back(client: TestClient) -> None:
    add_dated(client, "alice", COOKING + RECENT[:6], old_dates(12))
    compress(client)
    summary = next(m for m in listed(client, "alice").values() if m["sources"])
    patched = client.patch(f"/v1/memories/{summary['id']}",
                           json={"expires_at": "2024-01-01T00:00:00Z"})
    assert patched.status_code == 200
    wait_done(client, client.post("/v1/jobs", json={"kind": "expire",
                                                    "user_id": "alice"}).json()["id"])
    back = listed(client, "alice")
    assert summary["id"] not in back
    assert all(back[s]["archived_at"] is None for s in summary["sources"])


def test_unknown_kind_is_refused_with_the_kinds(client: TestClient) -> None:
    refused = client.post("/v1/jobs", json={"kind": "shrink"})
    assert refused.status_code == 422
    text = str(refused.json()["detail"])
    assert all(kind in text for kind in ("compress", "expire", "merge"))
    bad = client.post("/v1/memories/search", json={"user_id": "a", "query": "x",
                                                   "include_archived": "yes"})
    assert bad.status_code == 422


def test_export_and_import_keep_the_archive(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", compress_group_size=4)
    with TestClient(create_app(settings)) as client:
        add_dated(client, "alice", COOKING + RECENT[:6], old_dates(12))
        compress(client)
        everything = listed(client, "alice", include_archived="true")
    source = next(m for m in everything.values() if m["archived_at"] is not None)
    dump = tmp_path / "dump.jsonl"
    assert export_jsonl(settings, dump, vectors=True) == len(everything)
    fresh = settings_for(triton, tmp_path / "fresh", compress_group_size=4)
    asyncio.run(import_jsonl(fresh, dump))
    with TestClient(create_app(fresh)) as client:
        assert listed(client, "alice", include_archived="true") == everything
        for mode in ("semantic", "keyword"):
            assert source["id"] not in search_ids(client, "alice", source["text"], mode=mode)
            assert search_ids(client, "alice", source["text"], mode=mode,
                              include_archived=True)[0] == source["id"]


def test_the_schedule_queues_every_kind(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", compress_group_size=4,
                            jobs_interval_s=0.2)
    with TestClient(create_app(settings)) as client:
        items = [{"user_id": "alice", "text": t, "occurred_at": d}
                 for t, d in zip(COOKING + RECENT[:6], old_dates(12), strict=True)]
        items.append({"user_id": "alice", "text": "The coupon was void.",
                      "expires_at": "2024-06-01T00:00:00Z"})
        response = client.post("/v1/memories/batch", json={"dedup": False, "items": items})
        assert response.status_code == 201, response.text  # one write: a job sees all or none
        gone = response.json()["results"][-1]

        def each_kind_done() -> list[dict] | None:  # a scheduled job of each kind, after the write
            jobs = client.get("/v1/jobs", params={"limit": 100}).json()
            done = {j["kind"] for j in jobs if j["status"] == "done"
                    and j["progress"].get("users_done") == 1}
            return jobs if done == {"compress", "expire", "merge"} else None

        jobs = wait_for(each_kind_done, "a scheduled compress, expire and merge job")
        assert all(j["user_id"] is None for j in jobs)  # over every user
        assert client.get(f"/v1/memories/{gone['id']}").status_code == 404
        assert any(m["sources"] for m in listed(client, "alice").values())


def wait_ready(client: TestClient) -> None:
    wait_for(lambda: client.get("/readyz").status_code == 200, "the gateway to be ready again")


def test_a_user_whose_work_keeps_failing_is_skipped_and_done_next_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLM summary must be embedded; with Triton gone every try fails."""
    monkeypatch.setattr(runner, "FAILURE_BACKOFF_S", 0.05)  # the schedule, not the rule
    llm = ScriptedLLM()
    llm.script(*[answer({"summary": "Cooking and travel, summed up."})] * 50)
    llm_server, url = llm.serve()
    server = make_triton(tmp_path)
    server.start()
    try:
        settings = settings_for(server, tmp_path / "data", compress_group_size=4,
                                llm_base_url=url, llm_model="scripted", llm_timeout_s=3.0)
        with TestClient(create_app(settings)) as client:
            texts = COOKING + TRAVEL
            add_dated(client, "ann", texts, old_dates(len(texts)), priority=2)
            before = listed(client, "ann")
            server.stop()
            job = wait_done(client, client.post(
                "/v1/jobs", json={"kind": "compress", "user_id": "ann"}).json()["id"])
            assert job["status"] == "done", job
            assert job["progress"]["skipped_users"] == 1
            assert len(llm.requests) >= runner.MAX_USER_FAILURES  # it really tried each time
            assert listed(client, "ann") == before  # nothing archived, nothing lost
            assert listed(client, "ann", include_archived="true") == before
            server.start()
            wait_ready(client)  # the gateway's channel has reconnected, not only Triton
            rerun = client.post("/v1/jobs", json={"kind": "compress", "user_id": "ann"})
            again = wait_done(client, rerun.json()["id"], timeout_s=120)
            assert again["status"] == "done" and again["progress"]["skipped_users"] == 0
            after = listed(client, "ann")
            assert len(after) < len(before)  # now folded into summaries
            assert len(listed(client, "ann", include_archived="true")) > len(before)
    finally:
        server.stop()
        llm_server.shutdown()
