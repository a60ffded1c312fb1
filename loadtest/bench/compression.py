"""``make bench-compression``: how much smaller does search get when old memories are
compressed, and what does recall lose? On a LoCoMo-format file (``--data PATH`` or
``$MEMORY_BENCH_DATA``), through the HTTP API of a real local stack (bundled Triton + gateway,
the harness of ``loadtest/bench/retrieval.py``):

1. each conversation is stored as one user, one memory per turn (priority: the default);
2. every question of categories 1-4 is asked with hybrid search (limit 20): recall_any@k and
   recall_all@k (k = 5, 10, 20) before;
3. a ``compress`` job over every user folds each user's oldest half of low-priority memories
   (``MEMORY_COMPRESS_*``, here with ``--group-size`` and ``--min-cosine``) into summaries;
4. the same questions again with default search (archived sources left out), recall after.
   A hit on a summary counts as a hit on every evidence turn among its sources.

Memories searched = a user's memories that default search reads (listed without
``include_archived``), summed over users, before and after. JSON to ``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from gateway.settings import ROOT
from loadtest.bench import locomo
from loadtest.bench.report_file import write_report
from loadtest.bench.retrieval import (
    DATA_ENV,
    capabilities,
    data_file,
    data_summary,
    gateway,
    ingest,
    public_command,
    search,
    triton_for,
    user_id,
)
from loadtest.bench.retrieval_metrics import KS, Answer, hit_all, hit_any
from loadtest.paths import RESULTS

VARIANT = "plain"
SEARCH = {"mode": "hybrid", "rerank": False}
PAGE = 1000  # the list route's largest page
JOB_DEADLINE_S = 1800.0


def log(message: str) -> None:
    print(f"[bench-compression] {message}", file=sys.stderr, flush=True)


def memories(http: httpx.Client, user: str, include_archived: bool = False) -> list[dict]:
    """Every memory a default search of ``user`` reads (or all, archived ones too)."""
    found: list[dict] = []
    cursor = None
    while True:
        params: dict = {"user_id": user, "limit": PAGE, "include_archived": include_archived}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/v1/memories", params=params).raise_for_status().json()
        found.extend(page["results"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def turns_of(http: httpx.Client, users: Sequence[str],
             labels: dict[str, str]) -> dict[str, frozenset[str]]:
    """Memory id -> the turns (dia_ids) it stands for: its own (``labels``, from ingest), or
    its sources' for a summary."""
    out = {i: frozenset([dia]) for i, dia in labels.items()}
    for user in users:
        for memory in memories(http, user, include_archived=True):
            if memory["sources"] is not None:
                out[memory["id"]] = frozenset(labels[s] for s in memory["sources"])
    return out


def recall_expanded(conversations: Sequence[locomo.Conversation], hits: list[list[str]],
                    turns: dict[str, frozenset[str]]) -> dict[str, float]:
    """recall_any@k / recall_all@k with each hit standing for its turns (see above), and
    ``turns@k``: how many turns the first k hits stand for, on average (a summary stands for
    several, so after compression k hits cover more turns than k)."""
    questions = [q for c in conversations for q in c.questions]
    out: dict[str, float] = {}
    for k in KS:
        answers = []
        for question, ids in zip(questions, hits, strict=True):
            covered = tuple(sorted(set().union(*[turns[i] for i in ids[:k]])))
            answers.append(Answer(question.category, question.evidence, covered))
        count = max(len(answers), 1)
        out[f"any@{k}"] = round(sum(hit_any(a, len(a.ranked)) for a in answers) / count, 4)
        out[f"all@{k}"] = round(sum(hit_all(a, len(a.ranked)) for a in answers) / count, 4)
        out[f"turns@{k}"] = round(sum(len(a.ranked) for a in answers) / count, 2)
    return out


