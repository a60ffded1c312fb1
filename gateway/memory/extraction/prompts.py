"""The prompts, versioned as files next to this module (``<name>.v<N>.md``).

A prompt change is a new file and a new ``PROMPT_VERSION``; the version travels into each
memory's history, so a memory says which prompt wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPT_DIR = Path(__file__).parent / "prompts"
PROMPT_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Prompts:
    version: str
    extract_facts: str
    decide: str


@cache
def load(version: str = PROMPT_VERSION) -> Prompts:
    def read(name: str) -> str:
        return (PROMPT_DIR / f"{name}.{version}.md").read_text(encoding="utf-8")

    return Prompts(version, read("extract_facts"), read("decide"))
