"""Which embedding space serves: the one owner of model-version state in the gateway.

The service, the migration job, ``/readyz`` and the metrics all read the active version from
here; only the version manager (``gateway.versions.activation``) writes it: ``pin`` when it has
connected to Triton, ``begin_target`` when a migration starts or ends, ``adopt`` at the switch.
Each change is one synchronous step on the event loop, so a reader never sees half of one. The
Triton clients hold no version state: every call names the version it wants.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import InferenceUnavailable
from gateway.index.base import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference.client import ModelInfo


@dataclass(frozen=True, slots=True)
class Space:
    """One embedding space: the model version that makes its vectors, and their index.

    Searches take the active space once, embed with its version and search its index, so a
    query vector never meets vectors from another version, even across a switch.
    """

    info: ModelInfo
    index: VectorIndex
    searcher: SearchBatcher

    async def close(self) -> None:
        await self.searcher.close()
        close = getattr(self.index, "close", None)
        if close is not None:
            close()


class ActiveModels:
    """The active embedder version with its index, a migration target, and the query twin.

    The index exists before the version is known (it is built from the store at start-up,
    while Triton may still be loading), so ``index``/``searcher`` are held apart from ``info``.
    """

    def __init__(self, index: VectorIndex, searcher: SearchBatcher, *,
                 retry_after_s: int = 2) -> None:
        self.info: ModelInfo | None = None
        self.index = index
        self.searcher = searcher
        self.target: Space | None = None  # set while an embedder migration runs
        self.generation = 0  # bumped when spaces change: in-flight writes re-embed
        self.query_model: str | None = None  # the batcher-free twin, when Triton serves it
        self._retry_after = retry_after_s

    @property
    def active(self) -> Space | None:
        return None if self.info is None else Space(self.info, self.index, self.searcher)

    def require(self) -> Space:
        """The active space, or 503 while the gateway has not reached Triton yet."""
        space = self.active
        if space is None:
            raise InferenceUnavailable(
                "inference service unavailable (the embedding model is not connected yet)",
                retry_after=self._retry_after,
            )
        return space

    def pin(self, info: ModelInfo, query_model: str | None) -> None:
        """The version manager connected: ``info`` is the active version."""
        self.info, self.query_model = info, query_model

    def adopt(self, space: Space) -> None:
        """Make ``space`` the active one (a migration's switch)."""
        self.info = space.info
        self.index, self.searcher = space.index, space.searcher
        self.target = None
        self.generation += 1

    def begin_target(self, space: Space | None) -> None:
        self.target = space
        self.generation += 1

    def indexes(self) -> list[VectorIndex]:
        """Every index a change must reach: the active one and a migration's target."""
        return [self.index] + ([self.target.index] if self.target is not None else [])
