"""Short texts and queries of a 23-word vocabulary: every query word is common to a user.

The case where FTS5's ``bm25()`` ranks most of a user's postings (issue 20), shared by
``keyword_scale``, ``keyword_levels`` and ``concurrency``.
"""

from __future__ import annotations

import random

VOCABULARY = ("coffee morning walk garden dog music guitar river book painting friend trip "
              "beach dinner cooking soccer movie camera hiking city school family "
              "weekend").split()


def memory_text(rng: random.Random) -> str:
    """4 to 8 distinct words of the vocabulary."""
    return " ".join(rng.sample(VOCABULARY, rng.randint(4, 8)))


def query_text(rng: random.Random) -> str:
    """Five distinct words of the vocabulary."""
    return " ".join(rng.sample(VOCABULARY, 5))
