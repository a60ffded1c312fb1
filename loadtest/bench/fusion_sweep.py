"""``loadtest.bench.retrieval --sweep``: choose the hybrid fusion settings by measurement, cheaply.

For every question the semantic and the keyword pool (up to the API's 100 results each, with
their scores) are fetched once through the HTTP API; then a grid of ``FusionPolicy`` values is
evaluated offline with the gateway's own ``fuse``, which is what a hybrid search runs on the
same pools. Recall is counted as in the mode rows (the first k of one search with limit 20),
so the grid's figure at the server's settings must equal the hybrid row: the report checks it.

With both text variants (``--text plain,dated``) the pools are also crossed, e.g. dense pool
from plain text and keyword pool from dated text: what indexing the date only in the lexical
index would give.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import httpx

from gateway.memory.fusion import FusionPolicy, fuse
from gateway.memory.sessions import lifted, session_key
from gateway.memory.speakers import boosted
from gateway.settings import Settings
from loadtest.bench import locomo
from loadtest.bench.retrieval_metrics import KS, Answer, recall

POOL_LIMIT = 100  # the API's largest search limit
SEARCH_LIMIT = max(KS)  # recall@k = the first k of one search asking for this many
RRF_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RRF_KS = (5, 10, 20, 40, 60, 100)
BLEND_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SCORE_WEIGHTS = (0.0, 0.1, 0.2, 0.3)  # rrf's normalised-score bonus (0: ranks only)
POOL_FACTORS = (1, 2, 3, 5)  # pools of 20, 40, 60, 100 at limit 20 (100 is all the API gives)
Ranked = tuple[tuple[str, float], ...]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Pools:
    """One question's two candidate lists (dia_id, score), best first."""

    category: int
    evidence: frozenset[str]
    semantic: Ranked
    keyword: Ranked
    query: str = ""
    speakers: tuple[tuple[str, str | None], ...] = ()  # (dia_id, speaker) of both pools
    sessions: tuple[tuple[str, str | None], ...] = ()  # (dia_id, session key) of both pools


def _search(http: httpx.Client, user: str, query: str, mode: str) -> list[dict]:
    response = http.post("/v1/memories/search", json={
        "user_id": user, "query": query, "limit": POOL_LIMIT, "mode": mode, "rerank": False})
    response.raise_for_status()
    return response.json()["results"]


def collect(http: httpx.Client, conversations: Sequence[locomo.Conversation], variant: str,
            user_id: Callable[[locomo.Conversation, str], str],
            labels: dict[str, str]) -> list[Pools]:
    """Both pools for every question of ``variant``'s users (``labels``: memory id ->
    dia_id)."""
    out = []
    for conversation in conversations:
        user = user_id(conversation, variant)
        for question in conversation.questions:
            dense = _search(http, user, question.text, "semantic")
            lexical = _search(http, user, question.text, "keyword")
            out.append(Pools(
                question.category, question.evidence,
                tuple((labels[h["id"]], float(h["similarity"])) for h in dense),
                tuple((labels[h["id"]], float(_keyword_score(h))) for h in lexical),
                question.text,
                tuple((labels[h["id"]], h.get("speaker")) for h in [*dense, *lexical]),
                tuple((labels[h["id"]], session_key(h.get("role"), h["occurred_at"]))
                      for h in [*dense, *lexical])))
    return out


def _keyword_score(hit: dict) -> float:
    return hit["score"] if hit.get("keyword_score") is None else hit["keyword_score"]


@dataclass(frozen=True)
class Reorder:
    """What hybrid search does to the fused pool after fusion (off by default here)."""

    speaker_boost: float = 1.0
    session_weight: float = 0.0

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Reorder:
        """What a gateway with this environment runs (its settings' defaults else)."""
        fields = Settings.model_fields
        return cls(float(env.get("MEMORY_SEARCH_SPEAKER_BOOST",
                                 fields["search_speaker_boost"].default)),
                   float(env.get("MEMORY_SEARCH_SESSION_WEIGHT",
                                 fields["search_session_weight"].default)))


OFF = Reorder()


def answers(pools: Sequence[Pools], policy: FusionPolicy | None,
            only: str | None = None, reorder: Reorder = OFF) -> list[Answer]:
    """Each question's top SEARCH_LIMIT under ``policy`` (or one list alone with ``only``),
    the fused pool cut, boosted and lifted as the server does (``gateway.memory.speakers``,
    ``gateway.memory.sessions``)."""
    out = []
    for p in pools:
        if only is not None:
            ranked = [i for i, _ in (p.semantic if only == "semantic" else p.keyword)]
        else:
            assert policy is not None
            size = policy.pool(SEARCH_LIMIT)
            fused = fuse(p.semantic[:size], p.keyword[:size], policy)
            if reorder != OFF:
                fused = boosted(fused[:size], dict(p.speakers), p.query, reorder.speaker_boost)
                fused = lifted(fused, dict(p.sessions), reorder.session_weight)
            ranked = [i for i, _ in fused]
        out.append(Answer(p.category, p.evidence, tuple(ranked[:SEARCH_LIMIT])))
    return out


def grid() -> list[FusionPolicy]:
    rrf = [FusionPolicy(method="rrf", semantic_weight=w, rrf_k=k, pool_factor=f,
                        pool_min=SEARCH_LIMIT, score_weight=s)
           for w, k, f, s in itertools.product(RRF_WEIGHTS, RRF_KS, POOL_FACTORS,
                                               SCORE_WEIGHTS)]
    blend = [FusionPolicy(method="blend", semantic_weight=w, pool_factor=f,
                          pool_min=SEARCH_LIMIT)
             for w, f in itertools.product(BLEND_WEIGHTS, POOL_FACTORS)]
    return rrf + blend


