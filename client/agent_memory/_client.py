"""``MemoryClient`` (sync) and ``AsyncMemoryClient``: the same methods over one core."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, cast

import httpx

from agent_memory import _core as core
from agent_memory._exceptions import APIConnectionError, error_for
from agent_memory._routes import MAX_BATCH_ITEMS, MAX_PAGE_LIMIT, ROUTES
from agent_memory._types import (
    AsyncEmbeddingFn,
    EmbeddingFn,
    HistoryEvent,
    Memory,
    MemoryCreate,
    MemoryUpdate,
    Modality,
    SearchHit,
    SearchMode,
)

# Aliases: inside the classes, ``list`` names the method.
Memories = list[Memory]
Hits = list[SearchHit]
Events = list[HistoryEvent]


def _update_body(text: str | None, metadata: Mapping[str, Any] | None,
                 priority: int | None) -> MemoryUpdate:
    body: MemoryUpdate = {}
    if text is not None:
        body["text"] = text
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if priority is not None:
        body["priority"] = priority
    return body


class MemoryClient:
    """Blocking client for the memory gateway.

    ``embedding_fn`` (texts -> vectors), when given, embeds texts on the caller's side (your
    own GPU): ``add``, ``add_batch`` and ``search`` then send ``embedding`` and the server
    does not run its model for them. The vectors must live in the space of the server's
    active model (same model, same dimension). ``update`` with a new text is re-embedded by
    the server. Requests answered 429 or 503 are retried up to ``retries`` times, waiting as
    ``Retry-After`` says.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None,
                 embedding_fn: EmbeddingFn | None = None, *,
                 timeout: float = core.DEFAULT_TIMEOUT_S, retries: int = core.DEFAULT_RETRIES,
                 http_client: httpx.Client | None = None) -> None:
        self.embedding_fn = embedding_fn
        self.retries = retries
        self._http = http_client or httpx.Client(base_url=base_url, timeout=timeout)
        self._http.headers.update(core.headers(api_key))

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------
    def _call(self, name: str, memory_id: str | None = None, *,
              params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        method, url = ROUTES[name].method, core.path(name, memory_id)
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, params=params, json=json,
                                               headers=core.routing(params, json))
            except httpx.ConnectError as exc:
                delay = core.retry_delay(None, attempt, self.retries)
                if delay is None:
                    raise APIConnectionError(str(exc), request=exc.request) from exc
            except httpx.TransportError as exc:
                raise APIConnectionError(str(exc), request=exc.request) from exc
            else:
                delay = core.retry_delay(response, attempt, self.retries)
                if delay is None:
                    return core.result(response)
            time.sleep(delay)
            attempt += 1

    def _embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        if self.embedding_fn is None:
            return None
        vectors = self.embedding_fn(texts)
        core.check_vectors(texts, vectors)
        return [core.vector(v) for v in vectors]

    # -- memories -------------------------------------------------------------------------
    def add(self, user_id: str, data: core.Data, *, agent_id: str | None = None,
            run_id: str | None = None, priority: int | None = None) -> Memory:
        """Store one memory: ``data`` is ``{"text": ..., **metadata}`` (or the text alone)."""
        text, _ = core.split(data)
        vectors = self._embed([text])
        body = core.memory_body(user_id, data, agent_id=agent_id, run_id=run_id,
                                priority=priority, embedding=vectors[0] if vectors else None)
        return cast(Memory, self._call("add", json=body))

    def add_messages(self, user_id: str, messages: Sequence[Mapping[str, Any]], *,
                     agent_id: str | None = None, run_id: str | None = None,
                     metadata: Mapping[str, Any] | None = None, priority: int | None = None,
                     infer: bool | None = None) -> Memories:
        """Store a conversation: each non-empty message (``{"role", "content"}``, optionally
        ``name`` and ``timestamp``) becomes a memory, indexed with its neighbours; with
        ``infer=True`` the server's LLM extracts facts instead. Embedded by the server."""
        body = core.messages_body(user_id, messages, agent_id=agent_id, run_id=run_id,
                                  metadata=metadata, priority=priority, infer=infer)
        return cast(Memories, self._call("add_messages", json=body)["results"])

    def add_batch(self, user_id: str, data: Sequence[core.Data], *,
                  agent_id: str | None = None, run_id: str | None = None,
                  priority: int | None = None) -> Memories:
        """Store many memories, in input order. Each request of up to 1,000 is all or
        nothing; a longer list is sent in several, so an error can leave earlier ones stored."""
        stored: Memories = []
        for chunk in core.chunks(data, MAX_BATCH_ITEMS):
            vectors = self._embed([core.split(item)[0] for item in chunk])
            items: list[MemoryCreate] = [
                core.memory_body(user_id, item, agent_id=agent_id, run_id=run_id,
                                 priority=priority, embedding=vectors[i] if vectors else None)
                for i, item in enumerate(chunk)]
            stored.extend(self._call("add_batch", json={"items": items})["results"])
        return stored

    def add_image(self, user_id: str, image_bytes: bytes, text: str | None = None, *,
                  agent_id: str | None = None, run_id: str | None = None,
                  metadata: Mapping[str, Any] | None = None,
                  priority: int | None = None) -> Memory:
        """Store an image memory (PNG, JPEG or WebP bytes) with an optional caption; the
        server strips its metadata and embeds it with its CLIP model."""
        body = core.image_body(user_id, image_bytes, text, agent_id=agent_id, run_id=run_id,
                               metadata=metadata, priority=priority)
        return cast(Memory, self._call("add_image", json=body))

    def get_image(self, memory_id: str) -> bytes:
        """An image memory's picture (its type is the memory's ``image.mime``)."""
        response = self._http.get(core.image_path(memory_id))
        if response.status_code >= 400:
            raise error_for(response)
        return response.content

    def search(self, user_id: str, query: str | None = None, limit: int = 10,
               filters: Mapping[str, Any] | None = None, *, threshold: float | None = None,
               rerank: bool | None = None, mode: SearchMode | None = None,
               image: bytes | None = None, modality: Modality | None = None) -> Hits:
        """The user's memories closest in meaning to ``query`` (text and image memories in
        one list), or to ``image`` (image memories), best first; each has at least ``text``,
        ``score`` (higher is better) and ``modality``."""
        vectors = self._embed([query]) if query is not None and image is None else None
        body = core.search_body(user_id, query, limit=limit, filters=filters,
                                threshold=threshold, rerank=rerank, mode=mode,
                                embedding=vectors[0] if vectors else None, image=image,
                                modality=modality)
        return cast(Hits, self._call("search", json=body)["results"])

    def get(self, memory_id: str) -> Memory:
        return cast(Memory, self._call("get", memory_id))

    def list(self, user_id: str, *, page_size: int = 100) -> Iterator[Memory]:
        """Every memory of the user in creation order, fetched one cursor page at a time."""
        cursor: str | None = None
        while True:
            params = {"user_id": user_id, "limit": min(page_size, MAX_PAGE_LIMIT)}
            page = self._call("list", params=params | ({"cursor": cursor} if cursor else {}))
            yield from page["results"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def update(self, memory_id: str, *, text: str | None = None,
               metadata: Mapping[str, Any] | None = None,
               priority: int | None = None) -> Memory:
        """Change a memory: a new text is re-embedded (by the server); metadata is replaced."""
        body = _update_body(text, metadata, priority)
        return cast(Memory, self._call("update", memory_id, json=body))

    def delete(self, memory_id: str) -> None:
        self._call("delete", memory_id)

    def delete_all(self, user_id: str) -> int:
        """Delete every memory of the user; returns how many there were."""
        return int(self._call("delete_all", params={"user_id": user_id})["deleted"])

    def history(self, memory_id: str) -> Events:
        """ADD/UPDATE/DELETE events of a memory, oldest first (kept after deletion)."""
        return cast(Events, self._call("history", memory_id)["results"])


class AsyncMemoryClient:
    """The asyncio twin of ``MemoryClient`` (same arguments and methods, awaited).

    ``embedding_fn`` may be a plain function or a coroutine function; a plain one runs in a
    worker thread so it does not block the event loop.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None,
                 embedding_fn: AsyncEmbeddingFn | None = None, *,
                 timeout: float = core.DEFAULT_TIMEOUT_S, retries: int = core.DEFAULT_RETRIES,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.embedding_fn = embedding_fn
        self.retries = retries
        self._http = http_client or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._http.headers.update(core.headers(api_key))

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, name: str, memory_id: str | None = None, *,
                    params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        method, url = ROUTES[name].method, core.path(name, memory_id)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, url, params=params, json=json,
                    headers=core.routing(params, json))
            except httpx.ConnectError as exc:
                delay = core.retry_delay(None, attempt, self.retries)
                if delay is None:
                    raise APIConnectionError(str(exc), request=exc.request) from exc
            except httpx.TransportError as exc:
                raise APIConnectionError(str(exc), request=exc.request) from exc
            else:
                delay = core.retry_delay(response, attempt, self.retries)
                if delay is None:
                    return core.result(response)
            await asyncio.sleep(delay)
            attempt += 1

    async def _embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        if self.embedding_fn is None:
            return None
        if inspect.iscoroutinefunction(self.embedding_fn):
            vectors = await self.embedding_fn(texts)
        else:
            vectors = await asyncio.to_thread(self.embedding_fn, texts)
            if inspect.isawaitable(vectors):
                vectors = await vectors
        core.check_vectors(texts, vectors)
        return [core.vector(v) for v in vectors]

    async def add(self, user_id: str, data: core.Data, *, agent_id: str | None = None,
                  run_id: str | None = None, priority: int | None = None) -> Memory:
        text, _ = core.split(data)
        vectors = await self._embed([text])
        body = core.memory_body(user_id, data, agent_id=agent_id, run_id=run_id,
                                priority=priority, embedding=vectors[0] if vectors else None)
        return cast(Memory, await self._call("add", json=body))

    async def add_messages(self, user_id: str, messages: Sequence[Mapping[str, Any]], *,
                           agent_id: str | None = None, run_id: str | None = None,
                           metadata: Mapping[str, Any] | None = None,
                           priority: int | None = None,
                           infer: bool | None = None) -> Memories:
        body = core.messages_body(user_id, messages, agent_id=agent_id, run_id=run_id,
                                  metadata=metadata, priority=priority, infer=infer)
        return cast(Memories, (await self._call("add_messages", json=body))["results"])

    async def add_batch(self, user_id: str, data: Sequence[core.Data], *,
                        agent_id: str | None = None, run_id: str | None = None,
                        priority: int | None = None) -> Memories:
        stored: Memories = []
        for chunk in core.chunks(data, MAX_BATCH_ITEMS):
            vectors = await self._embed([core.split(item)[0] for item in chunk])
            items: list[MemoryCreate] = [
                core.memory_body(user_id, item, agent_id=agent_id, run_id=run_id,
                                 priority=priority, embedding=vectors[i] if vectors else None)
                for i, item in enumerate(chunk)]
            stored.extend((await self._call("add_batch", json={"items": items}))["results"])
        return stored

    async def add_image(self, user_id: str, image_bytes: bytes, text: str | None = None, *,
                        agent_id: str | None = None, run_id: str | None = None,
                        metadata: Mapping[str, Any] | None = None,
                        priority: int | None = None) -> Memory:
        body = core.image_body(user_id, image_bytes, text, agent_id=agent_id, run_id=run_id,
                               metadata=metadata, priority=priority)
        return cast(Memory, await self._call("add_image", json=body))

    async def get_image(self, memory_id: str) -> bytes:
        response = await self._http.get(core.image_path(memory_id))
        if response.status_code >= 400:
            raise error_for(response)
        return response.content

    async def search(self, user_id: str, query: str | None = None, limit: int = 10,
                     filters: Mapping[str, Any] | None = None, *,
                     threshold: float | None = None,
                     rerank: bool | None = None, mode: SearchMode | None = None,
                     image: bytes | None = None, modality: Modality | None = None) -> Hits:
        vectors = (await self._embed([query])) if query is not None and image is None else None
        body = core.search_body(user_id, query, limit=limit, filters=filters,
                                threshold=threshold, rerank=rerank, mode=mode,
                                embedding=vectors[0] if vectors else None, image=image,
                                modality=modality)
        return cast(Hits, (await self._call("search", json=body))["results"])

    async def get(self, memory_id: str) -> Memory:
        return cast(Memory, await self._call("get", memory_id))

    async def list(self, user_id: str, *, page_size: int = 100) -> AsyncIterator[Memory]:
        cursor: str | None = None
        while True:
            params = {"user_id": user_id, "limit": min(page_size, MAX_PAGE_LIMIT)}
            page = await self._call("list",
                                    params=params | ({"cursor": cursor} if cursor else {}))
            for memory in page["results"]:
                yield memory
            cursor = page["next_cursor"]
            if not cursor:
                return

    async def update(self, memory_id: str, *, text: str | None = None,
                     metadata: Mapping[str, Any] | None = None,
                     priority: int | None = None) -> Memory:
        body = _update_body(text, metadata, priority)
        return cast(Memory, await self._call("update", memory_id, json=body))

    async def delete(self, memory_id: str) -> None:
        await self._call("delete", memory_id)

    async def delete_all(self, user_id: str) -> int:
        return int((await self._call("delete_all", params={"user_id": user_id}))["deleted"])

    async def history(self, memory_id: str) -> Events:
        return cast(Events, (await self._call("history", memory_id))["results"])
