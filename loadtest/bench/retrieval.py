"""``make bench-retrieval``: does the right memory come back? Recall on long conversations.

Runs on a LoCoMo-format file (``--data PATH`` or ``$MEMORY_BENCH_DATA``; see
``loadtest/bench/locomo.py``), through the HTTP API of a real local stack (bundled Triton +
gateway):

1. each conversation is stored as one user, one memory per turn, with
   ``POST /v1/memories/batch``: by default each session as one item of ``messages`` (the
   speaker as ``name``, the session's date as ``timestamp``; the text plus the image caption
   as ``content``), as a user stores a conversation; ``--text plain`` stores each turn as a
   ``text`` item (``speaker: text``, ``occurred_at`` = the session's date);
2. every question of categories 1-4 is asked in every search mode: semantic, keyword, hybrid,
   hybrid + ranking policy, and hybrid + rerank when a reranker is exported (modes the gateway
   or the repository lacks are skipped, with the reason in the report). Modes take turns per
   question, so all of them see the same machine load; with ``--store-url`` a SQLite and a
   PostgreSQL gateway run at once and take turns per question too;
3. recall_any@k and recall_all@k (k = 5, 10, 20) overall and per category, search p50/p99 per
   mode, the ingest rate; JSON to ``loadtest/results/``, markdown tables on stdout and, with
   ``--readme``, into docs/benchmarks/retrieval.md between markers.

``--sweep`` adds the fusion tuning of ``loadtest/bench/fusion_sweep.py``; ``--repository`` given
twice compares two embedders (e.g. MiniLM and all-mpnet-base-v2) in one run;
``--text dated`` stores the turns with the session date written into the text, ``--text
bare`` without the speaker's name; several
variants (``--text messages,plain``) run side by side, each on a store of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from gateway.memory.fusion import FusionPolicy
from gateway.settings import ROOT
from gateway.triton import TritonServer, has_version
from gateway.versions.control import repository_versions
from loadtest.bench import locomo
from loadtest.bench.fusion_sweep import (
    Reorder,
    collect,
    run_sweep,
    server_policy,
    sweep_markdown,
)
from loadtest.bench.retrieval_metrics import KS, Answer, latency, recall_report
from loadtest.paths import RESULTS
from loadtest.stack import free_port, gateway_process

README = ROOT / "docs" / "benchmarks" / "retrieval.md"  # the tables --readme rewrites
DATA_ENV = "MEMORY_BENCH_DATA"
README_BEGIN = "<!-- bench-retrieval:begin -->"
README_END = "<!-- bench-retrieval:end -->"
BATCH_ITEMS = 500  # memories per batch request (the API takes up to 1,000)
TEXT_VARIANTS = ("messages", "plain", "dated", "bare")
KINDS = ("semantic", "keyword", "hybrid", "ranking", "rerank")  # the rows --modes can pick
DEFAULT_RANKING = {"recency_half_life_days": 30.0}


def log(message: str) -> None:
    print(f"[bench-retrieval] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Mode:
    """One row of the benchmark: what it adds to every search body and what it needs."""

    name: str
    kind: str  # one of KINDS, what --modes selects
    body: dict
    needs: tuple[str, ...] = ()  # capabilities: "modes", "ranking", "reranker"


def modes(rankings: Sequence[dict], kinds: Sequence[str] = KINDS) -> list[Mode]:
    """The rows, in report order. Every row says ``rerank`` explicitly, so the server's
    ``MEMORY_RERANK_DEFAULT`` cannot change what a row measures."""
    rows = [
        Mode("semantic", "semantic", {"mode": "semantic", "rerank": False}, ("modes",)),
        Mode("keyword", "keyword", {"mode": "keyword", "rerank": False}, ("modes",)),
        Mode("hybrid", "hybrid", {"mode": "hybrid", "rerank": False}, ("modes",)),
    ]
    for ranking in rankings:
        label = ", ".join(f"{k}={v:g}" for k, v in ranking.items())
        rows.append(Mode(f"hybrid + ranking ({label})", "ranking",
                         {"mode": "hybrid", "rerank": False, "ranking": ranking},
                         ("modes", "ranking")))
    rows.append(Mode("hybrid + rerank", "rerank", {"mode": "hybrid", "rerank": True},
                     ("modes", "reranker")))
    return [m for m in rows if m.kind in kinds]


@dataclass(frozen=True)
class Capabilities:
    """What this gateway's API offers, read from its OpenAPI schema (not assumed)."""

    modes: bool
    ranking: bool
    occurred_at: bool
    dedup: bool
    reranker: bool

    def missing(self, mode: Mode) -> str | None:
        reasons = {
            "modes": "the gateway has no search modes (no 'mode' in SearchIn)",
            "ranking": "the gateway has no ranking policy (no 'ranking' in SearchIn)",
            "reranker": "no reranker exported in the model repository "
                        "(`make export RERANKER=<cross-encoder>`)",
        }
        for need in mode.needs:
            if not getattr(self, need):
                return reasons[need]
        return None


