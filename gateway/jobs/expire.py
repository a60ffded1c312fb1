"""The ``expire`` job for one user: delete the memories past their ``expires_at``.

Expired memories are already left out of search and list; this removes them from the store
and the index for good, each with a DELETE event (``{"reason": "expired"}``). An expired
summary gives its surviving sources back, like any deleted summary (``Store.delete_expired``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.jobs.pacing import Pacer
from gateway.memory.service import MemoryService


@dataclass(frozen=True, slots=True)
class ExpireResult:
    expired: int  # memories deleted


async def expire_user(service: MemoryService, user_id: str,
                      pacer: Pacer | None = None) -> ExpireResult:
    """Idempotent: a second run finds nothing expired that the first did not delete. One
    slice of the job's pacing (``gateway.jobs.pacing``), one transaction."""
    await (pacer or Pacer()).turn()
    return ExpireResult(await service.expire(user_id))
