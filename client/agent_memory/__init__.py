"""Python client for the agent memory gateway.

    from agent_memory import MemoryClient
    client = MemoryClient("http://127.0.0.1:8080", api_key=KEY)
    client.add(user_id="alice", data={"text": "prefers window seats", "source": "chat"})
    for mem in client.search(user_id="alice", query="seating preference", limit=5):
        print(mem["text"], mem["score"])
"""

from agent_memory._client import AsyncMemoryClient, MemoryClient
from agent_memory._core import __version__
from agent_memory._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemoryServiceError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from agent_memory._routes import MAX_BATCH_ITEMS
from agent_memory._types import HistoryEvent, Memory, Message, SearchHit

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AsyncMemoryClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "HistoryEvent",
    "InternalServerError",
    "MAX_BATCH_ITEMS",
    "Memory",
    "MemoryClient",
    "MemoryServiceError",
    "Message",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "SearchHit",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "__version__",
]
