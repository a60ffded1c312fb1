"""What the sync and async clients share: request bodies, paths, retries, error mapping.

The two clients differ only in transport (``httpx.Client`` or ``httpx.AsyncClient``), in how
they sleep between retries and in how they call the embedding function.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import httpx

from agent_memory._exceptions import error_for
from agent_memory._routes import IMAGE_PATH, ROUTES
from agent_memory._types import (
    ImageCreate,
    MemoryCreate,
    Message,
    MessagesCreate,
    Modality,
    SearchMode,
    SearchRequest,
)

__version__ = "0.1.0"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = frozenset({429, 503})
BACKOFF_BASE_S = 0.5
MAX_RETRY_WAIT_S = 60.0  # a longer Retry-After is capped here
Data = str | Mapping[str, Any]
# The user a request is about, for a proxy in front of several gateway replicas to hash on
# (user affinity: docs/operations.md, "Replicas and routing"). A routing hint only: the gateway
# never reads it, so it grants nothing.
ROUTING_HEADER = "X-Memory-User"
_HEADER_SAFE = string.punctuation  # printable ASCII stays as is; the rest is percent-encoded


def headers(api_key: str | None) -> dict[str, str]:
    out = {"User-Agent": f"agent-memory-python/{__version__}", "Accept": "application/json"}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def routing(params: Mapping[str, Any] | None, body: Any) -> dict[str, str]:
    """The routing header for a request naming one user (in its query or its JSON body, a
    batch by its first item), so one user's requests land on one replica; none otherwise.

    ASCII ids are sent byte for byte, as a proxy reading ``user_id`` from a JSON body sees
    them, so both hash alike; other characters are percent-encoded (header values are ASCII).
    """
    user = (params or {}).get("user_id")
    if user is None and isinstance(body, Mapping):
        user = body.get("user_id")
        items = body.get("items")
        if user is None and isinstance(items, Sequence) and items:
            user = items[0].get("user_id") if isinstance(items[0], Mapping) else None
    if not isinstance(user, str) or not user:
        return {}
    return {ROUTING_HEADER: quote(user, safe=_HEADER_SAFE)}


def path(name: str, memory_id: str | None = None) -> str:
    template = ROUTES[name].path
    return template.replace("{id}", quote(memory_id, safe="")) if memory_id else template


def image_path(memory_id: str) -> str:
    return IMAGE_PATH.replace("{id}", quote(memory_id, safe=""))


def _scoped(body: Any, agent_id: str | None, run_id: str | None,
            metadata: Mapping[str, Any] | None, priority: int | None) -> None:
    """The optional fields every kind of add shares, set only when given."""
    if agent_id is not None:
        body["agent_id"] = agent_id
    if run_id is not None:
        body["run_id"] = run_id
    if metadata:
        body["metadata"] = dict(metadata)
    if priority is not None:
        body["priority"] = priority


def image_body(user_id: str, image: bytes, text: str | None, *, agent_id: str | None,
               run_id: str | None, metadata: Mapping[str, Any] | None,
               priority: int | None) -> ImageCreate:
    body: ImageCreate = {"user_id": user_id, "image": base64.b64encode(image).decode("ascii")}
    if text is not None:
        body["text"] = text
    _scoped(body, agent_id, run_id, metadata, priority)
    return body


def split(data: Data) -> tuple[str, dict[str, Any]]:
    """``{"text": ..., **metadata}`` (or a bare string) into text and metadata."""
    if isinstance(data, str):
        return data, {}
    if "text" not in data:
        raise ValueError("data needs a 'text' entry: {'text': ..., **metadata}")
    return data["text"], {k: v for k, v in data.items() if k != "text"}


def memory_body(user_id: str, data: Data, *, agent_id: str | None, run_id: str | None,
                priority: int | None, embedding: Sequence[float] | None) -> MemoryCreate:
    text, metadata = split(data)
    body: MemoryCreate = {"user_id": user_id, "text": text}
    _scoped(body, agent_id, run_id, metadata, priority)
    if embedding is not None:
        body["embedding"] = vector(embedding)
    return body


def messages_body(user_id: str, messages: Sequence[Mapping[str, Any]], *,
                  agent_id: str | None, run_id: str | None,
                  metadata: Mapping[str, Any] | None, priority: int | None,
                  infer: bool | None) -> MessagesCreate:
    body: MessagesCreate = {"user_id": user_id,
                            "messages": [cast(Message, dict(m)) for m in messages]}
    _scoped(body, agent_id, run_id, metadata, priority)
    if infer is not None:
        body["infer"] = infer
    return body


def search_body(user_id: str, query: str | None, *, limit: int,
                filters: Mapping[str, Any] | None, threshold: float | None,
                rerank: bool | None, embedding: Sequence[float] | None,
                mode: SearchMode | None = None, image: bytes | None = None,
                modality: Modality | None = None) -> SearchRequest:
    if (query is None) == (image is None):
        raise ValueError("give a text query or an image to search by, not both")
    body: SearchRequest = {"user_id": user_id, "limit": limit}
    if image is not None:
        body["image"] = base64.b64encode(image).decode("ascii")
    elif embedding is not None:
        body["embedding"] = vector(embedding)
    else:
        body["query"] = query
    if modality is not None:
        body["modality"] = modality
    if filters:
        body["filters"] = dict(filters)  # type: ignore[typeddict-item]
    if threshold is not None:
        body["threshold"] = threshold
    if rerank is not None:
        body["rerank"] = rerank
    if mode is not None:
        body["mode"] = mode
    return body


def vector(values: Sequence[float]) -> list[float]:
    """Plain floats (numpy arrays and tensors come in too)."""
    return [float(v) for v in values]


def check_vectors(texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
    if len(vectors) != len(texts):
        raise ValueError(f"embedding_fn returned {len(vectors)} vectors for {len(texts)} texts")


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def retry_delay(response: httpx.Response | None, attempt: int, retries: int) -> float | None:
    """Seconds to wait before retrying, or None not to retry. ``response`` None means the
    connection could not be made (the request never reached the server: safe to repeat)."""
    if attempt >= retries:
        return None
    if response is not None and response.status_code not in RETRY_STATUSES:
        return None
    # Jitter, not a secret: the standard generator is right here.
    backoff = BACKOFF_BASE_S * 2.0 ** attempt * (0.5 + random.random() / 2)  # noqa: S311
    if response is not None:
        try:
            asked = float(response.headers["retry-after"])
            return min(MAX_RETRY_WAIT_S, max(0.0, asked))
        except (KeyError, ValueError):
            pass
    return min(MAX_RETRY_WAIT_S, backoff)


def result(response: httpx.Response) -> Any:
    """The JSON answer, or the typed exception for an error status."""
    if response.status_code >= 400:
        raise error_for(response)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()
