"""The SQL conditions of ``SearchFilters`` on ``memories m``, shared by the backends.

One place decides what each filter means (exact scopes, half-open time ranges, liveness,
metadata), so SQLite and PostgreSQL cannot drift apart; a backend gives only its parameter
mark and how it tests one metadata key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.domain.model import SearchFilters

MetadataCondition = Callable[[str, Any], tuple[str, list[Any]]]


def filter_conditions(user_id: str, filters: SearchFilters, mark: str,
                      metadata_condition: MetadataCondition) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``memories m`` for one user and every given filter; ``mark`` is the
    backend's parameter placeholder (``?`` or ``%s``)."""
    where: list[str] = [f"m.user_id = {mark}"]
    args: list[Any] = [user_id]
    for column in ("agent_id", "run_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"m.{column} = {mark}")
            args.append(value)
    ranges = (("created_at", filters.created_after, filters.created_before),
              ("occurred_at", filters.occurred_after, filters.occurred_before))
    for column, after, before in ranges:
        if after is not None:
            where.append(f"m.{column} >= {mark}")
            args.append(after)
        if before is not None:
            where.append(f"m.{column} < {mark}")
            args.append(before)
    if filters.live_at is not None:
        where.append(f"(m.expires_at IS NULL OR m.expires_at > {mark})")
        args.append(filters.live_at)
    for key, value in filters.metadata.items():
        condition, condition_args = metadata_condition(key, value)
        where.append(condition)
        args.extend(condition_args)
    return where, args
