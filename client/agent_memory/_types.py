"""The wire types, as TypedDicts: what the client sends and what it gets back.

They mirror the gateway's OpenAPI schema (the gateway's tests check that they match).
Responses are returned as plain dicts of these shapes; the server may add fields.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, NotRequired, TypedDict, Union

SearchMode = Literal["hybrid", "semantic", "keyword"]
Modality = Literal["text", "image"]

# --- requests ---------------------------------------------------------------------------------


class MemoryCreate(TypedDict):
    user_id: str
    text: str
    agent_id: NotRequired[str | None]
    run_id: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any] | None]
    priority: NotRequired[int]
    embedding: NotRequired[list[float] | None]


class ImageCreate(TypedDict):
    user_id: str
    image: str  # base64 PNG, JPEG or WebP
    text: NotRequired[str | None]  # its caption
    agent_id: NotRequired[str | None]
    run_id: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any] | None]
    priority: NotRequired[int]


class Message(TypedDict):
    role: str  # user, assistant, ...
    content: str
    name: NotRequired[str | None]  # the speaker
    timestamp: NotRequired[str | None]  # when it was said (ISO 8601)


class MessagesCreate(TypedDict):
    user_id: str
    messages: list[Message]
    agent_id: NotRequired[str | None]
    run_id: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any] | None]
    priority: NotRequired[int]
    infer: NotRequired[bool]  # extract facts with the server's LLM (when it has one)


class BatchCreate(TypedDict):
    items: list[MemoryCreate]


class SearchFilters(TypedDict, total=False):
    agent_id: str | None
    run_id: str | None
    metadata: dict[str, Any] | None
    created_after: str | None
    created_before: str | None


class SearchRequest(TypedDict):
    user_id: str
    query: NotRequired[str | None]
    embedding: NotRequired[list[float] | None]
    limit: NotRequired[int]
    filters: NotRequired[SearchFilters | None]
    threshold: NotRequired[float | None]
    rerank: NotRequired[bool | None]
    mode: NotRequired[SearchMode | None]  # None: the server's default (MEMORY_SEARCH_MODE)
    image: NotRequired[str | None]  # base64: search by image (image memories only)
    modality: NotRequired[Modality | None]  # None: text and image memories


class MemoryUpdate(TypedDict, total=False):
    text: str | None
    metadata: dict[str, Any] | None
    priority: int | None


# --- responses --------------------------------------------------------------------------------


class Memory(TypedDict):
    id: str
    user_id: str
    agent_id: str | None
    run_id: str | None
    text: str
    metadata: dict[str, Any]
    priority: int
    created_at: str
    updated_at: str
    embedding_model: str
    # "image": get_image(id) returns its picture; add_image and get also answer "image":
    # {mime, width, height, bytes, url}
    modality: Modality


class SearchHit(Memory):
    score: float  # orders the results, higher is better
    similarity: float  # cosine similarity of query and memory in [-1, 1]


class BatchResult(TypedDict):
    results: list[Memory]


class SearchResult(TypedDict):
    results: list[SearchHit]


class Page(TypedDict):
    results: list[Memory]
    next_cursor: str | None


class Deleted(TypedDict):
    deleted: int


class HistoryEvent(TypedDict):
    memory_id: str
    event: str  # ADD | UPDATE | DELETE
    old_text: str | None
    new_text: str | None
    payload: dict[str, Any]
    at: str


class History(TypedDict):
    results: list[HistoryEvent]


# Texts in, one vector per text out (same order). The async client also takes a coroutine.
EmbeddingFn = Callable[[Sequence[str]], Sequence[Sequence[float]]]
AsyncEmbeddingFn = Callable[
    [Sequence[str]],
    Union[Sequence[Sequence[float]], Awaitable[Sequence[Sequence[float]]]],  # noqa: UP007
]
