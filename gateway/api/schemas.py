"""Wire types: what clients send and receive. Limits are named constants, enforced here.

Every request model forbids unknown fields, so a typo ("userid") is a 422, not a silent default.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gateway.domain.model import (
    MAX_TEXT_CHARS,
    HistoryEvent,
    Memory,
    ScoredMemory,
    SearchFilters,
    StoredImage,
)

MAX_ID_CHARS = 128
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8
MAX_FILTER_KEYS = 32
MAX_EMBEDDING_DIM = 8_192
MAX_BATCH_ITEMS = 1_000
MAX_SEARCH_LIMIT = 100
MAX_PAGE_LIMIT = 1_000
MIN_PRIORITY, MAX_PRIORITY = 0, 10
MIN_YEAR, MAX_YEAR = 1900, 2200  # dates outside are typos or units mix-ups, not events
MAX_HALF_LIFE_DAYS = 36_500
MAX_MESSAGES = 200  # per conversation (one add, or one batch item)
MAX_ROLE_CHARS = 32
# A base64 image: the decoded size is bounded by MEMORY_IMAGE_MAX_BYTES, the whole body by
# GATEWAY_MAX_BODY_BYTES; this only stops absurd strings before they are decoded.
MAX_IMAGE_BASE64_CHARS = 90_000_000


def _encodable(value: str) -> str:
    """Reject lone surrogates (legal in JSON escapes, illegal in UTF-8 and SQLite)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no lone surrogates)") from exc
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or whitespace only")
    return value


def _no_control(value: str) -> str:
    """Ids carry no control characters (``\x1f`` separates a tenant from its user ids)."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_METADATA_DEPTH} levels")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("must be strict JSON (no NaN/Infinity, valid Unicode)") from exc
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    return value


def _utc_text(value: datetime) -> str:
    """Store-format timestamp; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: object) -> object:
    """Only ISO-8601 text: no epoch numbers (seconds or milliseconds?), a bare date = midnight
    UTC."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO-8601 date-time such as 2023-05-08T13:56:00+02:00")
    return value + "T00:00:00Z" if _ISO_DATE.fullmatch(value) else value


def _plausible(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year must lie in {MIN_YEAR}..{MAX_YEAR}")
    return value


Text = Annotated[
    str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_encodable), AfterValidator(_not_blank)
]
ScopeId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_encodable),
    AfterValidator(_not_blank), AfterValidator(_no_control),
]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]
# Metadata keys the Mem0 API keeps for attributes the service has no column for (app_id,
# role...): the /v1 API shows them and refuses them in what a caller writes.
RESERVED_METADATA_PREFIX = "mem0:"


def _unreserved(value: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(k for k in value if k.startswith(RESERVED_METADATA_PREFIX))
    if reserved:
        raise ValueError(f"keys starting with {RESERVED_METADATA_PREFIX!r} are reserved: "
                         f"{', '.join(reserved)}")
    return value


def _in_utc(value: datetime) -> datetime:
    """A moment that has a UTC time (0001-01-01T00:00:00+01:00 has none: it overflows)."""
    try:
        _utc_text(value)
    except OverflowError as exc:
        raise ValueError("must lie between years 1 and 9999 in UTC") from exc
    return value


WrittenMetadata = Annotated[Metadata, AfterValidator(_unreserved)]
Instant = Annotated[datetime, AfterValidator(_in_utc)]
Priority = Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY, strict=True)]
Embedding = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]],
    Field(min_length=1, max_length=MAX_EMBEDDING_DIM),
]
# When something happened or expires: ISO-8601 with an offset (naive = UTC), stored in UTC.
Moment = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_plausible)]
# A filter key or text value longer than stored metadata may be can match nothing: refused.
FilterText = Annotated[str, Field(max_length=MAX_METADATA_BYTES), AfterValidator(_encodable)]
FilterValue = FilterText | int | float | bool | None
# PNG, JPEG or WebP as base64 (a ``data:image/...;base64,`` prefix is accepted).
ImageData = Annotated[str, Field(min_length=1, max_length=MAX_IMAGE_BASE64_CHARS)]
Modality = Literal["text", "image"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(Request):
    """One message of a conversation (Mem0's shape); it becomes one memory when non-empty."""

    role: Annotated[str, Field(min_length=1, max_length=MAX_ROLE_CHARS,
                               pattern=r"^[a-z][a-z0-9_-]*$")]
    content: Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(_encodable)]
    name: ScopeId | None = None  # the speaker
    timestamp: Moment | None = None  # when it was said: the memory's occurred_at


