"""A client for OpenAI-compatible chat completions with JSON-schema-constrained answers.

Every failure becomes one ``LLMFailure`` with a short reason (``timeout``, ``connect``,
``http_500``, ``invalid_json``, ``schema``...), so the caller decides what to do with the input
(keep it raw, or queue it) without knowing HTTP. Retries with exponential backoff are bounded;
a ``Retry-After`` from the server is honoured up to the backoff cap. What the provider said
(an error body, a malformed answer) goes to the log, never into the failure's message: that
message reaches tenants (the ``inference.detail`` of an add), and a provider's error body may
name its account, its quota or another caller's request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger("gateway.llm")
MAX_LOGGED_CHARS = 500
MAX_BACKOFF_S = 30.0
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMFailure(Exception):
    """The LLM gave no usable answer; ``reason`` says why, in a few words."""

    def __init__(self, reason: str, detail: str = "", *, retriable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retriable = retriable  # False: asking again cannot help (a 400, a 401)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LLMConfig:
    base_url: str  # e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    attempts: int = 3  # per call, the first one included
    backoff_s: float = 1.0  # the wait after the first failure; doubles after each


class ChatClient:
    def __init__(self, config: LLMConfig, *, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.AsyncClient(base_url=config.base_url.rstrip("/") + "/",
                                       headers=headers, timeout=config.timeout_s,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def structured(self, system: str, user: str, answer: type[T]) -> T:
        """The model's answer to (system, user), parsed into ``answer``; retried on failure."""
        failure = LLMFailure("no attempt")
        for attempt in range(self.config.attempts):
            try:
                return await self._once(system, user, answer)
            except LLMFailure as exc:
                if not exc.retriable:
                    raise
                failure = exc
            if attempt + 1 < self.config.attempts:
                backoff = self.config.backoff_s * 2 ** attempt
                await asyncio.sleep(min(max(backoff, failure.retry_after or 0.0), MAX_BACKOFF_S))
        raise failure

    async def _once(self, system: str, user: str, answer: type[T]) -> T:
        body = {
            "model": self.config.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": user}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": answer.__name__, "strict": True, "schema": answer.model_json_schema()}},
        }
        try:
            response = await self._http.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise LLMFailure("timeout", f"no answer within {self.config.timeout_s} s") from exc
        except httpx.HTTPError as exc:
            raise LLMFailure("connect", type(exc).__name__) from exc
        if response.status_code != 200:
            retry_after = response.headers.get("Retry-After", "")
            log.warning("LLM provider answered HTTP %d: %s", response.status_code,
                        response.text[:MAX_LOGGED_CHARS])
            raise LLMFailure(f"http_{response.status_code}",
                             f"the LLM provider answered HTTP {response.status_code}",
                             retriable=response.status_code in RETRIED_STATUSES,
                             retry_after=float(retry_after) if retry_after.isdigit() else None)
        try:
            content = response.json()["choices"][0]["message"]["content"]
            return answer.model_validate(json.loads(content))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            reason = "schema" if isinstance(exc, ValidationError) else "invalid_json"
            log.warning("LLM provider's answer is unusable (%s): %s", reason,
                        str(exc)[:MAX_LOGGED_CHARS])
            raise LLMFailure(reason, "the LLM provider's answer did not follow the schema"
                             if reason == "schema" else "the LLM provider's answer is not "
                             "the JSON asked for") from exc
