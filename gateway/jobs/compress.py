"""The ``compress`` job for one user: fold groups of old, low-priority memories into summaries.

What is compressed (``CompressPolicy``, from the ``MEMORY_COMPRESS_*`` settings): the user's
live memories that are not summaries, with priority at most ``max_priority``, that happened
(``occurred_at``) more than ``min_age_days`` ago and lie within the user's oldest ``fraction``
of such memories. The fraction counts the memories archived by earlier runs too, so a second
run draws the same line and finds nothing new to fold.

Grouping: per scope (agent_id, run_id), spherical k-means (``gateway.jobs.clustering``, about
``group_size`` memories a cluster), clustering archived members too so reruns see the same
clusters; a member whose cosine to its cluster's centroid is below ``min_cosine`` stays alone.
Each cluster with at least two not yet archived members becomes one summary memory:

- text: from the LLM when one is configured (``MEMORY_LLM_BASE_URL``, prompt
  ``summarise.v1.md``); otherwise, or when the LLM fails, extractive: the members closest to
  the group's centroid first, one per line, as many as fit the text limit;
- occurred_at the group's latest (the span goes into the history), priority the group's
  highest, expiry the latest (none if any member has none), ``sources`` the members' ids.

The members are archived (``archived_at``, ``summary_id``) in the same transaction as their
summary is written (``MemoryService.fold``), a few groups per transaction
(``gateway.jobs.pacing``): a crash leaves each group folded or untouched, and the rerun finds
the same clusters (archived members are clustered too) and folds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from gateway.domain.model import MAX_TEXT_CHARS, Memory, StoredMemory
from gateway.jobs.clustering import cluster_cells, cluster_rows
from gateway.jobs.cpu import run_step
from gateway.jobs.pacing import Pacer, write_chunks
from gateway.memory.clock import time_text
from gateway.memory.extraction.client import ChatClient, LLMFailure
from gateway.memory.extraction.prompts import PROMPT_DIR
from gateway.memory.ids import uuid7
from gateway.memory.service import MemoryService, utc_now

if TYPE_CHECKING:
    from gateway.settings import Settings

SUMMARY_PROMPT = "summarise.v1"
SUMMARY_SEPARATOR = "\n"
READ_CHUNK = 128  # memories read per store call: a search's reads wait for one page at most


@dataclass(frozen=True, slots=True)
class CompressPolicy:
    max_priority: int = 5  # at most the default priority: nobody marked these important
    min_age_days: float = 30.0
    fraction: float = 0.5  # the user's oldest share of low-priority memories
    group_size: int = 6  # memories per k-means cluster, on average (docs/benchmarks/compression.md)
    min_cosine: float = 0.0  # a member's cosine to its cluster's centroid, to be folded

    @classmethod
    def from_settings(cls, settings: Settings) -> CompressPolicy:
        return cls(settings.compress_max_priority, settings.compress_min_age_days,
                   settings.compress_fraction, settings.compress_group_size,
                   settings.compress_min_cosine)


@dataclass(frozen=True, slots=True)
class CompressResult:
    memories: int  # memories old and low-priority enough to be considered
    summaries: int  # summaries written
    archived: int  # memories folded into them


class SummaryAnswer(BaseModel):
    summary: str = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Summariser:
    """Writes a group's summary text: the LLM's when one is configured, else extractive."""

    llm: ChatClient | None = None

    async def summarise(self, central_first: list[Memory]) -> tuple[str, dict[str, Any]]:
        """(text, what made it) for a group, members most central first."""
        if self.llm is not None:
            chronological = sorted(central_first, key=lambda m: (m.occurred_at, m.id))
            lines = "\n".join(f"[{m.occurred_at[:10]}] {m.text}" for m in chronological)
            try:
                answer = await self.llm.structured(_prompt(), lines, SummaryAnswer)
                return answer.summary.strip()[:MAX_TEXT_CHARS], {
                    "summariser": "llm", "prompt": SUMMARY_PROMPT}
            except LLMFailure as exc:  # nothing is lost: the extractive summary stands in
                return extractive(central_first), {"summariser": "extractive",
                                                   "llm_failure": exc.reason}
        return extractive(central_first), {"summariser": "extractive"}


def _prompt() -> str:
    return (PROMPT_DIR / f"{SUMMARY_PROMPT}.md").read_text(encoding="utf-8")


def extractive(central_first: list[Memory]) -> str:
    """The members' texts, most central first, as many whole lines as fit the text limit
    (the first is cut if it alone is longer)."""
    lines: list[str] = []
    size = 0
    for memory in central_first:
        extra = len(memory.text) + (len(SUMMARY_SEPARATOR) if lines else 0)
        if size + extra > MAX_TEXT_CHARS:
            break
        lines.append(memory.text)
        size += extra
    return SUMMARY_SEPARATOR.join(lines) if lines else central_first[0].text[:MAX_TEXT_CHARS]


def _days_ago(now: str, days: float) -> str:
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(days=days)
    return time_text(moment.astimezone(UTC))


def considered(memories: list[Memory], policy: CompressPolicy, now: str) -> list[int]:
    """Positions (in input order) of the old, low-priority memories: ``memories`` are the
    user's live non-summaries with low priority, archived ones included (see the module
    docstring: the fraction counts them, so the line stays where it was)."""
    by_time = sorted(range(len(memories)),
                     key=lambda p: (memories[p].occurred_at, memories[p].id))
    oldest = by_time[: int(len(by_time) * policy.fraction)]
    before = _days_ago(now, policy.min_age_days)
    # An image memory is never folded: a text summary cannot hold its picture.
    return sorted(p for p in oldest if memories[p].occurred_at < before
                  and memories[p].modality == "text")


def compress_groups(memories: list[Memory], vectors: np.ndarray, positions: list[int],
                    policy: CompressPolicy) -> list[list[int]]:
    """Groups (positions, most central first) of at least two not yet archived memories to
    fold. CPU work: call it from a worker thread."""
    return [group for members in by_scope(memories, positions)
            for group in cell_groups(memories, vectors, members, policy,
                                     cluster_cells(vectors[members], policy.group_size))]


def by_scope(memories: list[Memory], positions: list[int]) -> list[list[int]]:
    """``positions`` split by scope (agent_id, run_id): only memories of one scope fold."""
    scopes: dict[tuple[str | None, str | None], list[int]] = {}
    for p in positions:
        scopes.setdefault((memories[p].agent_id, memories[p].run_id), []).append(p)
    return list(scopes.values())


def cell_groups(memories: list[Memory], vectors: np.ndarray, members: list[int],
                policy: CompressPolicy, cells: np.ndarray) -> list[list[int]]:
    """``compress_groups`` for the positions of one scope, given their k-means cells
    (``cluster_cells(vectors[members], policy.group_size)``). Holds the GIL."""
    groups = []
    cells = cells[:, 0]
    for cell in np.unique(cells):
        cluster = [members[j] for j in np.flatnonzero(cells == cell)]
        middle = centroid(vectors[cluster])
        cosine = {p: float(vectors[p] @ middle) for p in cluster}
        fresh = [p for p in cluster
                 if memories[p].archived_at is None and cosine[p] >= policy.min_cosine]
        if len(fresh) >= 2:
            groups.append(sorted(fresh, key=lambda p: (-cosine[p], memories[p].id)))
    return groups


def candidates(rows: list[StoredMemory], policy: CompressPolicy, now: str
               ) -> tuple[list[int], np.ndarray]:
    """The positions ``considered`` and every row's vector stacked. Holds the GIL."""
    positions = considered([r.memory for r in rows], policy, now)
    if len(positions) < 2:
        return positions, np.zeros((0, 0), dtype=np.float32)
    return positions, np.stack([r.embedding for r in rows])


