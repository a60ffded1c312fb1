"""Mem0's v2 filter grammar: parse once into a small tree, then evaluate it over memories.

Grammar (Mem0 Platform): the root is one condition, several sibling keys (all must hold), or a
logical node ``AND``/``OR`` (a list) or ``NOT`` (an object, or a list meaning "none of these").
A condition is ``{"field": value}`` (equality) or ``{"field": {"op": value, ...}}``; ``"*"``
matches any non-null value; ``metadata`` holds ``{"key": value | {"op": value}}`` on top-level
keys. A bad filter raises :class:`FilterError` with a message naming the part that is wrong.

Cost: evaluating a filter over one memory is proportional to its conditions plus its ``in``
values, so both count against one budget (``MAX_FILTER_TERMS``), wherever they sit (under
``metadata`` too); the conditions and logical nodes alone also count against
``MAX_FILTER_NODES``. Parsing stops at the first term past either. Evaluation short-circuits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

MAX_FILTER_NODES = 512  # conditions (metadata keys' too) + objects and logical nodes
MAX_FILTER_TERMS = 1_000  # the same + every ``in`` value, all counted together
MAX_FILTER_DEPTH = 16

ENTITY_FIELDS = ("user_id", "agent_id", "app_id", "run_id")
TIME_FIELDS = ("created_at", "updated_at", "timestamp", "expiration_date")
_COMPARE = ("gt", "gte", "lt", "lte")
ALLOWED_OPS: dict[str, frozenset[str]] = {
    **{f: frozenset({"eq", "ne", "in", "*"}) for f in ENTITY_FIELDS},
    **{f: frozenset({"eq", "ne", "in", *_COMPARE}) for f in TIME_FIELDS},
    "text": frozenset({"eq", "ne", "in", "contains", "icontains"}),
    "categories": frozenset({"in", "contains"}),
    "keywords": frozenset({"contains", "icontains"}),
    "keywords_search": frozenset({"contains", "icontains"}),
    "memory_ids": frozenset({"in"}),
    "metadata": frozenset({"eq", "ne", "in", "contains", "icontains", "*", *_COMPARE}),
}
LOGICAL = ("AND", "OR", "NOT")


class FilterError(ValueError):
    """The filter does not follow the grammar; the message says where."""


@dataclass(frozen=True, slots=True)
class Cond:
    """One test: ``field`` (or ``metadata.key``) ``op`` ``value``. ``op`` "*" = not null."""

    field: str
    op: str
    value: Any
    key: str | None = None  # the metadata key, for field == "metadata"


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # AND | OR | NOT (NOT of several children: none of them holds)
    children: tuple[Node, ...]


Node = Cond | Logic
Record = Mapping[str, Any]  # field name -> value, as :func:`evaluate` reads it
UNKNOWN = None  # third truth value: the record does not say (see ``evaluate(partial=True)``)


class _Budget:
    """What is left of ``MAX_FILTER_NODES`` and ``MAX_FILTER_TERMS``; spending past either
    stops the parse at once."""

    def __init__(self) -> None:
        self.nodes = MAX_FILTER_NODES
        self.left = MAX_FILTER_TERMS

    def node(self) -> None:
        self.nodes -= 1
        if self.nodes < 0:
            raise FilterError(f"filters: more than {MAX_FILTER_NODES} conditions")
        self.spend()

    def spend(self, terms: int = 1) -> None:
        self.left -= terms
        if self.left < 0:
            raise FilterError(f"filters: more than {MAX_FILTER_TERMS} conditions and 'in' "
                              "values in all; narrow the filter")


def parse(raw: object) -> Node:
    """The tree for a filter object; :class:`FilterError` when it breaks the grammar or
    costs more than ``MAX_FILTER_TERMS``."""
    return _node(raw, "filters", 0, _Budget())


def _node(raw: object, where: str, depth: int, budget: _Budget) -> Node:
    budget.node()
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"filters: nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(raw, dict) or not raw:
        raise FilterError(f"{where}: expected a non-empty object")
    parts: list[Node] = []
    for name, value in raw.items():
        here = f"{where}.{name}"
        if name in ("AND", "OR"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{here}: expected a non-empty list of conditions")
            parts.append(Logic(name, tuple(_node(v, f"{here}[{i}]", depth + 1, budget)
                                           for i, v in enumerate(value))))
        elif name == "NOT":
            items = value if isinstance(value, list) else [value]
            if not items:
                raise FilterError(f"{here}: expected a condition or a non-empty list")
            parts.append(Logic("NOT", tuple(_node(v, f"{here}[{i}]", depth + 1, budget)
                                            for i, v in enumerate(items))))
        elif name == "metadata":
            parts.extend(_metadata(value, here, budget))
        elif name in ALLOWED_OPS:
            parts.extend(_conditions(name, value, here, budget))
        else:
            raise FilterError(f"{here}: unknown filter field; use one of "
                              f"{', '.join([*ALLOWED_OPS, *LOGICAL])}")
    return parts[0] if len(parts) == 1 else Logic("AND", tuple(parts))


def _conditions(name: str, value: object, where: str, budget: _Budget,
                key: str | None = None) -> list[Cond]:
    field = "metadata" if key is not None else name
    allowed = ALLOWED_OPS[field]
    if name == "memory_ids" and isinstance(value, list):
        value = {"in": value}
    if not isinstance(value, dict):
        op = "*" if value == "*" and "*" in allowed else "eq"
        if op not in allowed:
            raise FilterError(f"{where}: a bare value is not allowed here; use one of "
                              f"{', '.join(sorted(allowed))}")
        budget.node()
        return [Cond(field, op, _value(field, op, value, where, budget), key)]
    if not value:
        raise FilterError(f"{where}: expected at least one operator")
    conds = []
    for op, operand in value.items():
        if op not in allowed or op == "*":
            raise FilterError(f"{where}: operator {op!r} is not allowed here; use one of "
                              f"{', '.join(sorted(allowed - {'*'}))}")
        budget.node()
        conds.append(Cond(field, op, _value(field, op, operand, f"{where}.{op}", budget), key))
    return conds


def _metadata(value: object, where: str, budget: _Budget) -> list[Cond]:
    if not isinstance(value, dict) or not value:
        raise FilterError(f"{where}: expected an object of metadata keys")
    conds: list[Cond] = []
    for key, test in value.items():
        if isinstance(test, dict) and any(k in LOGICAL for k in test):
            raise FilterError(f"{where}.{key}: logical operators go outside 'metadata'")
        conds.extend(_conditions(key, test, f"{where}.{key}", budget, key=key))
    return conds


def _value(field: str, op: str, operand: object, where: str, budget: _Budget) -> object:
    """Check an operand's shape and normalise it (times to aware datetimes, lists to tuples);
    each ``in`` value is one more term of the budget, spent before any is looked at."""
    if op == "*":
        return None
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise FilterError(f"{where}: expected a list of 1 to {MAX_FILTER_TERMS} values")
        budget.spend(len(operand))
        return tuple(_scalar(field, item, where) for item in operand)
    if (op in ("contains", "icontains") and field not in ("categories", "metadata")
            and not isinstance(operand, str)):
        raise FilterError(f"{where}: expected a string")
    return _scalar(field, operand, where)


def _scalar(field: str, operand: object, where: str) -> object:
    if isinstance(operand, dict | list):
        raise FilterError(f"{where}: expected a single value, not {type(operand).__name__}")
    if field in TIME_FIELDS:
        moment = as_time(operand)
        if moment is None:
            raise FilterError(f"{where}: expected an ISO-8601 date or time, or Unix seconds")
        return moment
    if field in ENTITY_FIELDS and not isinstance(operand, str):
        raise FilterError(f"{where}: expected a string id")
    return operand


def as_time(value: object) -> datetime | None:
    """An aware UTC datetime from ISO text (date or date-time, 'Z' allowed) or Unix seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00:00+01:00 lies before datetime.min in UTC
        return moment.astimezone(UTC)
    except OverflowError:
        return None


