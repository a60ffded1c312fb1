"""Property: for any filter, the Mem0 list route returns exactly the memories the filter
matches, however the finder narrowed the search (pinned users, partial evaluation over the
store's populations, memories of no user in their entity's own partition).

The expected answer is computed from each memory as ``GET /v1/memories/{id}/`` shows it,
without the finder, so a partition the finder wrongly skips shows up as a missing result.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import settings_for

from gateway.api.mem0.filters import evaluate, parse
from gateway.app import create_app
from gateway.triton import TritonServer

USERS, AGENTS, APPS, RUNS = ["u1", "u2", "u3"], ["a1", "a2"], ["p1"], ["r1", "r2"]
SEEDS: list[dict[str, Any]] = [
    {"user_id": "u1", "metadata": {"k": "x", "n": 1}},
    {"user_id": "u1", "agent_id": "a1", "metadata": {"k": "y", "n": 2}},
    {"user_id": "u2", "agent_id": "a1", "run_id": "r1", "metadata": {"n": 3}},
    {"user_id": "u2", "app_id": "p1", "metadata": {"k": "x"}},
    {"user_id": "u3", "run_id": "r2"},
    {"agent_id": "a1", "metadata": {"k": "y"}},
    {"agent_id": "a2", "run_id": "r1", "metadata": {"n": 5}},
    {"app_id": "p1", "metadata": {"k": "z", "n": 1}},
    {"run_id": "r2", "agent_id": "a2"},
]


@pytest.fixture(scope="module")
def seeded(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[TestClient, list[dict[str, Any]]]]:
    settings = settings_for(triton, tmp_path_factory.mktemp("mem0-prop"))
    with TestClient(create_app(settings)) as api:
        shown = []
        for i, seed in enumerate(SEEDS):
            added = api.post("/v3/memories/add/", json={
                "messages": [{"role": "user", "content": f"memory number {i}"}], **seed})
            assert added.status_code == 200, added.text
            memory_id = added.json()["results"][0]["id"]
            shown.append(api.get(f"/v1/memories/{memory_id}/").json())
        yield api, shown


def _record(shown: dict[str, Any]) -> dict[str, Any]:
    return {**shown, "text": shown["memory"], "created_at": datetime.fromisoformat(
        shown["created_at"]), "updated_at": datetime.fromisoformat(shown["updated_at"]),
        "timestamp": datetime.fromisoformat(shown["timestamp"]), "expiration_date": None}


def _entity(field: str, names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    name = st.sampled_from([*names, "nobody"])
    return st.one_of(
        name.map(lambda v: {field: v}),
        st.just({field: "*"}),
        name.map(lambda v: {field: {"ne": v}}),
        st.lists(name, min_size=1, max_size=3).map(lambda vs: {field: {"in": vs}}),
    )


LEAF = st.one_of(
    _entity("user_id", USERS), _entity("agent_id", AGENTS), _entity("app_id", APPS),
    _entity("run_id", RUNS),
    st.sampled_from(["x", "y", "z"]).map(lambda v: {"metadata": {"k": v}}),
    st.sampled_from(["x", "y"]).map(lambda v: {"metadata": {"k": {"ne": v}}}),
    st.integers(0, 5).map(lambda n: {"metadata": {"n": {"gte": n}}}),
)
FILTERS = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"AND": xs}),
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"OR": xs}),
    inner.map(lambda x: {"NOT": x}),
), max_leaves=6)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=FILTERS)
def test_list_returns_exactly_what_the_filter_matches(
    seeded: tuple[TestClient, list[dict[str, Any]]], flt: dict[str, Any],
) -> None:
    api, shown = seeded
    response = api.post("/v3/memories/", json={"filters": flt}, params={"page_size": 100})
    node = parse(flt)
    if not any(key in str(flt) for key in ("user_id", "agent_id", "app_id", "run_id")):
        assert response.status_code == 422  # a filter must name an entity
        return
    assert response.status_code == 200, (flt, response.text)
    expected = sorted(m["memory"] for m in shown if evaluate(node, _record(m)))
    assert sorted(m["memory"] for m in response.json()["results"]) == expected, flt
