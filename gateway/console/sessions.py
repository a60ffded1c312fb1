"""Console sessions, kept server-side: the browser holds only a random session id.

The API key a person signs in with stays in this process (never in a cookie or a URL), and is
resolved again on every page, so a revoked or expired key ends its sessions at once. Each
session has its own CSRF token, sent back in every form and compared in constant time. The
store is bounded (the oldest session is dropped past ``MAX_SESSIONS``) and sessions end after
``MEMORY_CONSOLE_SESSION_S``; a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"  # the sign-in form's own CSRF token (double submit)
MAX_SESSIONS = 10_000
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    key: str | None  # the API key; None where authentication is off (the local user)
    csrf: str
    expires: float  # time.monotonic() seconds


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether a presented token is the expected one (constant time; missing never matches)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class Sessions:
    """Session id -> ``Session``; bounded, expiring, safe to share between requests."""

    def __init__(self, ttl_s: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl_s, self.max_sessions = ttl_s, max_sessions
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, key: str | None) -> tuple[str, Session]:
        session_id = new_token()
        session = Session(key, new_token(), time.monotonic() + self.ttl_s)
        with self._lock:
            self._by_id[session_id] = session
            while len(self._by_id) > self.max_sessions:
                self._by_id.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 2 * TOKEN_BYTES:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires <= time.monotonic():
                del self._by_id[session_id]
                return None
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def __len__(self) -> int:
        return len(self._by_id)
