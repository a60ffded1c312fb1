"""Where vectors come from: the client, the query cache, the gateway's own query encoder, the
batcher-free twin (through the coalescer) or the batching model in Triton.

The service asks for vectors before it takes its mutation lock (embedding is the slow part),
so a write's vectors carry the generation of the spaces they were made in: when a migration
began, ended or switched meanwhile, the write embeds again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.errors import FieldPath, InvalidInput
from gateway.inference.client import EmbedderClient, ModelInfo
from gateway.inference.coalescer import EmbedCoalescer
from gateway.inference.local_encoder import LocalEncoderUnavailable, LocalQueryEncoder
from gateway.inference.query_cache import QueryCache
from gateway.versions.active import ActiveModels, Space

# Writes with at most this many texts to embed share the query twin's coalesced requests (no
# batcher stall); larger ones go to the batching model, where Triton merges them.
SMALL_WRITE_TEXTS = 8
# The coalescer's model key for a remote version's calls (its server is named by the version).
REMOTE = "remote"
# Background writes (consolidation jobs) embed in sequential requests of this many texts: each
# request gets the whole inference timeout, and interactive requests get Triton in between.
BACKGROUND_EMBED_TEXTS = 16


@dataclass(frozen=True, slots=True)
class Texts:
    """What a write embeds: ``supplied[i]`` is the client's vector for ``texts[i]`` (None: embed
    the text), found at request field ``fields[i]``; ``supplied_in`` names the space of the
    supplied vectors (None: the active one); in another space they are ignored.
    ``background``: a job's write, embedded in small sequential requests."""

    texts: list[str]
    supplied: list[list[float] | None] | None = None
    fields: list[FieldPath] = field(default_factory=list)
    supplied_in: str | None = None
    background: bool = False


@dataclass(frozen=True, slots=True)
class WriteVectors:
    """A write's vectors: in the active space, and in a migration's target space if one runs."""

    generation: int
    active: Space
    vectors: np.ndarray
    target: Space | None = None
    target_vectors: np.ndarray | None = None

    def _target(self) -> tuple[Space, np.ndarray] | None:
        if self.target is None or self.target_vectors is None:
            return None
        return self.target, self.target_vectors

    def spaces(self) -> list[tuple[Space, np.ndarray]]:
        """Every live space with the write's vectors in it: the active one, then the target."""
        target = self._target()
        return [(self.active, self.vectors)] + ([target] if target is not None else [])

    def shadows(self, rows: Sequence[int]) -> list[tuple[str, np.ndarray]] | None:
        """The vectors of ``rows`` in the migration target (what the store keeps as shadows);
        None without a migration."""
        target = self._target()
        if target is None:
            return None
        space, vectors = target
        return [(space.info.label, vectors[row]) for row in rows]

    def shadow(self, row: int) -> tuple[str, np.ndarray] | None:
        found = self.shadows([row])
        return None if found is None else found[0]


