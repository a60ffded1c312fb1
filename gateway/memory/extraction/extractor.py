"""The two LLM steps: facts from a conversation, then a decision per fact against the similar
stored memories. Answers are schema-constrained and validated again here: a decision that
names an id it was not shown is a failure (``made_up_id``), never applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.model import Memory
from gateway.domain.normalise import normalise_text
from gateway.memory.extraction.client import ChatClient, LLMFailure
from gateway.memory.extraction.prompts import Prompts

MAX_FACTS = 50  # per conversation; more is a model gone wrong
MAX_FACT_CHARS = 2_000


class Facts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facts: list[str] = Field(max_length=MAX_FACTS)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    id: str | None
    text: str


class Decisions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decisions: list[Decision] = Field(max_length=MAX_FACTS)


@dataclass(frozen=True, slots=True)
class Line:
    """One message as the model reads it."""

    role: str | None
    speaker: str | None
    when: str | None
    text: str

    def render(self) -> str:
        who = self.role or "text"
        if self.speaker:
            who += f" ({self.speaker})"
        return f"[{self.when}] {who}: {self.text}" if self.when else f"{who}: {self.text}"


@dataclass(frozen=True, slots=True)
class Resolved:
    """A validated decision: ``memory`` is the stored memory it acts on (None for ADD)."""

    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    text: str
    memory: Memory | None


async def extract_facts(client: ChatClient, prompts: Prompts, lines: list[Line]) -> list[str]:
    answer = await client.structured(prompts.extract_facts,
                                     "\n".join(line.render() for line in lines), Facts)
    facts = [normalise_text(f)[:MAX_FACT_CHARS] for f in answer.facts]
    return [f for f in facts if f]


async def decide(client: ChatClient, prompts: Prompts, facts: list[str],
                 similar: list[Memory]) -> list[Resolved]:
    """One decision per fact; similar memories are shown under short ids ("0", "1", ...),
    which the model copies more reliably than UUIDs."""
    shown = {str(i): memory for i, memory in enumerate(similar)}
    question = json.dumps({
        "new_facts": facts,
        "existing_memories": [{"id": key, "text": m.text} for key, m in shown.items()],
    }, ensure_ascii=False)
    answer = await client.structured(prompts.decide, question, Decisions)
    resolved: list[Resolved] = []
    touched: set[str] = set()
    for decision in answer.decisions:
        text = normalise_text(decision.text)[:MAX_FACT_CHARS]
        if decision.event == "ADD":
            if text:
                resolved.append(Resolved("ADD", text, None))
            continue
        memory = shown.get(decision.id or "")
        if memory is None:
            raise LLMFailure("made_up_id", f"{decision.event} names id {decision.id!r}, "
                             f"not one of {sorted(shown)}")
        if decision.event == "UPDATE" and not text:
            raise LLMFailure("schema", "UPDATE without a text")
        if decision.event != "NOOP" and memory.id in touched:
            raise LLMFailure("conflict", f"two changes to memory {decision.id}")
        if decision.event != "NOOP":
            touched.add(memory.id)
        resolved.append(Resolved(decision.event, text or memory.text, memory))
    return resolved
