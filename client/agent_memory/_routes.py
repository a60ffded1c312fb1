"""The gateway routes the client calls, with their request and response types.

One table, so the request-building core and the gateway's OpenAPI check read the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_memory import _types as t

MAX_BATCH_ITEMS = 1_000  # the gateway's limit per POST /v1/memories/batch
MAX_PAGE_LIMIT = 1_000  # the gateway's largest page


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {id} where a memory id goes
    request: type | None  # JSON body type, None without a body
    response: type | None  # JSON response type, None for an empty answer
    query: tuple[str, ...] = ()  # query parameters the client sends


ROUTES: dict[str, Route] = {
    "add": Route("POST", "/v1/memories", t.MemoryCreate, t.Memory),
    "add_image": Route("POST", "/v1/memories", t.ImageCreate, t.Memory),
    "add_messages": Route("POST", "/v1/memories", t.MessagesCreate, t.BatchResult),
    "add_batch": Route("POST", "/v1/memories/batch", t.BatchCreate, t.BatchResult),
    "search": Route("POST", "/v1/memories/search", t.SearchRequest, t.SearchResult),
    "get": Route("GET", "/v1/memories/{id}", None, t.Memory),
    "list": Route("GET", "/v1/memories", None, t.Page, ("user_id", "limit", "cursor")),
    "update": Route("PATCH", "/v1/memories/{id}", t.MemoryUpdate, t.Memory),
    "delete": Route("DELETE", "/v1/memories/{id}", None, None),
    "delete_all": Route("DELETE", "/v1/memories", None, t.Deleted, ("user_id",)),
    "history": Route("GET", "/v1/memories/{id}/history", None, t.History),
}
IMAGE_PATH = "/v1/memories/{id}/image"  # answers the picture's bytes, not JSON