def client_vector(info: ModelInfo, values: list[float], where: FieldPath) -> np.ndarray:
    """A client's vector, checked against the model and normalised."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (info.dim,):
        raise InvalidInput.at(where, f"expected {info.dim} dimensions for {info.label}, "
                              f"got {vector.size}")
    if not np.all(np.isfinite(vector)):
        raise InvalidInput.at(where, "embedding values must be finite")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidInput.at(where, "embedding must have a non-zero, finite norm")
    return (vector / norm).astype(np.float32)


class VectorSource:
    """Makes the vectors of writes and search queries, in whichever space asks for them."""

    def __init__(self, embedder: EmbedderClient, models: ActiveModels, *,
                 query_cache: QueryCache | None = None,
                 local_encoder: LocalQueryEncoder | None = None) -> None:
        self.embedder = embedder
        self.models = models
        self.query_cache = query_cache if query_cache is not None else QueryCache(0)
        self.coalescer = EmbedCoalescer(self._embed_named)
        # Embeds search queries in the gateway when the active version's files allow it.
        self.local_encoder = local_encoder

    async def for_write(self, request: Texts) -> WriteVectors:
        """Vectors for a write, in every live space: client vectors belong to the active space
        only, so the migration target always gets the server's embedding of the text."""
        generation = self.models.generation
        active, target = self.models.require(), self.models.target
        supplied = request.supplied
        if supplied is None or request.supplied_in not in (None, active.info.label):
            supplied = [None] * len(request.texts)
        if target is None:
            return WriteVectors(generation, active,
                                await self.vectors_in(active, request, supplied))
        vectors, target_vectors = await asyncio.gather(
            self.vectors_in(active, request, supplied),
            self.vectors_in(target, request, [None] * len(request.texts)),
        )
        return WriteVectors(generation, active, vectors, target, target_vectors)

    async def vectors_in(self, space: Space, request: Texts,
                         supplied: Sequence[list[float] | None]) -> np.ndarray:
        """Client vectors where given, Triton requests (to ``space``'s version) for the rest."""
        texts = request.texts
        out = np.zeros((len(texts), space.info.dim), dtype=np.float32)
        missing = []
        for i, values in enumerate(supplied):
            if values is None:
                missing.append(i)
            else:
                out[i] = client_vector(space.info, values, request.fields[i])
        if missing and request.background:
            for start in range(0, len(missing), BACKGROUND_EMBED_TEXTS):
                chunk = missing[start:start + BACKGROUND_EMBED_TEXTS]
                out[chunk] = await self.embedder.embed([texts[i] for i in chunk],
                                                       version=space.info.version)
        elif missing:
            out[missing] = await self._embed_write(space, [texts[i] for i in missing])
        return out

    async def for_query(self, space: Space, text: str | None, embedding: list[float] | None,
                        where: FieldPath, *, tenant: str) -> np.ndarray:
        """A search's vector in ``space``: the client's, or its text's (cached per tenant)."""
        if embedding is not None:
            return client_vector(space.info, embedding, where)
        return np.asarray(await self.query_vector(space, text or "", tenant),
                          dtype=np.float32)

    async def _embed_named(self, texts: list[str], version: str, model: str) -> np.ndarray:
        return await self.embedder.embed(texts, version, model=model)

    def _twin_for(self, space: Space) -> str | None:
        """The batcher-free twin when it serves ``space``'s version (the active one); for a
        remote version, ``remote``: its calls are coalesced all the same."""
        if self._is_remote(space):
            return REMOTE
        active = self.models.info
        if active is None or space.info.label != active.label:
            return None
        return self.models.query_model

    def _is_remote(self, space: Space) -> bool:
        remotes = self.embedder.remotes
        return remotes is not None and space.info.version in remotes.known()

    async def _embed_write(self, space: Space, texts: list[str]) -> np.ndarray:
        twin = self._twin_for(space)
        if twin is not None and len(texts) <= SMALL_WRITE_TEXTS:
            return await self.coalescer.embed(texts, space.info.version, twin)
        return await self.embedder.embed(texts, version=space.info.version)

    def query_encoder(self, space: Space) -> str:
        """Where ``space``'s search queries are embedded: ``local``, the twin or the model."""
        encoder = self.local_encoder
        if encoder is not None and encoder.serves(space.info.version) and not self._is_remote(
                space):
            return "local"
        return self._twin_for(space) or self.embedder.model

    def query_precision(self, space: Space) -> str:
        """What the gateway's encoder runs for ``space`` (``int8`` or ``fp32``); queries
        embedded by Triton run the version as exported (``fp32`` unless exported as int8)."""
        encoder = self.local_encoder
        if encoder is not None and encoder.serves(space.info.version):
            return encoder.precisions.get(space.info.version, "fp32")
        return "served"

    async def query_vector(self, space: Space, text: str, tenant: str) -> np.ndarray:
        """A search text's vector: from ``tenant``'s part of the query cache, else embedded in
        the gateway, else by the batcher-free twin (coalesced with concurrent queries), else
        by the batching model."""
        cached = self.query_cache.get(tenant, space.info.label, text)
        if cached is not None:
            return cached
        vector = await self._embed_query(space, text)
        self.query_cache.put(tenant, space.info.label, text, vector)
        return vector

    async def _embed_query(self, space: Space, text: str) -> np.ndarray:
        encoder = self.query_encoder(space)
        if encoder == "local":
            assert self.local_encoder is not None
            try:
                [vector] = await self.local_encoder.embed([text], space.info.version)
                return vector
            except LocalEncoderUnavailable:
                encoder = self._twin_for(space) or self.embedder.model
        if encoder == self.embedder.model:
            [vector] = await self.embedder.embed([text], version=space.info.version)
        else:
            [vector] = await self.coalescer.embed([text], space.info.version, encoder)
        return vector
