"""``infer: true`` for one conversation: extract facts, find the similar stored memories,
let the model decide, apply the decision set in one transaction.

Any failure (the LLM's, or a memory changed meanwhile) raises ``LLMFailure`` before anything
is written; the caller then keeps the raw messages (see ``gateway.memory.events``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.domain.model import Memory, SearchFilters
from gateway.errors import Conflict
from gateway.memory.dedup import DedupPolicy
from gateway.memory.extraction.client import ChatClient, LLMFailure
from gateway.memory.extraction.extractor import Line, decide, extract_facts
from gateway.memory.extraction.prompts import Prompts
from gateway.memory.search import SearchQuery
from gateway.memory.service import MemoryService
from gateway.memory.writeplan import Draft, Event, Outcome

SIMILAR_PER_FACT = 5  # stored memories shown to the model for each new fact


@dataclass(frozen=True, slots=True)
class Inferred:
    """One applied decision: what happened to which memory."""

    event: Event | str  # ADD, UPDATE, NOOP, or DELETE
    memory: Memory


class Extraction:
    def __init__(self, service: MemoryService, client: ChatClient, prompts: Prompts,
                 policy: DedupPolicy) -> None:
        self.service = service
        self.client = client
        self.prompts = prompts
        self.policy = policy

    async def run(self, drafts: list[Draft]) -> list[Inferred]:
        """Facts from the drafts (one conversation, one scope), decided and applied."""
        lines = [Line(d.memory.role, d.memory.speaker, d.memory.occurred_at, d.memory.text)
                 for d in drafts]
        facts = await extract_facts(self.client, self.prompts, lines)
        if not facts:
            return []
        similar = await self._similar(drafts[0], facts)
        for attempt in range(self.client.config.attempts):  # a made-up id: ask again
            try:
                decisions = await decide(self.client, self.prompts, facts, similar)
                break
            except LLMFailure as exc:
                if exc.reason not in ("made_up_id", "conflict", "schema") or (
                        attempt + 1 == self.client.config.attempts):
                    raise
        base = drafts[0]
        latest = max((d.memory.occurred_at for d in drafts if d.memory.occurred_at),
                     default=None)
        adds = [replace(base, memory=replace(base.memory, text=d.text, role=None, speaker=None,
                                             occurred_at=latest, embedding=None))
                for d in decisions if d.event == "ADD"]
        edits = [(d.memory, d.text) for d in decisions if d.event == "UPDATE" and d.memory]
        deletes = [d.memory for d in decisions if d.event == "DELETE" and d.memory]
        payload = {"source": "llm", "prompt": self.prompts.version,
                   "model": self.client.config.model}
        try:
            added, edited = await self.service.apply_inferred(adds, edits, deletes,
                                                              self.policy, payload)
        except Conflict as exc:
            raise LLMFailure("conflict", str(exc.detail)) from exc
        return _in_order(decisions, added, edited)

    async def _similar(self, base: Draft, facts: list[str]) -> list[Memory]:
        """The stored memories of the scope nearest to any fact, each once."""
        scope = SearchFilters(agent_id=base.memory.agent_id, run_id=base.memory.run_id)
        seen: dict[str, Memory] = {}
        for fact in facts:
            hits = await self.service.search(SearchQuery(
                user_id=base.memory.user_id, query=fact, limit=SIMILAR_PER_FACT, filters=scope,
                mode="semantic"))
            for hit in hits:
                if (hit.memory.agent_id, hit.memory.run_id) == (base.memory.agent_id,
                                                                 base.memory.run_id):
                    seen.setdefault(hit.memory.id, hit.memory)
        return list(seen.values())


def _in_order(decisions: list, added: list[Outcome], edited: list[Memory]) -> list[Inferred]:
    adds, edits = iter(added), iter(edited)
    out: list[Inferred] = []
    for decision in decisions:
        if decision.event == "ADD":
            outcome = next(adds)
            out.append(Inferred(outcome.event, outcome.memory))
        elif decision.event == "UPDATE":
            out.append(Inferred("UPDATE", next(edits)))
        else:
            assert decision.memory is not None
            out.append(Inferred(decision.event, decision.memory))
    return out
