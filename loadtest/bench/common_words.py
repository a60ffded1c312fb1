"""Short texts and queries of a 23-word vocabulary: every query word is common to a user.

The case where FTS5's ``bm25()`` ranks most of a user's postings (issue 20), shared by
``keyword_scale``, ``keyword_levels`` and ``concurrency``.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

VOCABULARY = ("coffee morning walk garden dog music guitar river book painting friend trip "
              "beach dinner cooking soccer movie camera hiking city school family "
              "weekend").split()


def memory_text(rng: random.Random) -> str:
    """4 to 8 distinct words of the vocabulary."""
    return " ".join(rng.sample(VOCABULARY, rng.randint(4, 8)))


def query_text(rng: random.Random) -> str:
    """Five distinct words of the vocabulary."""
    return " ".join(rng.sample(VOCABULARY, 5))


SERVED_VERSION = Path("model_repository") / "embedder" / "1"  # under the checkout's root


class WordVectors:
    """Stand-in memory vectors that look like text embeddings: the normalised sum of the
    words' own embeddings (the served model's, run here once per word) plus a little noise.

    Seeding 100k memories through the model would take most of an hour on this machine, and
    unstructured random unit vectors are what no ANN graph can index (recall@10 0.76 on
    100k of them: the gateway then rightly keeps most rows exact), which a user's
    embeddings never look like. These cluster by shared words, as embeddings of such texts do.
    """

    def __init__(self, version_dir: Path, noise: float = 0.05, seed: int = 0) -> None:
        from gateway.inference.local_encoder import load_runtime

        runtime = load_runtime(version_dir, 1, spinning=False)
        vectors = np.asarray(runtime.embed(list(VOCABULARY)), dtype=np.float32)
        self.of = dict(zip(VOCABULARY, vectors, strict=True))
        self.dim = int(vectors.shape[1])
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def __call__(self, texts: list[str]) -> list[list[float]]:
        rows = np.stack([np.sum([self.of[word] for word in text.split()], axis=0)
                         for text in texts])
        rows += self.rng.standard_normal(rows.shape).astype(np.float32) * self.noise
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return np.round(rows, 6).tolist()