class MemoryIn(Request):
    user_id: ScopeId
    text: Text | None = None  # give exactly one of text and messages
    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_MESSAGES)] | None = None
    agent_id: ScopeId | None = None
    run_id: ScopeId | None = None
    metadata: WrittenMetadata | None = None
    priority: Priority = 5
    embedding: Embedding | None = None
    occurred_at: Moment | None = None  # when it happened; default: when it is stored
    expires_at: Moment | None = None  # left out of search and list from then on
    dedup: Annotated[bool, Field(strict=True)] | None = None  # None: MEMORY_DEDUP_ENABLED
    infer: Annotated[bool, Field(strict=True)] = False  # extract facts with the LLM
    async_mode: Annotated[bool, Field(strict=True)] = False  # 202 + an event id
    image: ImageData | None = None  # an image memory; ``text`` is then its optional caption

    @model_validator(mode="after")
    def _text_or_messages(self) -> MemoryIn:
        if self.image is not None:
            clashing = [name for name in ("messages", "embedding") if getattr(self, name)]
            clashing += [name for name in ("infer", "async_mode") if getattr(self, name)]
            if clashing:
                raise ValueError(f"an 'image' memory takes no {', '.join(map(repr, clashing))}: "
                                 "it is embedded by the CLIP model, stored at once, as given")
            return self
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of 'text' or 'messages'")
        if self.messages is not None and self.embedding is not None:
            raise ValueError("'embedding' goes with 'text'; messages are embedded here")
        return self


class BatchIn(Request):
    items: Annotated[list[MemoryIn], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    dedup: Annotated[bool, Field(strict=True)] | None = None  # None: MEMORY_DEDUP_ENABLED
    infer: Annotated[bool, Field(strict=True)] = False
    async_mode: Annotated[bool, Field(strict=True)] = False


class FiltersIn(Request):
    agent_id: ScopeId | None = None
    run_id: ScopeId | None = None
    metadata: Annotated[dict[FilterText, FilterValue],
                        Field(max_length=MAX_FILTER_KEYS)] | None = None
    created_after: Instant | None = None
    created_before: Instant | None = None
    occurred_after: Moment | None = None  # inclusive
    occurred_before: Moment | None = None  # exclusive


class RankingIn(Request):
    """Per-request override of the ranking policy (MEMORY_RANKING_*); 0 turns a part off."""

    recency_half_life_days: Annotated[
        float, Field(ge=0, le=MAX_HALF_LIFE_DAYS, allow_inf_nan=False)] | None = None
    priority_weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class SearchIn(Request):
    user_id: ScopeId
    query: Text | None = None
    embedding: Embedding | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT, strict=True)] = 10
    filters: FiltersIn | None = None
    # Bounds the cosine similarity, also when reranking (applied before the reranker).
    threshold: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)] | None = None
    # Cross-encoder second stage; None: the server's default (MEMORY_RERANK_DEFAULT).
    rerank: Annotated[bool, Field(strict=True)] | None = None
    # None: MEMORY_SEARCH_MODE. An 'embedding' query is semantic only.
    mode: Literal["hybrid", "semantic", "keyword"] | None = None
    ranking: RankingIn | None = None
    include_expired: Annotated[bool, Field(strict=True)] = False
    # Archived memories (folded into a summary by the compress job), scored exactly.
    include_archived: Annotated[bool, Field(strict=True)] = False
    # Search by image: memories whose picture is like this one (CLIP space, images only).
    image: ImageData | None = None
    modality: Modality | None = None  # only text or only image memories; None: both

    @model_validator(mode="after")
    def _one_query(self) -> SearchIn:
        if sum(v is not None for v in (self.query, self.embedding, self.image)) != 1:
            raise ValueError("give exactly one of 'query' (text), 'embedding' (vector) or "
                             "'image' (base64)")
        if self.image is not None and self.modality == "text":
            raise ValueError("a search by 'image' finds image memories only; drop "
                             "modality 'text'")
        if self.image is not None and (self.rerank or self.mode == "keyword"):
            raise ValueError("a search by 'image' compares pictures: it cannot rerank or "
                             "run in mode 'keyword'")
        if self.mode == "keyword" and self.query is None:
            raise ValueError("mode 'keyword' needs a text 'query'; an 'embedding' can only be "
                             "searched semantically")
        return self


class MemoryPatch(Request):
    text: Text | None = None
    metadata: WrittenMetadata | None = None
    priority: Priority | None = None
    occurred_at: Moment | None = None
    expires_at: Moment | None = None  # null clears it

    @model_validator(mode="after")
    def _something(self) -> MemoryPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one of 'text', 'metadata', 'priority', "
                             "'occurred_at', 'expires_at'")
        for name in ("text", "metadata", "priority", "occurred_at"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"'{name}' cannot be null")
        return self