# -- evaluation ---------------------------------------------------------------------------------
def evaluate(node: Node, record: Record, *, partial: bool = False) -> bool | None:
    """Whether ``record`` satisfies ``node``. With ``partial``, fields missing from the record
    are unknown (three-valued logic: None), so a caller holding only entity ids can rule out
    populations that cannot match whatever their memories say. Short-circuits: AND stops at
    the first child that fails, OR (and NOT) at the first that holds."""
    if isinstance(node, Cond):
        if partial and node.field not in record:
            return UNKNOWN
        return _test(node, record)
    children = (evaluate(child, record, partial=partial) for child in node.children)
    if node.op == "AND":
        return _all(children)
    if node.op == "OR":
        return _any(children)
    found = _any(children)  # NOT: none of the children holds
    return None if found is None else not found


def _all(results: Iterable[bool | None]) -> bool | None:
    unknown = False
    for value in results:
        if value is False:
            return False
        unknown = unknown or value is None
    return None if unknown else True


def _any(results: Iterable[bool | None]) -> bool | None:
    unknown = False
    for value in results:
        if value is True:
            return True
        unknown = unknown or value is None
    return None if unknown else False


def _test(cond: Cond, record: Record) -> bool:
    if cond.field == "metadata":
        metadata = record.get("metadata") or {}
        if cond.key not in metadata:
            return cond.op == "ne"
        actual = metadata[cond.key]
    elif cond.field == "memory_ids":
        actual = record.get("id")
    elif cond.field in ("keywords", "keywords_search"):
        actual = record.get("text")
    else:
        actual = record.get(cond.field)
    return _OPS[cond.op](actual, cond.value)


