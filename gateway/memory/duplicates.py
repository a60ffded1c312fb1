"""Find what each draft of a write duplicates: a stored memory, or an earlier draft.

Order of preference: an exact match in the store (same text key, same scope, live), an exact
match earlier in the batch, then the most similar near duplicate (see ``gateway.memory.dedup``)
among the ``policy.candidates`` nearest stored vectors of the user and the earlier drafts.
A scope is (user, agent, run): the same words said to another agent are another memory.
Expired memories are not matched: saying it again makes a new, live memory.
"""

from __future__ import annotations

import asyncio

import numpy as np

from gateway.domain.model import Memory
from gateway.domain.normalise import text_key
from gateway.index.base import VectorIndex
from gateway.memory.dedup import DedupPolicy, is_duplicate
from gateway.memory.writeplan import Draft, Match
from gateway.store.base import Store
from gateway.store.types import ExactQuery

Scope = tuple[str, str | None, str | None]


def _scope(draft: Draft) -> Scope:
    m = draft.memory
    return m.user_id, m.agent_id, m.run_id


def _live(memory: Memory, now: str) -> bool:
    """Unexpired and a text: an image memory is never a text's duplicate (a caption that
    reads alike is still a picture)."""
    return (memory.expires_at is None or memory.expires_at > now) and memory.modality == "text"


async def find_duplicates(
    store: Store, index: VectorIndex, drafts: list[Draft], vectors: np.ndarray,
    policy: DedupPolicy, now: str,
) -> list[Match | None]:
    """One match (or None) per draft; drafts with ``dedup`` off get None."""
    wanted = [j for j, d in enumerate(drafts) if d.dedup]
    if not wanted:
        return [None] * len(drafts)
    keys = [text_key(d.memory.text) for d in drafts]
    exact = await store.exact_matches(
        [ExactQuery(*_scope(drafts[j]), keys[j]) for j in wanted], now)
    stored: dict[int, Match] = {
        j: Match("exact", 1.0, memory=m) for j, m in zip(wanted, exact, strict=True) if m}
    near = await _near_stored(store, index, drafts, vectors, policy, now,
                              [j for j in wanted if j not in stored])
    matches: list[Match | None] = []
    for j, draft in enumerate(drafts):
        if not draft.dedup:
            matches.append(None)
            continue
        best = stored.get(j) or _in_batch(drafts, vectors, keys, policy, j)
        candidate = near.get(j)
        if best is None or (best.kind == "near" and candidate is not None
                            and candidate.similarity > best.similarity):
            best = candidate
        matches.append(best)
    return matches


def _in_batch(drafts: list[Draft], vectors: np.ndarray, keys: list[str], policy: DedupPolicy,
              j: int) -> Match | None:
    """The earlier draft of the batch that ``j`` duplicates (exact first, then the nearest)."""
    scope = _scope(drafts[j])
    earlier = [i for i in range(j) if _scope(drafts[i]) == scope]
    if not earlier:
        return None
    for i in earlier:
        if keys[i] == keys[j]:
            return Match("exact", 1.0, earlier=i)
    cosines = vectors[earlier] @ vectors[j]
    for position in np.argsort(-cosines)[: policy.candidates]:
        i, cosine = earlier[int(position)], float(cosines[position])
        if is_duplicate(policy, drafts[j].memory.text, drafts[i].memory.text, cosine):
            return Match("near", cosine, earlier=i)
    return None


async def _near_stored(
    store: Store, index: VectorIndex, drafts: list[Draft], vectors: np.ndarray,
    policy: DedupPolicy, now: str, positions: list[int],
) -> dict[int, Match]:
    """Near duplicates among the stored memories' nearest vectors, per draft position."""
    by_user: dict[str, list[int]] = {}
    for j in positions:
        by_user.setdefault(drafts[j].memory.user_id, []).append(j)
    hits: dict[int, list[tuple[str, float]]] = {}
    for user, rows in by_user.items():
        if index.size(user) == 0:
            continue
        found = await asyncio.to_thread(index.search_batch, user, vectors[rows],
                                        policy.candidates)
        for j, row_hits in zip(rows, found, strict=True):
            hits[j] = [(h.id, h.score) for h in row_hits if h.score >= policy.min_cosine]
    wanted = sorted({memory_id for row in hits.values() for memory_id, _ in row})
    memories = await store.get_many(wanted) if wanted else {}
    near: dict[int, Match] = {}
    for j, row in hits.items():
        for memory_id, cosine in row:  # best first
            memory = memories.get(memory_id)
            if (memory is not None and _live(memory, now)
                    and (memory.user_id, memory.agent_id, memory.run_id) == _scope(drafts[j])
                    and is_duplicate(policy, drafts[j].memory.text, memory.text, cosine)):
                near[j] = Match("near", cosine, memory=memory)
                break
    return near