def server_policy(profile: Mapping[str, str] | None = None) -> FusionPolicy:
    """The fusion the gateway runs by default (its settings, environment included), or a
    ``--settings`` profile's gateway (``MEMORY_HYBRID_*`` there; the environment still wins,
    as it does for that gateway)."""
    overrides = {name.removeprefix("MEMORY_").lower(): value
                 for name, value in (profile or {}).items()
                 if name.startswith("MEMORY_HYBRID_") and name not in os.environ}
    s, default = Settings(**overrides), FusionPolicy()
    return FusionPolicy(
        method=getattr(s, "hybrid_fusion", default.method),
        semantic_weight=getattr(s, "hybrid_semantic_weight", default.semantic_weight),
        rrf_k=getattr(s, "hybrid_rrf_k", default.rrf_k),
        pool_factor=getattr(s, "hybrid_pool_factor", default.pool_factor),
        pool_min=getattr(s, "hybrid_pool_min", default.pool_min),
        score_weight=getattr(s, "hybrid_score_weight", default.score_weight))


def _key(row: dict) -> tuple[float, float, float]:
    return (row["any@10"], row["all@10"], row["any@5"])


def evaluate(pools: Sequence[Pools], policies: Sequence[FusionPolicy],
             reorder: Reorder = OFF) -> dict:
    """Recall of each policy (followed by the server's ``reorder``), best first, next to the
    two retrievers alone."""
    rows = [asdict(p) | {"pool_at_limit_20": min(p.pool(SEARCH_LIMIT), POOL_LIMIT)}
            | recall(answers(pools, p, reorder=reorder)) for p in policies]
    rows.sort(key=_key, reverse=True)
    return {"questions": len(pools),
            "semantic_only": recall(answers(pools, None, "semantic")),
            "keyword_only": recall(answers(pools, None, "keyword")),
            "grid": rows, "best": rows[0]}


def run_sweep(pools: dict[str, list[Pools]], log: Log,
              reorders: dict[str, Reorder] | None = None,
              servers: dict[str, FusionPolicy] | None = None) -> dict:
    """The grid on every variant's pools, and on dense-plain x keyword-dated when both exist;
    ``reorders``: what each variant's gateway does after fusion, ``servers``: its fusion (the
    defaults where missing).
    The server's settings are also evaluated with each reordering step off: the ablation."""
    started = time.perf_counter()
    combos = [(v, v) for v in pools]
    if {"plain", "dated"} <= set(pools):
        # the date indexed for keyword search only
        combos.insert(combos.index(("plain", "plain")) + 1, ("plain", "dated"))
    policies = grid()
    default_server = server_policy()
    out: dict = {"server_policy": asdict(default_server), "search_limit": SEARCH_LIMIT,
                 "combos": {}}
    for dense, lexical in combos:
        reorder = (reorders or {}).get(dense, Reorder.of(os.environ))
        server = (servers or {}).get(dense, default_server)
        crossed = [Pools(a.category, a.evidence, a.semantic, b.keyword, a.query,
                         a.speakers + b.speakers, a.sessions + b.sessions)
                   for a, b in zip(pools[dense], pools[lexical], strict=True)]
        log(f"sweep: {len(policies)} policies on dense={dense}, keyword={lexical} ...")
        result = evaluate(crossed, policies, reorder)
        result["server_policy"] = recall(answers(crossed, server, reorder=reorder))
        result["reorder"] = asdict(reorder)
        result["fusion"] = asdict(server)
        result["ablation"] = {
            "score bonus off": recall(answers(crossed, replace(server, score_weight=0.0),
                                              reorder=reorder)),
            "speaker boost off": recall(answers(crossed, server, reorder=replace(
                reorder, speaker_boost=1.0))),
            "session lift off": recall(answers(crossed, server, reorder=replace(
                reorder, session_weight=0.0))),
            "both off": recall(answers(crossed, server))}
        out["combos"][f"dense={dense}, keyword={lexical}"] = result
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _describe(row: dict) -> str:
    if row["method"] == "rrf":
        return (f"rrf, w={row['semantic_weight']:g}, k={row['rrf_k']}, "
                f"s={row['score_weight']:g}, pool {row['pool_at_limit_20']}")
    return f"blend, w={row['semantic_weight']:g}, pool {row['pool_at_limit_20']}"


def sweep_markdown(run: dict, top: int = 10) -> str:
    """Per pool combination: the retrievers alone, the server's policy, the best ``top``."""
    sweep = run["sweep"]
    if "skipped" in sweep:
        return f"Fusion sweep skipped: {sweep['skipped']}\n"
    name = run["embedder"]["name"]
    text = ""
    for combo, result in sweep["combos"].items():
        text += (f"\nFusion sweep, {name}, {combo} ({result['questions']} questions, recall of "
                 f"the first k of one search with limit {SEARCH_LIMIT}):\n\n"
                 "| fusion | any@5 | any@10 | any@20 | all@10 |\n|---|---:|---:|---:|---:|\n")
        rows = [("semantic only", result["semantic_only"]),
                ("keyword only", result["keyword_only"]),
                ("server settings", result["server_policy"]),
                *((f"server settings, {what}", r)
                  for what, r in result.get("ablation", {}).items()),
                *((_describe(r), r) for r in result["grid"][:top])]
        for label, r in rows:
            text += (f"| {label} | {r['any@5']:.3f} | {r['any@10']:.3f} | {r['any@20']:.3f} "
                     f"| {r['all@10']:.3f} |\n")
    return text
