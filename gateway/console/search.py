"""The search playground: the API's search (``POST /v1/memories/search``) from a form, with
each result's score taken apart: semantic (cosine), keyword (BM25), the recency and priority
factors of the ranking policy, and the final score that orders them.

The semantic and keyword parts are what the pipeline returns with every hit; the two factors
are the ranking policy's own ``factors`` for the memory at the time of the search, so the
default search path does no extra work for this page. A console search takes a slot of the
API's ``search`` admission class, as the API's search does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from gateway.api.deps import gateway_state
from gateway.api.memories import ranking_of, search_query
from gateway.api.schemas import MAX_SEARCH_LIMIT, SearchIn
from gateway.console.admitted import admitted
from gateway.console.auth import Reader
from gateway.console.forms import float_field, int_field
from gateway.console.render import PREFIX, page
from gateway.console.routing import ConsoleRoute

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
MODES = ("", "hybrid", "semantic", "keyword")
RERANK = {"": None, "on": True, "off": False}


def request_of(params: dict[str, Any]) -> SearchIn:
    """The API's search request for the form's fields (its validation, its limits)."""
    body: dict[str, Any] = {"user_id": params["user_id"], "query": params["q"],
                            "limit": int_field(params["limit"] or 10, "limit"),
                            "include_archived": bool(params["archived"])}
    if params["mode"]:
        body["mode"] = params["mode"]
    if RERANK.get(params["rerank"]) is not None:
        body["rerank"] = RERANK[params["rerank"]]
    filters = {k: params[k] for k in ("agent_id", "run_id") if params[k]}
    if filters:
        body["filters"] = filters
    ranking = {"recency_half_life_days": float_field(params["half_life"], "half_life"),
               "priority_weight": float_field(params["priority_weight"], "priority_weight")}
    ranking = {k: v for k, v in ranking.items() if v is not None}
    if ranking:
        body["ranking"] = ranking
    return SearchIn.model_validate(body)


@router.get("/search")
async def search(
    request: Request, caller: Reader,
    user_id: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=20_000)] = "",
    mode: Annotated[str, Query(pattern="^(|hybrid|semantic|keyword)$")] = "",
    rerank: Annotated[str, Query(pattern="^(|on|off)$")] = "",
    limit: Annotated[str, Query(max_length=4)] = "10",
    agent_id: Annotated[str, Query(max_length=200)] = "",
    run_id: Annotated[str, Query(max_length=200)] = "",
    half_life: Annotated[str, Query(max_length=32)] = "",
    priority_weight: Annotated[str, Query(max_length=32)] = "",
    archived: bool = False,
) -> Response:
    params = {"user_id": user_id, "q": q, "mode": mode, "rerank": rerank, "limit": limit,
              "agent_id": agent_id, "run_id": run_id, "half_life": half_life,
              "priority_weight": priority_weight, "archived": archived}
    context: dict[str, Any] = {"params": params, "modes": MODES, "results": None,
                               "max_limit": MAX_SEARCH_LIMIT}
    if user_id and q:
        service = gateway_state(request).service
        body = request_of(params)
        async with admitted(request, caller, "search"):
            outcome = await service.search_outcome(search_query(body, service, caller))
        ranking = ranking_of(body, service)
        now = datetime.now(UTC)
        results = []
        for hit in outcome.results:
            recency, weight = ranking.factors(hit.memory.occurred_at, hit.memory.priority, now)
            results.append({"memory": caller.users.outward(hit.memory), "score": hit.score,
                            "semantic": hit.similarity, "keyword": hit.keyword_score,
                            "recency": recency if ranking.recency_half_life_days > 0 else None,
                            "priority": weight if ranking.priority_weight > 0 else None})
        context |= {"results": results, "mode_used": outcome.mode, "ranking": ranking}
    return page(request, "search.html", context)
