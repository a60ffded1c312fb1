"""Hybrid search's reordering of the fused pool through the HTTP API (real Triton embedder,
real SQLite): a question naming one speaker lifts what that speaker said
(MEMORY_SEARCH_SPEAKER_BOOST), and a message is lifted by the best hit of its session
(MEMORY_SEARCH_SESSION_WEIGHT)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for

from gateway.app import create_app
from gateway.triton import TritonServer

# Melanie talks about painting most; Caroline painted once. "What did Caroline paint?" is
# answered by Caroline's message, which plain rank fusion ranks below one of Melanie's.
TALK = [("Melanie", "I paint every weekend, painting landscapes is my favourite thing to paint"),
        ("Caroline", "That sounds lovely, I should try it one day"),
        ("Melanie", "You should! My latest painting is a sunset over the lake"),
        ("Caroline", "Last night I finished a small blue bird on canvas"),
        ("Melanie", "A bird! Paint more of those, painting birds is hard")]
QUESTION = "What did Caroline paint?"
ANSWER = TALK[3][1]


def _ranked(client: TestClient, **body: object) -> list[tuple[str, str]]:
    response = client.post("/v1/memories/search", json={
        "user_id": "u", "query": QUESTION, "limit": 5, **body})
    assert response.status_code == 200, response.text
    return [(r["speaker"], r["text"]) for r in response.json()["results"]]


def _store(client: TestClient) -> None:
    response = client.post("/v1/memories", json={"user_id": "u", "dedup": False, "messages": [
        {"role": "user", "name": name, "content": text} for name, text in TALK]})
    assert response.status_code == 201, response.text


def test_a_question_naming_one_speaker_lifts_that_speakers_messages(
        triton: TritonServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    ranks_only = {"hybrid_score_weight": 0.0}  # the fusion the order below is reasoned on
    with TestClient(create_app(settings_for(triton, data, search_speaker_boost=1.0,
                                            **ranks_only))) as off:
        _store(off)
        plain = _ranked(off)
        assert plain.index(("Caroline", ANSWER)) == 2  # fusion alone: a Melanie's above it
        semantic_off = _ranked(off, mode="semantic")
    with TestClient(create_app(settings_for(triton, data, search_speaker_boost=3.0,
                                            **ranks_only))) as on:
        boosted = _ranked(on)
        assert sorted(boosted[:2]) == sorted([("Caroline", ANSWER), plain[0]])
        assert sorted(boosted) == sorted(plain)  # reordered, nothing added or lost
        assert _ranked(on, mode="semantic") == semantic_off  # hybrid only


SESSIONS = {"2023-05-08T13:56:00Z": [("Caroline", "I went to my first pottery class on Sunday"),
                                     ("Melanie", "Wow! How did it go?"),
                                     ("Caroline", "Great, I made a small blue bowl for my mum")],
            "2023-06-01T09:00:00Z": [("Melanie", "The cat knocked a bowl off the table"),
                                     ("Caroline", "Oh no, was it a good one?")]}


def test_a_message_is_lifted_by_the_best_hit_of_its_session(triton: TritonServer,
                                                             tmp_path: Path) -> None:
    """MEMORY_SEARCH_SESSION_WEIGHT: each message is pulled w of the way toward the best fused
    score of another message stored with the same moment; text items are left as they are."""
    data = tmp_path / "data"
    body = {"user_id": "u", "query": "what happened at the pottery class", "limit": 20}
    off_settings = settings_for(triton, data, search_session_weight=0.0,
                                search_speaker_boost=1.0)
    with TestClient(create_app(off_settings)) as off:
        for moment, talk in SESSIONS.items():
            response = off.post("/v1/memories", json={"user_id": "u", "dedup": False,
                                                      "messages": [
                {"role": "user", "name": n, "content": t, "timestamp": moment}
                for n, t in talk]})
            assert response.status_code == 201, response.text
        lone = off.post("/v1/memories", json={"user_id": "u", "dedup": False,
                                              "text": "Pottery class notes: bring an apron",
                                              "occurred_at": "2023-05-08T13:56:00Z"}).json()
        plain = off.post("/v1/memories/search", json=body).json()["results"]
    on_settings = settings_for(triton, data, search_session_weight=0.5,
                               search_speaker_boost=1.0)
    with TestClient(create_app(on_settings)) as on:
        lifted = on.post("/v1/memories/search", json=body).json()["results"]
    before = {r["id"]: r["score"] for r in plain}
    session_of = {r["id"]: r["occurred_at"] if r["role"] else None for r in plain}
    assert len(before) == 6 and session_of[lone["id"]] is None
    for r in lifted:
        others = [before[i] for i in before
                  if i != r["id"] and session_of[i] is not None
                  and session_of[i] == session_of[r["id"]]]
        best = max(others) if session_of[r["id"]] is not None and others else 0.0
        gain = 0.5 * max(0.0, best - before[r["id"]])
        assert r["score"] == pytest.approx(before[r["id"]] + gain)
    assert sorted(before) == sorted(r["id"] for r in lifted)  # reordered, nothing lost
    assert any(r["score"] > before[r["id"]] for r in lifted)  # somebody was lifted
