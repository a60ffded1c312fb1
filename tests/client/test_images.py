"""The client's image round trip against a live gateway (auth on) and a real Triton serving
the tiny CLIP: add_image, get, get_image, search by text and by image, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agent_memory import AsyncMemoryClient, ConflictError, MemoryClient, NotFoundError
from support.servers import LiveGateway, free_ports, serving, settings_for
from support.tiny_clip import caption, picture

from gateway.triton import TritonServer


@pytest.fixture(scope="module")
def clip_gateway(clip_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[LiveGateway]:
    [port] = free_ports(1)
    settings = settings_for(clip_triton, tmp_path_factory.mktemp("client-images"),
                            auth="required", port=port)
    with serving(settings) as url:
        yield LiveGateway(url, settings)


def test_image_round_trip(clip_gateway: LiveGateway) -> None:
    with MemoryClient(clip_gateway.url, api_key=clip_gateway.key()) as client:
        red = client.add_image("alice", picture("red"), text="the red door")
        blue = client.add_image("alice", picture("blue", fmt="JPEG"), metadata={"room": "hall"})
        note = client.add("alice", "paint the door red on Saturday")
        assert red["modality"] == "image" and red["image"]["mime"] == "image/png"
        assert client.get(blue["id"])["image"]["mime"] == "image/jpeg"
        assert client.get_image(red["id"]).startswith(b"\x89PNG")
        by_text = client.search("alice", caption("red"), limit=5)
        assert {h["modality"] for h in by_text} == {"text", "image"}
        assert [h["id"] for h in by_text if h["modality"] == "image"][0] == red["id"]
        assert note["id"] in [h["id"] for h in by_text]
        by_image = client.search("alice", image=picture("blue", seed=7), limit=1)
        assert [h["id"] for h in by_image] == [blue["id"]]
        images_only = client.search("alice", "red", modality="image")
        assert {h["modality"] for h in images_only} == {"image"}
        with pytest.raises(ValueError):
            client.search("alice", "red", image=picture("red"))
        client.delete(red["id"])
        with pytest.raises(NotFoundError):
            client.get_image(red["id"])
        with pytest.raises(NotFoundError):
            client.get_image(note["id"])  # a text memory has no picture


def test_async_image_round_trip(clip_gateway: LiveGateway) -> None:
    async def scenario() -> None:
        async with AsyncMemoryClient(clip_gateway.url, api_key=clip_gateway.key()) as client:
            green = await client.add_image("bob", picture("green", fmt="WEBP"))
            assert (await client.get_image(green["id"]))[:4] == b"RIFF"
            hits = await client.search("bob", image=picture("green", seed=3), limit=1)
            assert hits[0]["id"] == green["id"]

    asyncio.run(scenario())


def test_without_clip_the_error_says_how_to_enable_it(live_gateway: LiveGateway) -> None:
    with (MemoryClient(live_gateway.url, api_key=live_gateway.key()) as client,
          pytest.raises(ConflictError, match="export clip")):
        client.add_image("alice", picture("red"))
