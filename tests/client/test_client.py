"""The Python client against a real gateway: every method, sync and async, batches split at
the server's limit, cursor paging, typed errors carrying ``detail``, retries after 429."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from agent_memory import (
    MAX_BATCH_ITEMS,
    APIConnectionError,
    AsyncMemoryClient,
    AuthenticationError,
    MemoryClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from support import free_ports
from support.servers import LiveGateway

from gateway.auth.principal import KeyScope

DIM = 384


def random_embed(texts: Sequence[str]) -> list[list[float]]:
    """Unit vectors seeded by the text: cheap, deterministic, in the server's dimension."""
    out = []
    for text in texts:
        v = np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(DIM)
        out.append((v / np.linalg.norm(v)).tolist())
    return out


def test_every_method(live_gateway: LiveGateway) -> None:
    with MemoryClient(live_gateway.url, api_key=live_gateway.key("methods")) as client:
        first = client.add(user_id="u", data={"text": "I drink green tea", "mood": "calm"},
                           priority=7, agent_id="bot")
        assert first["text"] == "I drink green tea" and first["metadata"] == {"mood": "calm"}
        assert (first["priority"], first["agent_id"], first["user_id"]) == (7, "bot", "u")
        assert first.pop("event") == "ADD"  # what the add did (ADD/UPDATE/NOOP), not stored
        assert client.get(first["id"]) == {k: v for k, v in first.items()
                                           if k not in ("item", "match")}
        hits = client.search(user_id="u", query="What does the user drink?", limit=3)
        assert hits[0]["id"] == first["id"] and isinstance(hits[0]["score"], float)
        assert client.search(user_id="u", query="tea", filters={"agent_id": "other"}) == []
        changed = client.update(first["id"], text="I drink black coffee", metadata={"m": 1})
        assert changed["text"] == "I drink black coffee" and changed["metadata"] == {"m": 1}
        second = client.add(user_id="u", data="plain text works too")
        assert [m["id"] for m in client.list(user_id="u", page_size=1)] == \
            [first["id"], second["id"]]
        client.delete(second["id"])
        with pytest.raises(NotFoundError) as missing:
            client.get(second["id"])
        assert missing.value.detail == f"memory {second['id']} not found"
        assert [e["event"] for e in client.history(second["id"])] == ["ADD", "DELETE"]
        assert [e["event"] for e in client.history(first["id"])] == ["ADD", "UPDATE"]
        assert client.delete_all(user_id="u") == 1
        assert list(client.list(user_id="u")) == []


def test_add_messages_stores_a_conversation(live_gateway: LiveGateway) -> None:
    with MemoryClient(live_gateway.url, api_key=live_gateway.key("talk")) as client:
        stored = client.add_messages("u", [
            {"role": "user", "content": "I moved to Lisbon in March", "name": "Ana",
             "timestamp": "2024-03-02T10:00:00Z"},
            {"role": "assistant", "content": "How do you like it?"}], run_id="chat-1")
        assert len(stored) == 2 and all(m["run_id"] == "chat-1" for m in stored)
        assert "Lisbon" in stored[0]["text"]
        assert {m["id"] for m in client.list("u")} == {m["id"] for m in stored}
        with pytest.raises(UnprocessableEntityError):
            client.add_messages("u", [])  # at least one message


def test_add_batch_splits_above_the_server_limit(live_gateway: LiveGateway) -> None:
    count = MAX_BATCH_ITEMS + 5
    with MemoryClient(live_gateway.url, api_key=live_gateway.key("batch"),
                      embedding_fn=random_embed) as client:
        stored = client.add_batch(user_id="many",
                                  data=[{"text": f"event {i}", "i": i} for i in range(count)])
        assert [m["metadata"]["i"] for m in stored] == list(range(count))
        listed = list(client.list(user_id="many", page_size=400))
        assert [m["id"] for m in listed] == [m["id"] for m in stored]
        hit = client.search(user_id="many", query="event 17", limit=1)[0]
        assert hit["text"] == "event 17"  # its own vector: similarity 1
        assert hit["score"] == pytest.approx(1.0, abs=1e-5)


def test_typed_errors_carry_the_detail(live_gateway: LiveGateway) -> None:
    with MemoryClient(live_gateway.url, api_key=live_gateway.key("errors")) as client:
        with pytest.raises(UnprocessableEntityError) as invalid:
            client.add(user_id="u", data={"text": "x"}, priority=99)
        assert invalid.value.status_code == 422
        assert invalid.value.detail[0]["loc"] == ["body", "priority"]
    with MemoryClient(live_gateway.url, api_key="amk_nope") as client, \
            pytest.raises(AuthenticationError) as denied:
        client.search(user_id="u", query="x")
    assert denied.value.detail == "invalid API key"
    read_only = live_gateway.key("errors", KeyScope.READ)
    with MemoryClient(live_gateway.url, api_key=read_only) as client, \
            pytest.raises(PermissionDeniedError):
        client.add(user_id="u", data="x")
    [closed] = free_ports(1)
    with MemoryClient(f"http://127.0.0.1:{closed}", retries=1) as client, \
            pytest.raises(APIConnectionError):
        client.get("01900000-0000-7000-8000-000000000000")


def test_429_is_retried_after_retry_after(live_gateway: LiveGateway) -> None:
    key = live_gateway.key("rated", rate_per_s=1.0)  # a burst of one, then one per second
    with MemoryClient(live_gateway.url, api_key=key, retries=0) as impatient:
        impatient.delete_all(user_id="u")
        with pytest.raises(RateLimitError) as shed:
            impatient.delete_all(user_id="u")
        assert shed.value.response.headers["retry-after"] == "1"
    shed_before = key_rate_sheds(live_gateway)
    with MemoryClient(live_gateway.url, api_key=key, retries=3) as patient:
        # the bucket is empty: each call is shed, waits Retry-After, and is then admitted
        assert patient.delete_all(user_id="u") == 0
        assert patient.delete_all(user_id="u") == 0
    assert key_rate_sheds(live_gateway) >= shed_before + 2


def key_rate_sheds(live_gateway: LiveGateway) -> float:
    operator = live_gateway.key("ops", KeyScope.OPERATOR)  # /metrics is the operator's
    metrics = httpx.get(f"{live_gateway.url}/metrics",
                        headers={"Authorization": f"Bearer {operator}"}).text
    assert "memory_admission_shed_total" in metrics
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("memory_admission_shed_total{") and 'key_rate' in line)


def test_async_client(live_gateway: LiveGateway) -> None:
    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return random_embed(texts)

    async def scenario() -> None:
        async with AsyncMemoryClient(live_gateway.url, api_key=live_gateway.key("async"),
                                     embedding_fn=embed) as client:
            stored = await client.add_batch(user_id="a", data=["one", "two", "three"])
            one = await client.add(user_id="a", data={"text": "four", "k": "v"})
            assert (await client.get(one["id"]))["metadata"] == {"k": "v"}
            hits = await client.search(user_id="a", query="two", limit=1)
            assert hits[0]["id"] == stored[1]["id"]
            listed = [m["id"] async for m in client.list(user_id="a", page_size=2)]
            assert listed == [m["id"] for m in stored] + [one["id"]]
            await client.update(one["id"], priority=1)
            await client.delete(one["id"])
            assert [e["event"] for e in await client.history(one["id"])] == \
                ["ADD", "UPDATE", "DELETE"]
            with pytest.raises(NotFoundError):
                await client.get(one["id"])
            assert await client.delete_all(user_id="a") == 3

    asyncio.run(scenario())
