"""API key format and hashing.

A key reads ``amk_<id>_<secret>``: ``id`` (12 hex characters) is not secret and finds the
stored row; ``secret`` is 32 random bytes. Only the SHA-256 of the whole key is stored: with
256 bits of entropy a fast hash is enough (no dictionary to guard against), and it keeps the
per-request check in microseconds. Keys are shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "amk_"
KEY_ID_CHARS = 12
SECRET_BYTES = 32
MAX_KEY_CHARS = 128  # anything longer is refused before any work
_KEY = re.compile(rf"^{PREFIX}([0-9a-f]{{{KEY_ID_CHARS}}})_([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    secret_key: str  # the full key: shown once, never stored or logged
    hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


# Compared against when the key id is unknown, so an unknown key and a wrong one do the same
# work (a lookup and one constant-time comparison).
DUMMY_HASH = hash_key(PREFIX + "0" * KEY_ID_CHARS + "_" + "0" * 43)


def generate() -> NewKey:
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key_id, key, hash_key(key))


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key; None for anything else (too long, non-ASCII, ...)."""
    if len(key) > MAX_KEY_CHARS or not key.isascii():
        return None
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
