"""Session lift: a message is worth more when another message of its session is a strong hit.

A question's answer is often spread over one conversation session: the hit that names the
topic, and the reply that holds the fact ("Yes! Last Friday, it was amazing"). Messages
stored together share their ``occurred_at`` (the session's timestamp, or the moment of the
write), so in hybrid search each memory made from a message is pulled toward the best fused
score of the *other* messages of its session in the pool: ``score + weight * (best - score)``
when that best is higher, never past it. The best hit of a session keeps its score, so a
memory that outranks every session's best (a lone text item, say) keeps its place. Memories
that are not messages (no ``role``) are left as they are. On the LoCoMo development set this
lifted hybrid recall_any@10 by about 2 points at weight 0.5 (docs/benchmarks/query-path.md);
adding ``weight * best`` instead measured half a point more there but let two mediocre
messages of one session lift each other past a better lone memory.
Pure functions: the search pipeline hands in candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from gateway.domain.model import ScoredMemory


def lifted(ranked: Sequence[tuple[str, float]], session_of: Mapping[str, str | None],
           weight: float) -> list[tuple[str, float]]:
    """``(id, score)`` best first after the lift (``session_of``: id -> session key, None for
    a memory that is not a message); ties keep the incoming order."""
    if weight == 0.0:
        return list(ranked)
    best: dict[str, list[float]] = {}  # session -> its two best scores
    for item, score in ranked:
        session = session_of.get(item)
        if session is not None:
            top = best.setdefault(session, [])
            top.append(score)
            top.sort(reverse=True)
            del top[2:]
    out = []
    for item, score in ranked:
        session = session_of.get(item)
        top = best.get(session, []) if session is not None else []
        # the best score of another message: the runner-up when this one is the best
        other = (top[1] if len(top) > 1 else 0.0) if top and top[0] == score else (
            top[0] if top else 0.0)
        out.append((item, score + weight * max(0.0, other - score)))
    order = sorted(range(len(out)), key=lambda n: -out[n][1])
    return [out[n] for n in order]


def session_key(memory_role: str | None, occurred_at: str) -> str | None:
    return occurred_at if memory_role is not None else None


def lift_sessions(candidates: Sequence[ScoredMemory], weight: float) -> list[ScoredMemory]:
    """Candidates best first after the session lift (scores must be positive, as fused
    ones are)."""
    by_id = {c.memory.id: c for c in candidates}
    order = lifted([(c.memory.id, c.score) for c in candidates],
                   {c.memory.id: session_key(c.memory.role, c.memory.occurred_at)
                    for c in candidates}, weight)
    return [replace(by_id[i], score=score) for i, score in order]