def _same(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, list):  # categories: a list matches when it holds the value
        return expected in actual
    return actual == expected


def _ordered(actual: object, expected: object, check: Callable[[Any, Any], bool]) -> bool:
    if actual is None or isinstance(actual, bool) or isinstance(expected, bool):
        return False
    try:
        return bool(check(actual, expected))
    except TypeError:  # e.g. text against a number: no order, no match
        return False


def _contains(actual: object, expected: object, *, fold: bool = False) -> bool:
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    if isinstance(actual, str) and isinstance(expected, str):
        return expected.casefold() in actual.casefold() if fold else expected in actual
    return False


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "*": lambda actual, _: actual is not None,
    "eq": _same,
    "ne": lambda actual, expected: not _same(actual, expected),
    "in": lambda actual, expected: any(_same(actual, e) for e in expected),
    "gt": lambda a, e: _ordered(a, e, lambda x, y: x > y),
    "gte": lambda a, e: _ordered(a, e, lambda x, y: x >= y),
    "lt": lambda a, e: _ordered(a, e, lambda x, y: x < y),
    "lte": lambda a, e: _ordered(a, e, lambda x, y: x <= y),
    "contains": _contains,
    "icontains": lambda a, e: _contains(a, e, fold=True),
}


# -- analysis -----------------------------------------------------------------------------------
def conjuncts(node: Node) -> list[Node]:
    """The conditions that must all hold (the root's AND parts, flattened)."""
    if isinstance(node, Logic) and node.op == "AND":
        return [part for child in node.children for part in conjuncts(child)]
    return [node]


def mentions_entity(node: Node) -> bool:
    if isinstance(node, Cond):
        return node.field in ENTITY_FIELDS
    return any(mentions_entity(child) for child in node.children)


def pinned_values(node: Node, field: str) -> frozenset[str] | None:
    """The finite set of values ``field`` must take for ``node`` to hold, or None when the
    filter leaves it open (``*``, ``ne``, NOT, or an OR branch that does not pin it)."""
    if isinstance(node, Cond):
        if node.field != field:
            return None
        if node.op == "eq":
            return frozenset([node.value])
        if node.op == "in":
            return frozenset(node.value)
        return None
    if node.op == "NOT":
        return None
    sets = [pinned_values(child, field) for child in node.children]
    if node.op == "AND":
        known = [s for s in sets if s is not None]
        if not known:
            return None
        result = known[0]
        for s in known[1:]:
            result = result & s
        return result
    if any(s is None for s in sets):
        return None
    return frozenset().union(*[s for s in sets if s is not None])