def centroid(vectors: np.ndarray) -> np.ndarray:
    """An extractive summary's vector: its members' mean direction. It stands for every
    member (the embedder would read only the first ~256 tokens of the joined text) and costs
    no model run, so a compress job leaves Triton to interactive traffic."""
    mean = vectors.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def summary_of(user_id: str, group: list[Memory], text: str, now: str) -> Memory:
    """The summary memory of a group (members most central first); its vector comes later."""
    first = group[0]
    expiries = [m.expires_at for m in group]
    return Memory(
        id=uuid7(), user_id=user_id, text=text, agent_id=first.agent_id, run_id=first.run_id,
        metadata={}, priority=max(m.priority for m in group), created_at=now, updated_at=now,
        embedding_model="", occurred_at=max(m.occurred_at for m in group),
        expires_at=None if None in expiries else max(e for e in expiries if e is not None),
        sources=tuple(sorted(m.id for m in group)),
    )


async def compress_user(service: MemoryService, user_id: str, policy: CompressPolicy,
                        summariser: Summariser, pacer: Pacer | None = None) -> CompressResult:
    """Fold one user's old, low-priority groups; a rerun finds none. Paced in slices
    (``gateway.jobs.pacing``): reads in pages, clustering per scope, writes of a few groups
    per transaction."""
    pacer = pacer or Pacer()
    now = utc_now()
    rows = await _compressible(service, user_id, policy, now, pacer)
    memories = [r.memory for r in rows]
    await pacer.turn()
    positions, vectors = await run_step(candidates, rows, policy, now)
    if len(positions) < 2:
        return CompressResult(len(positions), 0, 0)
    groups: list[list[int]] = []
    for members in by_scope(memories, positions):
        await pacer.turn()
        _, cells = await pacer.niced(cluster_rows, vectors, members, policy.group_size)
        await pacer.turn()
        groups.extend(await run_step(cell_groups, memories, vectors, members, policy, cells))
    labels = {m.embedding_model for m in memories}
    label = next(iter(labels)) if len(labels) == 1 else None
    summaries = archived = 0
    for chunk in write_chunks(groups):
        await pacer.turn()
        written = await _fold(service, user_id, memories, vectors, chunk, label, summariser,
                              now)
        summaries += written
        archived += sum(len(group) for group in chunk)
    return CompressResult(len(positions), summaries, archived)


