"""What a client asks to write: a new memory, or changes to a stored one (domain values that
the API builds and the service applies)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from gateway.domain.model import StoredImage

DEFAULT_PRIORITY = 5


@dataclass(frozen=True, slots=True)
class NewMemory:
    user_id: str
    text: str
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int = DEFAULT_PRIORITY
    embedding: list[float] | None = None  # client-supplied, in the active model's space
    occurred_at: str | None = None  # UTC ISO-8601; None: when it is stored
    expires_at: str | None = None
    role: str | None = None  # a message's role (user, assistant, ...), for conversation ingest
    speaker: str | None = None  # a message's speaker name
    context: str | None = None  # a message's neighbours, for keyword search (conversation.py)
    image: StoredImage | None = None  # an image memory's picture (its text is the caption)


class Keep(enum.Enum):
    """A change that leaves a field as it is (where None would mean: clear it)."""

    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class MemoryChanges:
    text: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int | None = None
    occurred_at: str | None = None  # UTC ISO-8601 (None: unchanged)
    expires_at: str | None | Keep = Keep.KEEP  # None clears it