class MemoryOut(BaseModel):
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
    occurred_at: str
    expires_at: str | None
    role: str | None = None  # for a memory made from a message: who said it
    speaker: str | None = None
    archived_at: str | None = None  # set: folded into the summary ``summary_id``
    summary_id: str | None = None
    sources: list[str] | None = None  # on a summary: the ids of the memories it folds
    modality: Modality  # "image": its picture is at GET /v1/memories/{id}/image
    image: ImageOut | None = None  # an image memory's picture, on reads by id and on adds

    @classmethod
    def of(cls, memory: Memory, image: ImageOut | None = None) -> MemoryOut:
        return cls(**{name: getattr(memory, name) for name in _MEMORY_FIELDS}, image=image)


class ImageOut(BaseModel):
    """What is stored of an image memory's picture (re-encoded without metadata)."""

    mime: str
    width: int
    height: int
    bytes: int
    url: str  # GET it for the picture itself

    @classmethod
    def of(cls, memory_id: str, image: StoredImage) -> ImageOut:
        return cls(mime=image.mime, width=image.width, height=image.height,
                   bytes=len(image.data), url=f"/v1/memories/{memory_id}/image")


class SearchHitOut(MemoryOut):
    score: float  # what ordered the results (docs/api.md: it depends on the mode)
    similarity: float | None  # cosine of query and memory in [-1, 1]; null: not computed
    keyword_score: float | None  # BM25 (> 0); null: keyword search did not return it

    @classmethod
    def of_scored(cls, scored: ScoredMemory) -> SearchHitOut:
        fields = {name: getattr(scored.memory, name) for name in _MEMORY_FIELDS}
        return cls(**fields, score=scored.score, similarity=scored.similarity,
                   keyword_score=scored.keyword_score)


# MemoryOut's fields that are the domain Memory's (``image`` is read apart, by id).
_MEMORY_FIELDS = tuple(name for name in MemoryOut.model_fields if name != "image")


class AddedOut(MemoryOut):
    """One written memory and what the write did to it (Mem0's events)."""

    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]  # DELETE: only LLM decisions
    item: int  # the request's item it came from (0 for a single add)
    match: Literal["exact", "near"] | None = None  # how it was found to be a duplicate


class InferenceOut(BaseModel):
    """What LLM extraction did; ``fallback`` says where the input went when it failed."""

    status: Literal["SUCCEEDED", "FAILED"]
    fallback: Literal["raw", "queued"] | None = None
    detail: str | None = None
    event_id: str | None = None  # the retry queue's event, with fallback "queued"


class BatchOut(BaseModel):
    results: list[AddedOut]
    inference: InferenceOut | None = None


class AcceptedOut(BaseModel):
    """``async_mode``: the request is stored; ``GET /v1/events/{event_id}`` follows it."""

    event_id: str
    status: Literal["PENDING"]


class EventOut(BaseModel):
    """An asynchronous or queued ingest request: its status and, once run, its results."""

    event_id: str
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
    attempts: int
    error: str | None  # the last failure, while retrying or after giving up
    created_at: str
    updated_at: str
    results: list[AddedOut]  # what was written so far
    inference: InferenceOut | None


class SearchOut(BaseModel):
    mode: Literal["hybrid", "semantic", "keyword"]  # the mode actually used
    results: list[SearchHitOut]


class PageOut(BaseModel):
    results: list[MemoryOut]
    next_cursor: str | None


class DeletedOut(BaseModel):
    deleted: int


class HistoryEventOut(BaseModel):
    memory_id: str
    event: str
    old_text: str | None
    new_text: str | None
    payload: dict[str, Any]
    at: str

    @classmethod
    def of(cls, event: HistoryEvent) -> HistoryEventOut:
        return cls(**{name: getattr(event, name) for name in cls.model_fields})


class HistoryOut(BaseModel):
    results: list[HistoryEventOut]


def filters_to_domain(filters: FiltersIn | None) -> SearchFilters:
    if filters is None:
        return SearchFilters()
    return SearchFilters(
        agent_id=filters.agent_id,
        run_id=filters.run_id,
        metadata=dict(filters.metadata or {}),
        created_after=_utc_text(filters.created_after) if filters.created_after else None,
        created_before=_utc_text(filters.created_before) if filters.created_before else None,
        occurred_after=moment_text(filters.occurred_after),
        occurred_before=moment_text(filters.occurred_before),
    )


def moment_text(value: datetime | None) -> str | None:
    return None if value is None else _utc_text(value)
