"""From what the Mem0 client sends to one filter tree (and one entity, for adds).

The client spreads conditions over several places: the ``filters`` object, top-level entity
ids (mem0ai 1.0.x), ``categories``, ``metadata``, ``start_date``/``end_date``, and for
``delete_all`` the query string, where dicts arrive as their Python ``repr``. All of them end
up as one AND of conditions here; a filter must name at least one entity (as Mem0 requires),
so no call reads or deletes a whole tenant by accident (``"*"`` says so on purpose).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from gateway.api.mem0 import filters
from gateway.api.mem0.entities import Entity
from gateway.api.mem0.filters import ENTITY_FIELDS, FilterError, Node
from gateway.errors import InvalidInput

MAX_QUERY_DICT_CHARS = 16 * 1024


def tree(raw_filters: Mapping[str, Any] | None, extra: list[dict[str, Any]]) -> Node:
    """One tree: ``raw_filters`` AND every extra condition; 422 when it breaks the grammar
    or names no entity."""
    parts = ([dict(raw_filters)] if raw_filters else []) + extra
    if not parts:
        raise InvalidInput("filters are required: give at least one of "
                           "user_id, agent_id, app_id, run_id (\"*\" matches any)")
    raw = parts[0] if len(parts) == 1 else {"AND": parts}
    try:
        node = filters.parse(raw)
    except FilterError as exc:
        raise InvalidInput(str(exc)) from None
    if not filters.mentions_entity(node):
        raise InvalidInput("filters must name at least one of user_id, agent_id, app_id, "
                           "run_id (\"*\" matches any)")
    return node


def entity_conditions(source: object) -> list[dict[str, Any]]:
    """``{"user_id": ...}`` conditions for the entity ids set as attributes of ``source``."""
    return [{name: getattr(source, name)} for name in ENTITY_FIELDS
            if getattr(source, name, None) is not None]


def add_entity(top_level: object, raw_filters: Mapping[str, Any] | None) -> Entity:
    """The entity an add writes for: top-level ids, or the same ids inside ``filters``."""
    ids: dict[str, str] = {name: getattr(top_level, name) for name in ENTITY_FIELDS
                           if getattr(top_level, name, None) is not None}
    for name, value in (raw_filters or {}).items():
        if name not in ENTITY_FIELDS or not isinstance(value, str) or value == "*":
            raise InvalidInput("filters of an add may only hold user_id, agent_id, app_id "
                               "and run_id, each as one id")
        if ids.setdefault(name, value) != value:
            raise InvalidInput(f"{name} is given twice with different values")
    return Entity(**ids)


def query_dict(raw: str, name: str) -> dict[str, Any]:
    """A dict from the query string: JSON, or the Python repr the mem0ai client sends."""
    if len(raw) > MAX_QUERY_DICT_CHARS:
        raise InvalidInput(f"{name}: longer than {MAX_QUERY_DICT_CHARS} characters")
    try:
        value = json.loads(raw)
    except ValueError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise InvalidInput(f"{name}: expected an object (JSON or a Python dict)") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: expected an object")
    return value
