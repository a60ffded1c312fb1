"""Image memories: adding pictures, and one search over text and images.

An image memory is a memory row of modality "image" whose text is its caption (or "") plus
its picture and CLIP image vector beside it (``Store.image``). The row's text-space vector is
the caption's embedding, so the caption is found by keyword and semantic search like any
text; the search pipeline leaves a memory without caption out of text-space hits (its empty
text says nothing), on every API.

One retrieval interface: a text query runs the ordinary search (text space, hybrid or as
asked) and, where CLIP is served and the user has images, the CLIP text tower's vector
against the user's image vectors; the two lists are fused by reciprocal rank,
``score = sum 1 / (k + rank)`` over the lists a memory appears in (``MEMORY_IMAGE_RRF_K``).
Ranks, not scores, because a CLIP cosine and a MiniLM cosine or a BM25 score have unrelated
scales. A search by image compares the query image's CLIP vector with image vectors only.
The user's image vectors come from ``image_cache`` (kept between searches while the user's
memories are unchanged).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from gateway.domain.model import Memory, ScoredMemory, StoredImage
from gateway.errors import Conflict, FieldPath
from gateway.inference.clip import ClipClient, space_label
from gateway.memory import images as pictures
from gateway.memory.changes import NewMemory
from gateway.memory.clock import utc_now
from gateway.memory.image_cache import ImageVectorCache
from gateway.memory.search import SearchOutcome, SearchQuery
from gateway.memory.service import MemoryService

Modality = Literal["text", "image"]


@dataclass(frozen=True, slots=True)
class ImageDraft:
    """A new image memory as the API hands it over: the fields of a memory (its ``text`` the
    caption, maybe "") and the image's bytes, not yet checked."""

    memory: NewMemory
    data: bytes
    field: FieldPath  # where the image sits in the request, for errors


class ImageMemories:
    def __init__(self, service: MemoryService, clip: ClipClient, limits: pictures.ImageLimits,
                 *, rrf_k: int = 60, cache: ImageVectorCache | None = None) -> None:
        self.service, self.clip, self.limits, self.rrf_k = service, clip, limits, rrf_k
        # the users' image vectors: kept between searches, or (None) read every search
        self.cache = cache or ImageVectorCache(service.store, 0)

    # -- writes ---------------------------------------------------------------------------------
    async def add(self, drafts: Sequence[ImageDraft]) -> list[tuple[Memory, StoredImage]]:
        """Check, clean and embed every image, then store all or none; the memories and
        their stored pictures in input order. A CLIP switch between the embedding and the
        commit means: embed again with the new active version."""
        await self.clip.require()  # 409 before any work when no CLIP model is served
        cleaned = await asyncio.to_thread(
            lambda: [pictures.clean(d.data, self.limits, d.field) for d in drafts])
        for _ in range(3):
            label, vectors = await self.clip.embed_images([c.data for c in cleaned])
            news = [replace(d.memory, image=StoredImage(c.data, c.mime, c.width, c.height,
                                                        label, vectors[n]))
                    for n, (d, c) in enumerate(zip(drafts, cleaned, strict=True))]
            async with self.clip.switching:
                if label != self.clip.label:
                    continue
                stored = await self.service.add_many(news)
            return [(m, n.image) for m, n in zip(stored, news, strict=True)
                    if n.image is not None]
        raise Conflict("the CLIP model changed repeatedly during this request; retry")

    async def image(self, memory_id: str) -> StoredImage | None:
        return await self.service.store.image(memory_id)

    # -- search ---------------------------------------------------------------------------------
    async def search(self, ask: SearchQuery, modality: Modality | None = None,
                     image: bytes | None = None, field: FieldPath = ("image",)) -> SearchOutcome:
        """Text and image memories in one list, best first (see the module docstring)."""
        if image is not None:
            version = await self.clip.require()
            cleaned = await asyncio.to_thread(pictures.clean, image, self.limits, field)
            label, vectors = await self.clip.embed_images([cleaned.data], version)
            hits = await self._image_hits(ask, label, vectors[0])
            if ask.threshold is not None:  # the CLIP cosine, here the only similarity
                hits = [h for h in hits if h.score >= ask.threshold]
            return SearchOutcome(hits, "semantic")
        outcome = await self.service.search_outcome(ask)
        texts = [s for s in outcome.results if _wanted(s.memory, modality)]
        if modality == "text" or ask.query is None or not await self.clip.available():
            return SearchOutcome(texts, outcome.mode)
        # One version for the whole search: across a switch, the old space's vectors are
        # gone from the store (nothing found), never compared with a new-space query.
        version = await self.clip.require()
        ids, matrix = await self._image_vectors(ask, space_label(version))
        if not ids:
            return SearchOutcome(texts, outcome.mode)
        _, vectors = await self.clip.embed_texts([ask.query], version)
        found = await self._ranked(ids, matrix, vectors[0], ask.limit)
        return SearchOutcome(fuse_by_rank([texts, found], self.rrf_k)[:ask.limit], outcome.mode)

    async def _image_vectors(self, ask: SearchQuery, label: str) -> tuple[list[str], np.ndarray]:
        filters = ask.filters if ask.include_expired else replace(ask.filters, live_at=utc_now())
        return await self.cache.vectors(ask.user_id, label, filters)

    async def _image_hits(self, ask: SearchQuery, label: str,
                          vector: np.ndarray) -> list[ScoredMemory]:
        ids, matrix = await self._image_vectors(ask, label)
        return await self._ranked(ids, matrix, vector, ask.limit) if ids else []

    async def _ranked(self, ids: list[str], matrix: np.ndarray, vector: np.ndarray,
                      limit: int) -> list[ScoredMemory]:
        """The ``limit`` best of the user's images by cosine, as scored memories."""
        cosines = await asyncio.to_thread(np.dot, matrix, vector)
        best = np.argsort(-cosines, kind="stable")[:limit]
        found = await self.service.store.get_many([ids[i] for i in best])
        return [ScoredMemory(found[ids[i]], float(cosines[i]), float(cosines[i]))
                for i in best if ids[i] in found]


def _wanted(memory: Memory, modality: Modality | None) -> bool:
    """Whether a text-space hit is of the modality asked for (captionless images never are
    text-space hits: ``gateway.memory.pipeline``)."""
    return modality is None or memory.modality == modality


def fuse_by_rank(lists: Sequence[Sequence[ScoredMemory]], k: int) -> list[ScoredMemory]:
    """Reciprocal rank fusion: ``score = sum 1 / (k + rank)`` (rank from 1) over the lists
    a memory is in; its similarity and keyword score are kept from the first list that has
    it. Ties keep the order of first appearance."""
    scores: dict[str, float] = {}
    first: dict[str, ScoredMemory] = {}
    for hits in lists:
        for rank, hit in enumerate(hits, start=1):
            key = hit.memory.id
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            first.setdefault(key, hit)
    order = sorted(scores, key=lambda key: -scores[key])
    return [replace(first[key], score=scores[key]) for key in order]
