"""Mem0 wire types: the bodies the ``mem0ai`` client sends, and the memory objects it reads.

Request models list every field the client (2.2.1, and 1.0.x where it differs) may send and
forbid the rest, so a typo is a clear 422 rather than a silently ignored option. Fields we
accept but cannot act on (custom extraction instructions, graph memory) are listed as such.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api.schemas import (
    MAX_BATCH_ITEMS,
    MAX_SEARCH_LIMIT,
    RESERVED_METADATA_PREFIX,
    Metadata,
    Text,
)

DEFAULT_TOP_K = 10
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
MAX_FIELDS = 32

# Mem0 attributes the service has no column for ride in metadata under these reserved keys;
# they are lifted out again on the way back, and refused in what callers send as metadata.
RESERVED_PREFIX = RESERVED_METADATA_PREFIX
APP_KEY = RESERVED_PREFIX + "app_id"
ROLE_KEY = RESERVED_PREFIX + "role"
ACTOR_KEY = RESERVED_PREFIX + "actor_id"

Loose = Any  # accepted for compatibility, not acted on (see the module docstring)
EntityId = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # mem0ai 1.0.x puts the ids the ping returned into every body; they are not checked.
    org_id: str | None = None
    project_id: str | None = None


class Message(BaseModel):
    """One chat message; other keys chat messages carry (tool calls, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    role: Annotated[str, Field(min_length=1, max_length=64)]
    content: Text
    name: Annotated[str, Field(max_length=128)] | None = None


class AddIn(_Body):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    app_id: EntityId | None = None
    run_id: EntityId | None = None
    filters: dict[str, Any] | None = None  # 2.2.1 typed options put the entity ids here
    metadata: Metadata | None = None
    infer: bool | None = None  # unset: extract with the LLM when one is configured
    async_mode: bool | None = None  # true: queue it, answer PENDING with an event_id
    timestamp: int | float | None = None  # Unix seconds: when it happened
    expiration_date: str | None = None  # YYYY-MM-DD
    custom_categories: Loose = None
    custom_instructions: Loose = None
    agent_custom_instructions: Loose = None
    structured_data_schema: Loose = None
    includes: Loose = None
    excludes: Loose = None
    immutable: Loose = None
    output_format: Loose = None
    version: Loose = None
    enable_graph: Loose = None


class SearchIn(_Body):
    query: Text
    filters: dict[str, Any] | None = None
    top_k: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)] = DEFAULT_TOP_K
    threshold: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)] | None = None
    rerank: bool | None = None
    fields: Annotated[list[str], Field(max_length=MAX_FIELDS)] | None = None
    categories: list[str] | None = None
    metadata: dict[str, Any] | None = None  # extra metadata conditions
    show_expired: bool | None = None
    keyword_search: bool | None = None
    # 1.0.x sends the entity ids at the top level.
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    app_id: EntityId | None = None
    run_id: EntityId | None = None
    reference_date: Loose = None
    latest_only: Loose = None
    explain: Loose = None
    version: Loose = None
    output_format: Loose = None
    enable_graph: Loose = None
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)] | None = None  # 1.0.x alias


class ListIn(_Body):
    filters: dict[str, Any] | None = None
    categories: list[str] | None = None
    start_date: str | None = None
    end_date: str | None = None
    show_expired: bool | None = None
    fields: Annotated[list[str], Field(max_length=MAX_FIELDS)] | None = None
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    app_id: EntityId | None = None
    run_id: EntityId | None = None
    latest_only: Loose = None
    keywords: Loose = None
    version: Loose = None
    output_format: Loose = None
    enable_graph: Loose = None
    top_k: Loose = None


class UpdateIn(_Body):
    text: Text | None = None
    metadata: Metadata | None = None
    timestamp: int | float | str | None = None
    expiration_date: str | None = None


class BatchUpdateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_id: str
    text: Text | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _something(self) -> BatchUpdateItem:
        if self.text is None and self.metadata is None:
            raise ValueError("give text or metadata (or both) for each memory")
        return self


class BatchUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memories: Annotated[list[BatchUpdateItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class BatchDeleteItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory_id: str


class BatchDeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memories: Annotated[list[BatchDeleteItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


def text_hash(text: str) -> str:
    """Mem0's ``hash`` field: the MD5 of the memory text (a fingerprint, not security)."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