def _body_fields(openapi: dict, path: str) -> set[str]:
    """Field names of the JSON body of ``POST path``, following the schema's $ref."""
    body = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"]  # "#/components/schemas/<name>"
    return set(openapi["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {}))


def capabilities(http: httpx.Client, reranker: bool) -> Capabilities:
    openapi = http.get("/openapi.json").raise_for_status().json()
    search = _body_fields(openapi, "/v1/memories/search")
    add = _body_fields(openapi, "/v1/memories")
    return Capabilities(modes="mode" in search, ranking="ranking" in search,
                        occurred_at="occurred_at" in add, dedup="dedup" in add,
                        reranker=reranker)


def user_id(conversation: locomo.Conversation, variant: str) -> str:
    return f"locomo-{variant}-{conversation.sample_id}"


def _session_items(conversation: locomo.Conversation, variant: str,
                   caps: Capabilities) -> list[tuple[dict, list[str]]]:
    """One ``messages`` item per session, with the dia_ids of its turns in order."""
    sessions: dict[datetime, list[locomo.Turn]] = {}
    for turn in conversation.turns:
        sessions.setdefault(turn.occurred_at, []).append(turn)
    out = []
    for turns in sessions.values():
        item: dict = {"user_id": user_id(conversation, variant), "messages": [
            {"role": "user", "name": t.speaker, "content": t.message_text(),
             "timestamp": t.occurred_at.isoformat()} for t in turns]}
        if caps.dedup:
            item["dedup"] = False
        out.append((item, [t.dia_id for t in turns]))
    return out


def ingest(http: httpx.Client, conversations: Sequence[locomo.Conversation], variant: str,
           caps: Capabilities, labels: dict[str, str]) -> dict:
    """Store every turn as one memory through the batch route; returns the ingest rate and
    fills ``labels`` (memory id -> dia_id).

    Duplicate detection at write is turned off per item where the gateway has it: the metric
    is one memory per turn, and short turns ("Thanks!") would otherwise merge."""
    started, count = time.perf_counter(), 0
    for conversation in conversations:
        if variant == "messages":
            sessions = _session_items(conversation, variant, caps)
            while sessions:
                part, size = [], 0
                while sessions and (not part or size + len(sessions[0][1]) <= BATCH_ITEMS):
                    part.append(sessions.pop(0))
                    size += len(part[-1][1])
                answer = http.post("/v1/memories/batch",
                                   json={"items": [item for item, _ in part]})
                results = answer.raise_for_status().json()["results"]
                turns = [dia for _, dias in part for dia in dias]
                if len(results) != len(turns):
                    raise RuntimeError(f"{len(turns)} messages made {len(results)} memories")
                labels.update((r["id"], dia) for r, dia in zip(results, turns, strict=True))
                count += len(turns)
            continue
        items = []
        for turn in conversation.turns:
            item = {"user_id": user_id(conversation, variant),
                    "text": (turn.message_text() if variant == "bare"
                             else turn.memory_text(with_date=variant == "dated")),
                    "metadata": {"dia_id": turn.dia_id}}
            if caps.occurred_at:
                item["occurred_at"] = turn.occurred_at.isoformat()
            if caps.dedup:
                item["dedup"] = False
            items.append(item)
        for start in range(0, len(items), BATCH_ITEMS):
            part = items[start : start + BATCH_ITEMS]
            answer = http.post("/v1/memories/batch", json={"items": part})
            results = answer.raise_for_status().json()["results"]
            labels.update((r["id"], i["metadata"]["dia_id"])
                          for r, i in zip(results, part, strict=True))
            count += len(part)
    seconds = time.perf_counter() - started
    return {"memories": count, "seconds": round(seconds, 2),
            "memories_per_s": round(count / seconds, 1), "occurred_at": caps.occurred_at}


def search(http: httpx.Client, user: str, query: str, body: dict,
           limit: int) -> tuple[list[dict], float]:
    """One search; returns its hits and the wall-clock seconds it took."""
    started = time.perf_counter()
    response = http.post("/v1/memories/search",
                         json={"user_id": user, "query": query, "limit": limit, **body})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"search {body} answered {response.status_code}: {response.text}")
    answer = response.json()
    if "mode" in body and answer.get("mode", body["mode"]) != body["mode"]:
        raise RuntimeError(f"asked for mode {body['mode']}, the server used {answer['mode']}")
    return answer["results"], seconds


def dia_ids(hits: Sequence[dict], labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels[hit["id"]] for hit in hits)


@dataclass
class Target:
    """One gateway under test: its report key, its client, memory id -> dia_id."""

    key: str
    http: httpx.Client
    labels: dict[str, str]


def run_side_by_side(targets: Sequence[Target], conversations: Sequence[locomo.Conversation],
                     variant: str, rows: Sequence[Mode]) -> dict[str, dict[str, dict]]:
    """Every question in every row on every target (gateway), targets and rows taking turns
    per question, so each store and mode sees the same machine load: on a shared machine a
    store measured after another meets other load, and their ratio says little."""
    names = [(t.key, m.name) for t in targets for m in rows]
    answers: dict[tuple[str, str], list[Answer]] = {name: [] for name in names}
    seconds: dict[tuple[str, str], list[float]] = {name: [] for name in names}
    limit = max(KS)
    for conversation in conversations:
        user = user_id(conversation, variant)
        for number, question in enumerate(conversation.questions):
            turn, first = number % len(rows), number % len(targets)
            for target in [*targets[first:], *targets[:first]]:
                for mode in [*rows[turn:], *rows[:turn]]:
                    hits, took = search(target.http, user, question.text, mode.body, limit)
                    seconds[(target.key, mode.name)].append(took)
                    answers[(target.key, mode.name)].append(
                        Answer(question.category, question.evidence,
                               dia_ids(hits, target.labels)))
    return {t.key: {m.name: {"body": m.body,
                             **recall_report(answers[(t.key, m.name)], locomo.CATEGORIES),
                             "search": {"searches": len(seconds[(t.key, m.name)]),
                                        "limit": limit,
                                        **latency(seconds[(t.key, m.name)])}}
                    for m in rows}
            for t in targets}


def embedder_label(repository: Path) -> dict:
    """Which embedder the repository serves (its newest version's export manifest)."""
    versions = repository_versions(repository, "embedder")
    if not versions:
        raise SystemExit(f"no embedder version in {repository}: run `make export`")
    manifest_path = repository / "embedder" / str(versions[-1]) / "export_manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    source = Path(manifest["source"]["path"])
    name = source.parent.name if source.name == "model" else source.name  # a wheel's "model/"
    return {"name": name, "version": int(versions[-1]),
            "dimension": manifest["dimension"],
            "quantize": manifest["options"].get("quantize") or "fp32"}


@contextlib.contextmanager
def triton_for(repository: Path, work: Path) -> Iterator[tuple[TritonServer, bool]]:
    """Triton serving the repository's embedder, plus its reranker when one is exported."""
    reranker = has_version(repository, "reranker")
    with TritonServer(model_repository=repository,
                      models=("embedder", "reranker") if reranker else ("embedder",),
                      http_port=free_port(), grpc_port=free_port(),
                      metrics_port=free_port(), log_file=work / "triton.log") as triton:
        yield triton, reranker


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new database on the PostgreSQL server at ``server_url`` (dropped afterwards);
    yields its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def gateway(triton: TritonServer, repository: Path, work: Path,
            settings: dict[str, str] | None = None,
            store_url: str | None = None) -> Iterator[httpx.Client]:
    """A gateway on a fresh store. One per text variant: BM25's document counts are
    store-wide, so variants sharing a store would change each other's keyword scores.
    ``store_url`` (a PostgreSQL server): a fresh database there instead of a SQLite file."""
    if store_url is not None:
        database = f"bench_{work.name}_{os.getpid()}"
        with fresh_database(store_url, database) as url, gateway(
                triton, repository, work, {**(settings or {}), "MEMORY_STORE_URL": url}) as http:
            yield http
        return
    # Recall is measured, not overload: nothing is shed, no deadline drops a slow batch (a
    # larger embedder on a loaded machine takes well over the default 30 s per 500 texts),
    # no background job merges turns. The query-embedding cache is off, so every row pays
    # for embedding its query, as a new question does (rows ask the same questions).
    # Settings the caller exported win; ``settings`` adds defaults of a benchmark's own.
    env = {"MEMORY_ADMISSION_ENABLED": "false", "MEMORY_SQLITE_SYNCHRONOUS": "NORMAL",
           "MEMORY_INFERENCE_TIMEOUT_S": "600", "MEMORY_DEADLINE_INGEST_MS": "0",
           "MEMORY_DEADLINE_SEARCH_MS": "0", "MEMORY_JOBS_INTERVAL_S": "0",
           "MEMORY_QUERY_CACHE_SIZE": "0", **(settings or {})}
    env = {k: v for k, v in env.items() if k not in os.environ or k == "MEMORY_STORE_URL"}
    env["MEMORY_MODEL_REPOSITORY"] = str(repository)
    try:
        with gateway_process(triton, work / "data", work, env=env) as url, \
                httpx.Client(base_url=url, timeout=300) as http:
            yield http
    finally:
        shutil.rmtree(work / "data", ignore_errors=True)  # results keep figures, not stores


@dataclass
class Plan:
    conversations: list[locomo.Conversation]
    variants: list[str]
    rankings: list[dict]
    sweep: bool
    kinds: list[str]
    store_url: str | None = None  # also on PostgreSQL, beside SQLite (rows "<text>@postgres")
    # (label, gateway settings): each text variant runs once per profile, on a store of its
    # own; the label is appended to the variant's name in the report ("messages, fp32 query")
    profiles: list[tuple[str, dict[str, str]]] = field(default_factory=lambda: [("", {})])


def parse_profile(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL:NAME=VALUE,NAME=VALUE`` (gateway settings of one --settings profile)."""
    label, colon, pairs = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(f"--settings {text!r}: want LABEL:MEMORY_X=V,...")
    settings = {}
    for pair in filter(None, (p.strip() for p in pairs.split(","))):
        name, equals, value = pair.partition("=")
        if not equals or not name.startswith("MEMORY_"):
            raise argparse.ArgumentTypeError(f"--settings {text!r}: want LABEL:MEMORY_X=V,...")
        settings[name] = value
    if not label.strip():
        raise argparse.ArgumentTypeError(f"--settings {text!r}: the label is empty")
    return label.strip(), settings


def _rows(plan: Plan, caps: Capabilities) -> tuple[list[Mode], dict[str, str]]:
    """The rows this gateway can answer, and why the others are skipped."""
    rows = modes(plan.rankings, plan.kinds)
    active = [m for m in rows if caps.missing(m) is None]
    skipped = {m.name: reason for m in rows if (reason := caps.missing(m))}
    if not caps.modes:  # before hybrid search existed, the only search was semantic
        active = [Mode("semantic", "semantic", {"rerank": False})]
        skipped.pop("semantic", None)
    return active, skipped


def run_embedder(repository: Path, plan: Plan, work: Path) -> dict:
    label = embedder_label(repository)
    log(f"embedder {label['name']} v{label['version']} ({label['dimension']}-d) "
        f"from {repository}")
    report: dict = {"repository": str(repository), "embedder": label, "ingest": {},
                    "modes": {}}
    pools: dict = {}
    turns = sum(len(c.turns) for c in plan.conversations)
    questions = sum(len(c.questions) for c in plan.conversations)
    reorders: dict[str, Reorder] = {}
    servers: dict[str, FusionPolicy] = {}
    with triton_for(repository, work) as (triton, reranker):
        runs = [(variant, profile) for variant in plan.variants for profile in plan.profiles]
        # each run on SQLite and, with --store-url, on PostgreSQL beside it: both gateways up
        # at once, both stores asked each question in turn
        stores = [None] if plan.store_url is None else [None, plan.store_url]
        for variant, (label, settings) in runs:
            base = f"{variant}, {label}" if label else variant
            with contextlib.ExitStack() as opened:
                targets: list[Target] = []
                for store_url in stores:
                    key = base if store_url is None else f"{base}@postgres"
                    http = opened.enter_context(gateway(
                        triton, repository,
                        work / key.replace(", ", "-").replace(" ", "_").replace("@", "-"),
                        settings, store_url=store_url))
                    caps = capabilities(http, reranker)
                    active, skipped = _rows(plan, caps)
                    report |= {"capabilities": caps.__dict__, "skipped": skipped}
                    log(f"ingesting {turns} turns ({key}) ...")
                    labels: dict[str, str] = {}
                    report["ingest"][key] = ingest(http, plan.conversations, variant, caps,
                                                   labels)
                    log(f"  {report['ingest'][key]['memories_per_s']} memories/s")
                    targets.append(Target(key, http, labels))
                log(f"asking {questions} questions x {len(active)} modes "
                    f"({', '.join(t.key for t in targets)}) ...")
                report["modes"] |= run_side_by_side(targets, plan.conversations, variant,
                                                    active)
                if plan.sweep and caps.modes:
                    for target in targets:
                        log(f"sweep: fetching both pools of every question ({target.key}) ...")
                        pools[target.key] = collect(target.http, plan.conversations, variant,
                                                    user_id, target.labels)
                        reorders[target.key] = Reorder.of({**settings, **os.environ})
                        servers[target.key] = server_policy(settings)
    if plan.sweep:
        if pools:
            report["sweep"] = run_sweep(pools, log, reorders, servers)
        else:
            report["sweep"] = {"skipped": report["skipped"].get("keyword", "no keyword mode")}
    return report


def data_summary(path: Path, conversations: Sequence[locomo.Conversation]) -> dict:
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "conversations": len(conversations),
            "turns": sum(len(c.turns) for c in conversations),
            "questions": sum(len(c.questions) for c in conversations),
            "dropped_evidence_ids": sum(c.dropped_evidence for c in conversations),
            "dropped_questions": sum(c.dropped_questions for c in conversations)}


def markdown(report: dict) -> str:
    """The recall table (one row per embedder, text variant and mode), then per category."""
    head = ("| embedder | text | mode | any@5 | any@10 | any@20 | all@5 | all@10 | all@20 "
            "| p50 ms | p99 ms |\n|---|---|---|" + "---:|" * 8)
    lines, cats = [head], []
    cat_head = ("| embedder | text | mode | " + " | ".join(
        f"{name} (n={{{name}}})" for name in locomo.CATEGORIES.values()) + " |")
    for run in report["runs"]:
        name = f"{run['embedder']['name']} ({run['embedder']['dimension']}-d)"
        for variant, rows in run["modes"].items():
            for mode, figures in rows.items():
                o, s = figures["overall"], figures["search"]
                lines.append(f"| {name} | {variant} | {mode} | " + " | ".join(
                    f"{o[f'{kind}@{k}']:.3f}" for kind in ("any", "all") for k in KS)
                    + f" | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
                per = figures["per_category"]
                cats.append(f"| {name} | {variant} | {mode} | " + " | ".join(
                    f"{per[c]['any@10']:.3f}" for c in locomo.CATEGORIES.values()) + " |")
        for mode, reason in run["skipped"].items():
            lines.append(f"| {name} | | {mode} | skipped: {reason} ||||||||")
    counts = report["runs"][0]["modes"]
    first = next(iter(next(iter(counts.values())).values()))["per_category"]
    cat_head = cat_head.format(**{n: v["questions"] for n, v in first.items()})
    per_cat = [cat_head, "|---|---|---|" + "---:|" * len(locomo.CATEGORIES), *cats]
    text = "\n".join(lines) + "\n\nrecall_any@10 per category:\n\n" + "\n".join(per_cat) + "\n"
    for run in report["runs"]:
        for variant, figures in run["ingest"].items():
            text += (f"\nIngest, {run['embedder']['name']}, {variant}: {figures['memories']} "
                     f"memories in {figures['seconds']} s ({figures['memories_per_s']}/s).")
    return text + "\n"


def write_readme(table: str, command: str, result_path: Path, readme: Path = README) -> None:
    """Replace what stands between the README markers with this run's tables."""
    text = readme.read_text("utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{readme} lacks the markers {README_BEGIN} ... {README_END}")
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    block = (f"{README_BEGIN}\nCommand: `{command}` (JSON: `loadtest/results/"
             f"{result_path.name}`).\n\n{table}{README_END}")
    readme.write_text(before + block + after, "utf-8")


def public_command(argv: Sequence[str]) -> str:
    """The command line as README shows it: the data file's location is the user's own."""
    words, hide = [], False
    for word in argv:
        if hide and word.startswith("postgres"):
            words.append("postgresql://SERVER")
        elif hide:
            words.append("LOCOMO.json")
        elif word.startswith("--data="):
            words.append("--data=LOCOMO.json")
        else:
            words.append(word)
        hide = word in ("--data", "--store-url")
    return " ".join(["python -m loadtest.bench.retrieval", *words])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.retrieval",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"LoCoMo-format JSON file (default: ${DATA_ENV})")
    parser.add_argument("--repository", type=Path, action="append", default=None,
                        help="model repository whose embedder to use (default: "
                             "model_repository/); give it twice to compare two embedders")
    parser.add_argument("--text", default="messages",
                        help="comma-separated ingest variants: messages (each session as "
                             "one conversation), plain (one text per turn), dated (the "
                             "session date written into the text), bare (the text without "
                             "its speaker)")
    parser.add_argument("--ranking", type=json.loads, action="append", default=None,
                        help="ranking override of a 'hybrid + ranking' row, as JSON; repeatable "
                             f"(default {json.dumps(DEFAULT_RANKING)})")
    parser.add_argument("--modes", default=",".join(KINDS),
                        help=f"comma-separated rows to ask (default all: {','.join(KINDS)})")
    parser.add_argument("--conversations", type=int, default=None,
                        help="use only the first N conversations (quick runs)")
    parser.add_argument("--settings", type=parse_profile, action="append", default=None,
                        metavar="LABEL:MEMORY_X=V,...",
                        help="a gateway settings profile; repeatable: every text variant "
                             "runs once per profile, each on a store of its own (e.g. "
                             "'fp32 query:MEMORY_QUERY_PRECISION=fp32')")
    parser.add_argument("--sweep", action="store_true",
                        help="also tune hybrid fusion offline over pools fetched once")
    parser.add_argument("--readme", action="store_true",
                        help="write the tables into docs/benchmarks/retrieval.md between its "
                             "markers")
    parser.add_argument("--store-url", default=None,
                        help="a PostgreSQL server (postgresql://user@host:port/db): run each "
                             "text variant on a fresh database there too, beside SQLite "
                             "(rows '<text>@postgres')")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def data_file(given: Path | None, target: str) -> Path | None:
    """The LoCoMo-format file from ``--data`` or ``$MEMORY_BENCH_DATA``; None (and a line
    saying why, so ``make <target>`` skips cleanly) when there is none: no data ships here."""
    data = given or (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    if data is not None and data.is_file():
        return data
    where = f"{data} does not exist" if data else f"no --data PATH and no ${DATA_ENV}"
    print(f"{target}: skipped: {where}. Give a LoCoMo-format JSON file "
          f"(e.g. `make {target} DATA=/path/to/locomo.json`).", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    data = data_file(args.data, "bench-retrieval")
    if data is None:
        return 0
    variants = [v.strip() for v in args.text.split(",") if v.strip()]
    if not variants or set(variants) - set(TEXT_VARIANTS):
        print(f"--text: choose from {', '.join(TEXT_VARIANTS)}", file=sys.stderr)
        return 2
    try:
        conversations = locomo.load(data)[: args.conversations]
    except locomo.DataError as exc:
        print(f"bench-retrieval: {exc}", file=sys.stderr)
        return 2
    repositories = [p.resolve() for p in (args.repository or [ROOT / "model_repository"])]
    kinds = [k.strip() for k in args.modes.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        print(f"--modes: choose from {', '.join(KINDS)}", file=sys.stderr)
        return 2
    plan = Plan(conversations, variants, args.ranking or [DEFAULT_RANKING], args.sweep, kinds,
                args.store_url, args.settings or [("", {})])
    report: dict = {"benchmark": "retrieval", "started_at": datetime.now(UTC).isoformat(),
                    "command": public_command(argv), "data": data_summary(data, conversations),
                    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "load_average": os.getloadavg()},
                    "gateway_env": {k: v for k, v in os.environ.items()
                                    if k.startswith("MEMORY_") and k != DATA_ENV},
                    "runs": []}
    stamp = f"bench-retrieval-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    logs = args.out / f"{stamp}-logs"  # Triton and gateway logs stay, the stores do not
    path = args.out / f"{stamp}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    for number, repository in enumerate(repositories):
        report["runs"].append(run_embedder(repository, plan, logs / str(number)))
        report["machine"]["load_average_after"] = os.getloadavg()
        path.write_text(json.dumps(report, indent=2) + "\n")  # after each embedder: long runs
    table = markdown(report)
    if plan.sweep:
        table += "\n" + "".join(sweep_markdown(run) for run in report["runs"] if "sweep" in run)
    print(table)
    if args.readme:
        write_readme(table, report["command"], path)
        log(f"tables written into {README.relative_to(ROOT)}")
    log(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