async def _compressible(service: MemoryService, user_id: str, policy: CompressPolicy,
                        now: str, pacer: Pacer) -> list[StoredMemory]:
    """The job's input (``Store.compressible``), read in pages of ``READ_CHUNK``."""
    rows: list[StoredMemory] = []
    while True:
        await pacer.turn()
        page = await service.store.compressible(user_id, policy.max_priority, now,
                                                after=rows[-1].memory.id if rows else "",
                                                limit=READ_CHUNK)
        rows.extend(page)
        if len(page) < READ_CHUNK:
            return rows


async def _fold(service: MemoryService, user_id: str, memories: list[Memory],
                vectors: np.ndarray, groups: Sequence[Sequence[int]], label: str | None,
                summariser: Summariser, now: str) -> int:
    """Write the summaries of ``groups`` and archive their members, in one transaction
    (``MemoryService.fold``); ``label``: the one embedding space of the user's memories,
    None if they are in several (summaries are embedded then). How many summaries."""
    summaries, sources, payloads = [], [], []
    centroids: list[list[float] | None] = []
    for group in groups:
        members = [memories[p] for p in group]
        text, made_by = await summariser.summarise(members)
        summary = summary_of(user_id, members, text, now)
        summaries.append(summary)
        sources.append(members)
        payloads.append({"reason": "compress", "sources": list(summary.sources or ()),
                         "occurred_from": min(m.occurred_at for m in members),
                         "occurred_to": summary.occurred_at, **made_by})
        extract = made_by["summariser"] == "extractive" and label is not None
        centroids.append(centroid(vectors[list(group)]).tolist() if extract else None)
    await service.fold(summaries, sources, payloads, vectors=centroids, vectors_label=label)
    return len(summaries)
