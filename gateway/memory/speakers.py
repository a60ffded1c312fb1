"""Speaker-aware ranking: a question that names one speaker is most often answered by what
that speaker said.

Memories made from ``messages`` keep their speaker's name (``Memory.speaker``). When the query
names exactly one of the speakers among the candidates ("What did Caroline research?"), the
fused score of that speaker's memories is multiplied by ``boost``. A query naming none or
several speakers is left as it is: boosting every turn that merely *mentions* a person was
measured to hurt (nearly every question names someone), while boosting who *said* it lifted
hybrid recall_any@10 on the LoCoMo development set from 0.837 to 0.847 at 1.5
(docs/benchmarks/query-path.md). Pure functions: the search pipeline hands in candidates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from gateway.domain.model import ScoredMemory

MAX_NAME_CHARS = 100  # longer "names" are not matched (and never compiled into a pattern)


@lru_cache(maxsize=1024)
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)", re.IGNORECASE)


def named_speaker(query: str, speakers: Iterable[str | None]) -> str | None:
    """The one speaker the query names as a whole word (case-insensitive); None when it names
    none or several."""
    named = {s.casefold(): s for s in set(speakers)
             if s and len(s) <= MAX_NAME_CHARS and _pattern(s).search(query)}
    return next(iter(named.values())) if len(named) == 1 else None


def boost_named_speaker(query: str, candidates: Sequence[ScoredMemory],
                        boost: float) -> list[ScoredMemory]:
    """Candidates best first after multiplying the named speaker's scores by ``boost``
    (scores must be positive, as fused ones are); ties keep the incoming order."""
    by_id = {c.memory.id: c for c in candidates}
    order = boosted([(c.memory.id, c.score) for c in candidates],
                    {c.memory.id: c.memory.speaker for c in candidates}, query, boost)
    return [replace(by_id[i], score=score) for i, score in order]


def boosted(ranked: Sequence[tuple[str, float]], speaker_of: Mapping[str, str | None],
            query: str, boost: float) -> list[tuple[str, float]]:
    """``(id, score)`` best first after the boost; what the benchmark's offline sweep runs."""
    speaker = None if boost == 1.0 else named_speaker(query, speaker_of.values())
    if speaker is None:
        return list(ranked)
    folded = speaker.casefold()
    rescored = [(i, s * boost if (speaker_of.get(i) or "").casefold() == folded else s)
                for i, s in ranked]
    order = sorted(range(len(rescored)), key=lambda n: -rescored[n][1])
    return [rescored[n] for n in order]
