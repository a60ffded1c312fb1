"""Routing with user affinity through the shipped haproxy config, for real: two gateway
processes behind it, each with a store of its own, so a memory is found again only when the
user's requests reach the same replica. Then one replica dies and its users fail over."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
from agent_memory import MemoryClient
from support.proxy import affinity_proxy, check_config, require_haproxy
from support.servers import gateway_process
from support.waiting import wait_for

from gateway.triton import TritonServer

USERS = [f"user-{i}" for i in range(16)]


def embed(texts: Sequence[str]) -> list[list[float]]:
    """Client vectors (a fixed random direction per text): the test is about routing."""
    out = []
    for text in texts:
        seed = int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")
        vector = np.random.default_rng(seed).standard_normal(384)
        out.append((vector / np.linalg.norm(vector)).tolist())
    return out


def test_the_shipped_config_is_valid() -> None:
    assert "valid" in check_config()


def stored_users(url: str) -> set[str]:
    return {user for user in USERS
            if httpx.get(f"{url}/v1/memories", params={"user_id": user},
                         timeout=10).json()["results"]}


def test_a_user_stays_on_one_replica_and_fails_over(triton: TritonServer,
                                                    tmp_path: Path) -> None:
    require_haproxy()
    with gateway_process(triton, tmp_path / "a") as a, \
            gateway_process(triton, tmp_path / "b") as b, \
            affinity_proxy(a.url, b.url, tmp_path) as proxy:
        with MemoryClient(proxy, embedding_fn=embed, retries=0) as client:
            for user in USERS:
                client.add(user, f"{user} likes green tea")
            # In another order (round-robin would now send each to the other replica):
            # each search lands where its add did, or it finds nothing.
            for user in reversed(USERS):
                hits = client.search(user, f"{user} likes green tea", limit=1)
                assert [h["text"] for h in hits] == [f"{user} likes green tea"], user
        on_a, on_b = stored_users(a.url), stored_users(b.url)
        assert on_a and on_b, "consistent hashing used only one replica"
        assert on_a.isdisjoint(on_b) and on_a | on_b == set(USERS)

        # A client that sends no header (the Mem0 SDK) is routed by the body's user_id.
        user = sorted(on_b)[0]
        added = httpx.post(f"{proxy}/v1/memories", json={
            "user_id": user, "text": "also black coffee", "embedding": embed(["x"])[0]},
            timeout=10)
        assert added.status_code == 201, added.text
        listed = httpx.get(f"{b.url}/v1/memories", params={"user_id": user}, timeout=10)
        assert len(listed.json()["results"]) == 2

        # Replica A dies: its users are served by B (after the health check notices).
        a.process.kill()
        a.process.wait(30)
        moved = sorted(on_a)[0]

        def served_by_b() -> bool:
            response = httpx.post(f"{proxy}/v1/memories", json={
                "user_id": moved, "text": "after the fail-over",
                "embedding": embed(["y"])[0]}, timeout=10)
            return response.status_code == 201
        wait_for(served_by_b, "the proxy to fail over to replica B")
        assert moved in stored_users(b.url)


def test_a_console_session_stays_on_the_replica_that_made_it(triton: TritonServer,
                                                             tmp_path: Path) -> None:
    """Console sessions live in one replica's memory: round-robin would hand every other
    page to a replica that does not know the session (a new one each time)."""
    require_haproxy()
    with gateway_process(triton, tmp_path / "a") as a, \
            gateway_process(triton, tmp_path / "b") as b, \
            affinity_proxy(a.url, b.url, tmp_path) as proxy, \
            httpx.Client(base_url=proxy, timeout=10) as browser:
        first = browser.get("/console/")
        assert first.status_code == 200, first.text
        session = browser.cookies["console_session"]
        assert browser.cookies["memory_replica"] in {"a", "b"}
        for _ in range(6):
            assert browser.get("/console/").status_code == 200
            assert browser.cookies["console_session"] == session  # never re-issued

