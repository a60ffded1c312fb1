"""Mem0's filter grammar on its own: what parses, what is refused and why, how it evaluates
(also with only entity ids known), and what the finder may hand to the store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api.mem0.filters import FilterError, evaluate, parse, pinned_values
from gateway.api.mem0.finder import pushdown

MEMORY = {
    "id": "m1", "user_id": "alice", "agent_id": "planner", "app_id": None, "run_id": None,
    "text": "I love hiking in the Alps", "categories": [],
    "metadata": {"topic": "travel", "stars": 5, "pinned": True, "tags": ["a", "b"]},
    "created_at": datetime(2026, 5, 1, tzinfo=UTC), "updated_at": datetime(2026, 5, 2, tzinfo=UTC),
    "timestamp": datetime(2024, 1, 1, tzinfo=UTC), "expiration_date": None,
}


@pytest.mark.parametrize(("flt", "expected"), [
    ({"user_id": "alice"}, True),
    ({"user_id": "bob"}, False),
    ({"user_id": "*"}, True),
    ({"app_id": "*"}, False),
    ({"user_id": {"ne": "bob"}}, True),
    ({"user_id": {"in": ["bob", "alice"]}}, True),
    ({"user_id": "alice", "agent_id": "other"}, False),
    ({"OR": [{"user_id": "bob"}, {"agent_id": "planner"}]}, True),
    ({"NOT": {"user_id": "alice"}}, False),
    ({"NOT": [{"user_id": "bob"}, {"agent_id": "x"}]}, True),  # none of them
    ({"AND": [{"user_id": "alice"}, {"OR": [{"metadata": {"topic": "food"}},
                                            {"metadata": {"stars": {"gte": 5}}}]}]}, True),
    ({"user_id": "alice", "metadata": {"pinned": True}}, True),
    ({"user_id": "alice", "metadata": {"pinned": 1}}, False),  # booleans match booleans
    ({"user_id": "alice", "metadata": {"tags": {"contains": "b"}}}, True),
    ({"user_id": "alice", "metadata": {"missing": {"ne": "x"}}}, True),
    ({"user_id": "alice", "metadata": {"missing": "x"}}, False),
    ({"user_id": "alice", "metadata": {"topic": {"icontains": "TRAV"}}}, True),
    ({"user_id": "alice", "keywords": {"contains": "Alps"}}, True),
    ({"user_id": "alice", "keywords": {"contains": "alps"}}, False),
    ({"user_id": "alice", "text": {"icontains": "alps"}}, True),
    ({"user_id": "alice", "created_at": {"gte": "2026-05-01", "lt": "2026-05-02"}}, True),
    ({"user_id": "alice", "created_at": {"gt": "2026-05-01T00:00:00Z"}}, False),
    ({"user_id": "alice", "timestamp": {"lt": 1_700_000_000}}, False),
    ({"user_id": "alice", "memory_ids": ["m2", "m1"]}, True),
    ({"user_id": "alice", "categories": {"contains": "x"}}, False),
])
def test_evaluation(flt: dict, expected: bool) -> None:
    assert evaluate(parse(flt), MEMORY) is expected


@pytest.mark.parametrize(("flt", "complaint"), [
    ({"colour": "red"}, "unknown filter field"),
    ({"user_id": {"gt": "a"}}, "operator 'gt' is not allowed"),
    ({"created_at": {"gte": "yesterday"}}, "ISO-8601"),
    ({"AND": []}, "non-empty list"),
    ({"OR": {"user_id": "a"}}, "non-empty list"),
    ({"user_id": {"in": []}}, "list of 1 to"),
    ({"user_id": 7}, "string id"),
    ({"metadata": {"k": {"AND": []}}}, "logical operators"),
    ({"categories": "x"}, "bare value"),
    ({"user_id": {}}, "at least one operator"),
    ([], "non-empty object"),
])
def test_refusals_name_the_problem(flt: object, complaint: str) -> None:
    with pytest.raises(FilterError, match=complaint):
        parse(flt)


def test_size_limits() -> None:
    deep: dict = {"user_id": "a"}
    for _ in range(20):
        deep = {"AND": [deep]}
    with pytest.raises(FilterError, match="deeper"):
        parse(deep)
    with pytest.raises(FilterError, match="more than"):
        parse({"OR": [{"user_id": str(i)} for i in range(300)]})


def test_partial_evaluation_rules_out_only_what_cannot_match() -> None:
    node = parse({"AND": [{"agent_id": "planner"}, {"metadata": {"topic": "food"}}]})
    assert evaluate(node, {"agent_id": "planner"}, partial=True) is None  # may match
    assert evaluate(node, {"agent_id": "other"}, partial=True) is False
    negated = parse({"NOT": {"metadata": {"topic": "food"}}, "user_id": "*"})
    assert evaluate(negated, {"user_id": None}, partial=True) is False
    assert evaluate(negated, {"user_id": "alice"}, partial=True) is None


def test_pinned_users() -> None:
    assert pinned_values(parse({"user_id": "a"}), "user_id") == {"a"}
    assert pinned_values(parse({"OR": [{"user_id": "a"}, {"user_id": {"in": ["b", "c"]}}]}),
                         "user_id") == {"a", "b", "c"}
    assert pinned_values(parse({"AND": [{"user_id": {"in": ["a", "b"]}}, {"user_id": "b"}]}),
                         "user_id") == {"b"}
    assert pinned_values(parse({"OR": [{"user_id": "a"}, {"agent_id": "x"}]}), "user_id") is None
    assert pinned_values(parse({"user_id": "*"}), "user_id") is None
    assert pinned_values(parse({"NOT": {"user_id": "a"}}), "user_id") is None


def test_pushdown_hands_over_only_exact_conditions() -> None:
    pushed, exact = pushdown(parse({"user_id": "a", "agent_id": "x", "app_id": "y",
                                    "metadata": {"topic": "t", "n": 2},
                                    "created_at": {"gte": "2026-01-01", "lt": "2026-02-01"}}))
    assert exact
    assert (pushed.agent_id, pushed.run_id) == ("x", None)
    assert pushed.metadata == {"mem0:app_id": "y", "topic": "t", "n": 2}
    assert pushed.created_after == "2026-01-01T00:00:00.000000Z"
    assert pushed.created_before == "2026-02-01T00:00:00.000000Z"
    for inexact in ({"user_id": "a", "agent_id": {"ne": "x"}},
                    {"user_id": "a", "OR": [{"agent_id": "x"}, {"run_id": "r"}]},
                    {"user_id": "a", "created_at": {"lte": "2026-01-01"}},
                    {"user_id": "a", "metadata": {"tags": {"contains": "t"}}}):
        assert not pushdown(parse(inexact))[1], inexact