def ask(http: httpx.Client, conversations: Sequence[locomo.Conversation]) -> list[list[str]]:
    """Every question once, hybrid; the result ids of each."""
    out = []
    for conversation in conversations:
        user = user_id(conversation, VARIANT)
        for question in conversation.questions:
            results, _ = search(http, user, question.text, SEARCH, max(KS))
            out.append([hit["id"] for hit in results])
    return out


def compress_all(http: httpx.Client) -> dict:
    job = http.post("/v1/jobs", json={"kind": "compress"}).raise_for_status().json()
    started = time.perf_counter()
    deadline = time.monotonic() + JOB_DEADLINE_S
    while job["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"compress job still {job['status']} after {JOB_DEADLINE_S} s")
        time.sleep(0.5)
        job = http.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
    if job["status"] != "done":
        raise RuntimeError(f"compress job {job['status']}: {job['error']}")
    return {**job["progress"], "seconds": round(time.perf_counter() - started, 1)}


def run(conversations: list[locomo.Conversation], repository: Path, work: Path,
        settings: dict[str, str]) -> dict:
    users = [user_id(c, VARIANT) for c in conversations]
    with triton_for(repository, work) as (triton, reranker), \
            gateway(triton, repository, work / "gateway", settings) as http:
        caps = capabilities(http, reranker)
        log(f"ingesting {sum(len(c.turns) for c in conversations)} turns ...")
        labels: dict[str, str] = {}  # memory id -> dia_id
        stored = ingest(http, conversations, VARIANT, caps, labels)
        searched_before = {u: len(memories(http, u)) for u in users}
        log("asking every question before compression ...")
        before = recall_expanded(conversations, ask(http, conversations),
                                 turns_of(http, users, labels))
        log("compressing ...")
        job = compress_all(http)
        searched_after = {u: len(memories(http, u)) for u in users}
        log("asking every question after compression ...")
        after = recall_expanded(conversations, ask(http, conversations),
                                turns_of(http, users, labels))
    total_before, total_after = sum(searched_before.values()), sum(searched_after.values())
    return {
        "ingest": stored, "compress_job": job,
        "memories_searched": {"before": total_before, "after": total_after,
                              "cut": round(1 - total_after / total_before, 4),
                              "per_user": {u: [searched_before[u], searched_after[u]]
                                           for u in users}},
        "recall_before": before, "recall_after": after,
        "recall_drop_points": {k: round(100 * (before[k] - after[k]), 2) for k in before},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.compression",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help=f"LoCoMo-format JSON file (default: ${DATA_ENV})")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--group-size", type=int, default=None,
                        help="MEMORY_COMPRESS_GROUP_SIZE (default: the gateway's)")
    parser.add_argument("--min-cosine", type=float, default=None,
                        help="MEMORY_COMPRESS_MIN_COSINE (default: the gateway's)")
    parser.add_argument("--conversations", type=int, default=None,
                        help="use only the first N conversations (quick runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    data = data_file(args.data, "bench-compression")
    if data is None:
        return 0
    try:
        conversations = locomo.load(data)[: args.conversations]
    except locomo.DataError as exc:
        print(f"bench-compression: {exc}", file=sys.stderr)
        return 2
    settings = {"MEMORY_JOBS_USER_SIZE": "0"}  # only the job this benchmark starts
    if args.group_size is not None:
        settings["MEMORY_COMPRESS_GROUP_SIZE"] = str(args.group_size)
    if args.min_cosine is not None:
        settings["MEMORY_COMPRESS_MIN_COSINE"] = str(args.min_cosine)
    work = args.out / "bench-compression-work"
    report = {"benchmark": "compression",
              "command": public_command(argv).replace("bench.retrieval", "bench.compression"),
              "data": data_summary(data, conversations), "search": SEARCH,
              "gateway_settings": settings | {k: v for k, v in os.environ.items()
                                              if k.startswith("MEMORY_COMPRESS_")},
              "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
              **run(conversations, args.repository.resolve(), work, settings)}
    write_report(args.out, "bench-compression", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
