"""Conversation context: a message is found by what its neighbours say.

A turn of a dialogue rarely names its topic ("Yes! Last Friday, it was amazing"): the question
it answers does. When memories are made from ``messages`` (one memory per message), each keeps
the neighbouring messages of the same request as its *context*: not part of the memory's text
(that stays the message as said), but indexed for keyword search in a column of its own,
weighted below the text (``gateway.store.types.CONTEXT_WEIGHT``). On the LoCoMo development
set this lifted keyword recall_any@10 from 0.638 to 0.775 (docs/benchmarks/retrieval.md).

Only what was sent together is context: messages of other requests are not read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CONTEXT_NEIGHBOURS = 1  # messages taken on each side
MAX_CONTEXT_CHARS = 4_000  # a neighbour's long message is cut: its head names the topic


@dataclass(frozen=True, slots=True)
class Said:
    """One kept message: who said it (name, else role) and what."""

    who: str
    text: str

    def line(self) -> str:
        return f"{self.who}: {self.text}"


def contexts(messages: Sequence[Said], neighbours: int = CONTEXT_NEIGHBOURS) -> list[str | None]:
    """For each message, its neighbours within ``neighbours`` places, in order, one line each;
    None for a message alone."""
    out: list[str | None] = []
    for i in range(len(messages)):
        around = [*messages[max(0, i - neighbours) : i], *messages[i + 1 : i + 1 + neighbours]]
        text = " ".join(m.line() for m in around)[:MAX_CONTEXT_CHARS]
        out.append(text or None)
    return out


def attributed(text: str, speaker: str | None) -> str:
    """What is embedded for a memory: its text, after its speaker's name when it has one.

    Questions name people ("What did Caroline research?"); a reply's own words rarely do.
    With the name, MiniLM's semantic recall_any@10 on the LoCoMo development set is 0.557;
    without it, 0.337. Keyword search indexes the name with the text likewise (migration 7).
    The stored text stays the message as said.
    """
    return f"{speaker}: {text}" if speaker else text
