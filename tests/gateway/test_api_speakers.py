"""Speaker-aware hybrid ranking through the HTTP API (real Triton embedder, real SQLite):
a question naming one speaker lifts what that speaker said (MEMORY_SEARCH_SPEAKER_BOOST)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from support import settings_for

from gateway.app import create_app
from gateway.triton import TritonServer

# Melanie talks about painting most; Caroline painted once. "What did Caroline paint?" is
# answered by Caroline's message, which plain fusion ranks below one of Melanie's.
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
    with TestClient(create_app(settings_for(triton, data, search_speaker_boost=1.0))) as off:
        _store(off)
        plain = _ranked(off)
        assert plain.index(("Caroline", ANSWER)) == 2  # fusion alone: a Melanie's above it
        semantic_off = _ranked(off, mode="semantic")
    with TestClient(create_app(settings_for(triton, data, search_speaker_boost=3.0))) as on:
        boosted = _ranked(on)
        assert sorted(boosted[:2]) == sorted([("Caroline", ANSWER), plain[0]])
        assert sorted(boosted) == sorted(plain)  # reordered, nothing added or lost
        assert _ranked(on, mode="semantic") == semantic_off  # hybrid only
