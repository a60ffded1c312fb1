"""Search modes through the HTTP API on the real Triton embedder and a real SQLite file:
keyword, semantic and hybrid (fused) search, their scores, weights, threshold, hostile queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for

from gateway.app import create_app
from gateway.triton import TritonServer

ORDERS = [f"Order {code} was shipped to {name}" for code, name in [
    ("7QX-88213", "Priyanka"), ("4LM-20931", "Jonas"), ("9TR-55102", "Amelie"),
    ("2KD-71644", "Tomasz"), ("6WB-39027", "Ingrid"), ("3HS-60458", "Mateo"),
]]
TICKETS = [f"Ticket ZX-{n} is still open" for n in (4417, 4741, 7144, 1447)]
OTHERS = [
    "I love hiking in the Alps",
    "We talked for hours about gardening, tomatoes and compost; ZX-4471 came up too",
    "My favourite dish is spaghetti carbonara",
    "The quarterly tax report is due on Friday",
]
HIKING = OTHERS[0]  # shares no word with the paraphrase below: semantic search's case
RARE = OTHERS[1]  # only its exact ticket number tells it apart: keyword search's case
PARAPHRASE = "outdoor mountain activities"
HOSTILE = ['"', '"unbalanced', "a AND b", "OR", "NOT x", "NEAR(a b)", "x*", "^start", "body: x",
           "{body occurred}: x", "(((", "a' OR '1'='1", "-x", "+", "x" * 8_000, "\u0000", "🙂",
           "the of and", "?!...", "AND OR NOT", "'; DROP TABLE memories; --", "col:*^\"(){}[]"]
STORE_BACKENDS = ("sqlite", "postgres")  # the client's tests on both stores (conftest.py)


def seed(client: TestClient) -> dict[str, str]:
    response = client.post("/v1/memories/batch", json={"items": [
        {"user_id": "alice", "text": text} for text in ORDERS + TICKETS + OTHERS]})
    assert response.status_code == 201, response.text
    return {m["text"]: m["id"] for m in response.json()["results"]}


def search(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/memories/search", json={"user_id": "alice", **body})
    assert response.status_code == 200, response.text
    return response.json()


def texts(answer: dict) -> list[str]:
    return [r["text"] for r in answer["results"]]


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    seed(client)
    return client


def test_keyword_finds_the_code_semantic_finds_the_paraphrase_hybrid_finds_both(
    seeded: TestClient,
) -> None:
    code = "ticket ZX-4471"
    assert texts(search(seeded, query=code, mode="keyword", limit=1)) == [RARE]
    assert RARE not in texts(search(seeded, query=code, mode="semantic", limit=5))
    assert RARE in texts(search(seeded, query=code, mode="hybrid", limit=5))

    assert texts(search(seeded, query=PARAPHRASE, mode="semantic", limit=1)) == [HIKING]
    assert HIKING not in texts(search(seeded, query=PARAPHRASE, mode="keyword"))
    assert texts(search(seeded, query=PARAPHRASE, limit=1)) == [HIKING]  # hybrid: the default


def test_each_mode_says_what_its_scores_are(seeded: TestClient) -> None:
    query = "order shipped to Priyanka"
    keyword = search(seeded, query=query, mode="keyword")
    assert keyword["mode"] == "keyword" and keyword["results"]
    for r in keyword["results"]:
        assert r["similarity"] is None and r["keyword_score"] == r["score"] > 0
    semantic = search(seeded, query=query, mode="semantic")
    assert semantic["mode"] == "semantic"
    for r in semantic["results"]:
        assert r["keyword_score"] is None and r["score"] == r["similarity"]
    hybrid = search(seeded, query=query)
    assert hybrid["mode"] == "hybrid"
    scores = [r["score"] for r in hybrid["results"]]
    assert scores == sorted(scores, reverse=True)
    cosines = {r["id"]: r["similarity"] for r in search(seeded, query=query, mode="semantic",
                                                         limit=100)["results"]}
    bm25 = {r["id"]: r["keyword_score"] for r in keyword["results"]}
    for r in hybrid["results"]:  # every hit has its cosine, keyword hits their BM25 too
        assert r["similarity"] == pytest.approx(cosines[r["id"]], abs=1e-5)
        assert r["keyword_score"] == (pytest.approx(bm25[r["id"]]) if r["id"] in bm25 else None)


def test_an_embedding_query_is_semantic_only(seeded: TestClient) -> None:
    dim = seeded.app.state.gateway.service.models.info.dim  # type: ignore[attr-defined]
    answer = search(seeded, embedding=[1.0] * dim, limit=3)
    assert answer["mode"] == "semantic" and len(answer["results"]) == 3
    response = seeded.post("/v1/memories/search", json={
        "user_id": "alice", "embedding": [1.0] * dim, "mode": "keyword"})
    assert response.status_code == 422 and "keyword" in response.text


def test_stop_words_and_punctuation_still_answer(seeded: TestClient) -> None:
    for query in ("the of and", "?!... ---"):
        assert search(seeded, query=query, mode="keyword")["results"] == []
        hybrid = search(seeded, query=query, limit=5)
        semantic = search(seeded, query=query, mode="semantic", limit=5)
        assert [r["id"] for r in hybrid["results"]] == [r["id"] for r in semantic["results"]]
        assert len(hybrid["results"]) == 5


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
def test_hostile_queries_answer_200(seeded: TestClient, mode: str) -> None:
    for query in HOSTILE:
        response = seeded.post("/v1/memories/search",
                               json={"user_id": "alice", "query": query, "mode": mode})
        assert response.status_code == 200, (query, response.text)
        assert response.json()["mode"] == mode
    found = search(seeded, query='"ZX-4471" OR NEAR(', mode="keyword", limit=1)
    assert texts(found) == [RARE]  # the words still count, the syntax does not


def test_threshold_bounds_the_cosine_in_every_mode(seeded: TestClient) -> None:
    query = "order shipped to Priyanka"
    cosines = {r["id"]: r["similarity"] for r in search(
        seeded, query=query, mode="semantic", limit=100)["results"]}
    cut = sorted(cosines.values(), reverse=True)[3]
    for mode in ("semantic", "keyword", "hybrid"):
        answer = search(seeded, query=query, mode=mode, threshold=cut, limit=100)
        assert answer["results"], mode
        for r in answer["results"]:
            assert r["similarity"] == pytest.approx(cosines[r["id"]], abs=1e-5)
            assert r["similarity"] >= cut
    above = {key for key, value in cosines.items() if value >= cut}
    hybrid = search(seeded, query=query, threshold=cut, limit=100)
    assert {r["id"] for r in hybrid["results"]} == above


def test_filters_apply_to_keyword_search(client: TestClient) -> None:
    for agent in ("a1", "a2"):
        client.post("/v1/memories", json={"user_id": "alice", "agent_id": agent,
                                          "text": f"Invoice 55-ZK for {agent}"})
    client.post("/v1/memories", json={"user_id": "bob", "text": "Invoice 55-ZK for bob"})
    for mode in ("keyword", "hybrid"):
        answer = search(client, query="invoice 55-zk", mode=mode, filters={"agent_id": "a2"})
        assert texts(answer) == ["Invoice 55-ZK for a2"]


def test_the_semantic_weight_moves_hybrid_between_the_two_orders(
    triton: TritonServer, tmp_path: Path,
) -> None:
    """All weight on the dense list gives the semantic order; none gives the keyword order."""
    query = "Priyanka hiking in the mountains"
    for weight, mode in ((1.0, "semantic"), (0.0, "keyword")):
        settings = settings_for(triton, tmp_path / "data", hybrid_semantic_weight=weight)
        with TestClient(create_app(settings)) as client:  # the same store each time
            if weight == 1.0:
                seed(client)
            alone = [r["id"] for r in search(client, query=query, mode=mode, limit=100)["results"]]
            assert len(alone) >= 2
            fused = [r["id"] for r in search(client, query=query, limit=len(alone))["results"]]
            assert fused == alone, weight


CONVERSATION = [("Caroline", "Did you finish the pottery class you signed up for?"),
                ("Melanie", "Yes, it was amazing!"),
                ("Caroline", "So proud of you. What will you make next?"),
                ("Melanie", "A bowl for my mum, she loves blue glaze")]


def test_a_conversations_replies_are_found_by_their_neighbours_and_speakers(
    client: TestClient,
) -> None:
    """Messages are stored as said, embedded after their speaker's name, and keyword-indexed
    with their neighbouring messages as context (weighted below their own text)."""
    response = client.post("/v1/memories", json={"user_id": "alice", "dedup": False,
                                                  "messages": [
        {"role": "user", "name": name, "content": text} for name, text in CONVERSATION]})
    assert response.status_code == 201, response.text
    ids = [r["id"] for r in response.json()["results"]]
    stored = [(r["speaker"], r["text"]) for r in response.json()["results"]]
    assert stored == CONVERSATION  # the text stays the message as said
    lone = client.post("/v1/memories", json={"user_id": "alice", "text": CONVERSATION[1][1],
                                             "dedup": False}).json()["id"]  # a text: one

    found = [r["id"] for r in search(client, query="pottery class", mode="keyword")["results"]]
    assert found[0] == ids[0]  # it names the topic itself
    assert ids[1] in found and lone not in found  # the reply, through its context
    found = [r["id"] for r in search(client, query="Melanie", mode="keyword")["results"]]
    assert set(found[:2]) == {ids[1], ids[3]}  # hers; then those she is in the context of
    assert set(found) == set(ids)

    said = f"{CONVERSATION[1][0]}: {CONVERSATION[1][1]}"  # what the reply's vector is of
    cosines = {r["id"]: r["similarity"] for r in search(client, query=said, mode="semantic",
                                                         limit=10)["results"]}
    assert cosines[ids[1]] == pytest.approx(1.0, abs=1e-4)
    assert cosines[lone] < 0.99


def test_without_the_lexical_index_hybrid_is_semantic_and_keyword_a_409(
    triton: TritonServer, tmp_path: Path,
) -> None:
    """MEMORY_LEXICAL_INDEX=false: writes skip the index, hybrid answers semantically (and
    says so), keyword is refused; turned on again, the index is rebuilt from the store."""
    data = tmp_path / "data"
    off = settings_for(triton, data, lexical_index=False)
    with TestClient(create_app(off)) as client:
        seed(client)
        written_while_off = client.post("/v1/memories", json={
            "user_id": "alice", "text": "Locker QP-7781 holds the spare keys"}).json()["id"]
        hybrid = search(client, query="ticket ZX-4471", limit=5)
        semantic = search(client, query="ticket ZX-4471", mode="semantic", limit=5)
        assert hybrid["mode"] == "semantic"
        assert [r["id"] for r in hybrid["results"]] == [r["id"] for r in semantic["results"]]
        assert all(r["keyword_score"] is None for r in hybrid["results"])
        response = client.post("/v1/memories/search", json={
            "user_id": "alice", "query": "ticket", "mode": "keyword"})
        assert response.status_code == 409 and "MEMORY_LEXICAL_INDEX" in response.json()["detail"]
        with sqlite3.connect(off.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM lexical_docs").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 15
    with TestClient(create_app(settings_for(triton, data))) as client:  # on again
        assert texts(search(client, query="ticket ZX-4471", mode="keyword", limit=1)) == [RARE]
        found = search(client, query="QP-7781", mode="keyword")["results"]
        assert [r["id"] for r in found] == [written_while_off]
