"""Turns a request's credentials into a ``Principal``, or refuses them.

Accepted: ``Authorization: Bearer <key>``, ``Authorization: Token <key>`` (the Mem0 client) and
``X-API-Key: <key>``. A key that is not even well-formed (too long, non-ASCII, wrong shape) is
refused without a lookup; a well-formed one always costs one lookup by its id and one
constant-time hash comparison, whether the id exists or not, so an unknown key and a wrong
one cannot be told apart by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.auth.keys import DUMMY_HASH, MAX_KEY_CHARS, key_id_of, matches
from gateway.auth.principal import ANONYMOUS, Principal
from gateway.auth.store import KeyStore
from gateway.errors import Unauthorized
from gateway.store.base import KeyTable

T = TypeVar("T")

AUTHORIZATION = b"authorization"
API_KEY_HEADER = b"x-api-key"
SCHEMES = ("bearer", "token")
INVALID = "invalid API key"
MISSING = ("missing API key: send 'Authorization: Bearer <key>' (or 'Token <key>') "
           "or 'X-API-Key: <key>'")


def credential(headers: dict[bytes, bytes]) -> str | None:
    """The key the request presents; None if it presents none. Raises for a malformed one."""
    raw = headers.get(AUTHORIZATION)
    if raw is not None:
        scheme, _, value = raw.partition(b" ")
        if scheme.lower().decode("latin-1") not in SCHEMES:
            raise Unauthorized(f"{INVALID}: use the Bearer or Token scheme")
    else:
        value = headers.get(API_KEY_HEADER, b"")
        if not value:
            return None
    value = value.strip()
    if len(value) > MAX_KEY_CHARS or not value.isascii():
        raise Unauthorized(INVALID)
    return value.decode("ascii")


class Authenticator:
    """Resolves keys against the key store (off the event loop, on one worker thread)."""

    def __init__(self, keys_path: Path, *, required: bool,
                 table: KeyTable | None = None) -> None:
        self.required = required
        self.store = KeyStore(keys_path, table)  # table None: the SQLite keys file
        self._executor: ThreadPoolExecutor | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("authenticator is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def open(self) -> None:
        """Open the keys file (created if absent) when authentication is required."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keys")
        if self.required:
            await self._run(self.store.open)

    async def close(self) -> None:
        if self._executor is not None:
            await self._run(self.store.close)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def resolve(self, headers: dict[bytes, bytes]) -> Principal | None:
        """The caller, None when no key was presented (the route decides), or Unauthorized."""
        if not self.required:
            return ANONYMOUS
        key = credential(headers)
        if key is None:
            return None
        key_id = key_id_of(key)
        if key_id is None:
            raise Unauthorized(INVALID)
        record = await self._run(self.store.find, key_id)
        if not matches(key, record.hash if record is not None else DUMMY_HASH) or record is None:
            raise Unauthorized(INVALID)
        refused = record.usable(datetime.now(UTC))
        if refused is not None:
            raise Unauthorized(refused)
        return Principal(record.tenant, record.scope, record.key_id, record.rate_per_s)
