"""Names in logs: a user id is logged as a short keyed digest, never as itself.

User ids are tenants' data (often e-mail addresses or names); a log line that names one
leaks it to whoever reads the logs. The digest is stable within a process, so the lines of one
partition still go together, and salted per process so it is no lookup table across runs.
"""

from __future__ import annotations

import hashlib
import secrets

_SALT = secrets.token_bytes(16)


def user_ref(user_id: str) -> str:
    """``u:`` and 12 hex digits of a salted BLAKE2b of ``user_id``."""
    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=6,
                             key=_SALT)
    return "u:" + digest.hexdigest()
