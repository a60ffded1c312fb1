"""``make bench-jobs``: interactive search latency while consolidation jobs run, against idle.

One Triton server and one gateway process (``loadtest.stack``). ``--users`` users get
``--per-user`` memories each, ``--dup-share`` of them planted near duplicates of an earlier
memory of the user (same words up to case and punctuation, vector within a small angle), so
the merge job has real work. Memories carry random unit vectors supplied by the client
(seeding skips Triton); their texts are realistic, so hybrid search does real keyword work,
and they happened up to a year ago, so a compress job finds old events to fold.

One client searches (text queries embedded by Triton, the server's default mode, ``limit``
10, users in turn). The run alternates, ``--rounds`` times: ``--searches`` idle searches, then
one job over every user of each kind (merge, then compress where the server has it) with the
client searching throughout; before each later round every user gets ``--round-memories``
more (duplicates planted again), so each round's jobs have work. Alternating spreads the
drift of a shared machine over both sides; ``--match-idle`` adds, after each job, as many idle
searches as were timed during it, so both sides have as many samples over as long a time (paced
jobs last much longer than an idle block). A search counts as "during" when it began after a
job was queued and ended before the job finished. The target: p99 during <= 1.5x idle p99.
The load average (1 min) at the start and the end goes into the report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from loadtest.bench.latency import _dim, percentiles, text_bodies, unit_vectors
from loadtest.bench.report_file import write_report
from loadtest.paths import RESULTS
from loadtest.population import memory_text
from loadtest.stack import gateway_process, triton_server

SEED_BATCH = 500
DUPLICATE_NOISE = 0.02  # per-dimension noise of a planted duplicate's vector (cosine ~0.9)
JOB_KINDS = ("merge", "compress")  # run in this order, those the server accepts
TARGET_RATIO = 1.5
# Memories happened this long ago: past the compress job's default minimum age (30 days).
MIN_AGE_DAYS, MAX_AGE_DAYS = 1.0, 400.0
STATUS_EVERY = 5  # searches between two reads of the running job's status
# No size-triggered or scheduled jobs: the benchmark starts its own.
GATEWAY_ENV = {"MEMORY_JOBS_USER_SIZE": "0", "MEMORY_JOBS_INTERVAL_S": "0"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def planted_duplicate(text: str, rng: random.Random) -> str:
    """The same words, written differently (what dedup's lexical rule still calls equal)."""
    variant = text.lower() if rng.random() < 0.5 else text.upper()
    return variant.rstrip(".") + rng.choice(["!", "", " ..."])


class Population:
    """The users' memories, added in rounds; a planted duplicate repeats an earlier memory of
    its user (any round), so every round gives the merge job fresh work."""

    def __init__(self, url: str, users: list[str], dim: int) -> None:
        self.url, self.users, self.dim = url, users, dim
        self.rng, self.texts = np.random.default_rng(0), random.Random(0)
        self.stored: dict[str, list[tuple[str, np.ndarray]]] = {u: [] for u in users}
        self.planted = 0

    def add(self, per_user: int, dup_share: float) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as http:
            for user in self.users:
                items = [self._item(user, dup_share) for _ in range(per_user)]
                for start in range(0, len(items), SEED_BATCH):
                    response = http.post("/v1/memories/batch", json={
                        "items": items[start:start + SEED_BATCH], "dedup": False})
                    response.raise_for_status()

    def _item(self, user: str, dup_share: float) -> dict:
        stored, texts = self.stored[user], self.texts
        if stored and texts.random() < dup_share:
            text, vector = texts.choice(stored)
            text = planted_duplicate(text, texts)
            vector = vector + self.rng.normal(scale=DUPLICATE_NOISE, size=self.dim)
            vector = (vector / np.linalg.norm(vector)).astype(np.float32)
            self.planted += 1
        else:
            text, vector = memory_text(texts), unit_vectors(1, self.dim, self.rng)[0]
            stored.append((text, vector))
        occurred = datetime.now(UTC) - timedelta(days=texts.uniform(MIN_AGE_DAYS, MAX_AGE_DAYS))
        return {"user_id": user, "text": text, "occurred_at": occurred.isoformat(),
                "embedding": [round(float(x), 6) for x in vector]}


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def searches(http: httpx.Client, bodies: list[dict]) -> list[tuple[str, str, float]]:
    """Search each body: (UTC start, UTC end, milliseconds) per search."""
    samples = []
    for body in bodies:
        at, started = now_text(), time.perf_counter()
        response = http.post("/v1/memories/search", json=body)
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"search failed: {response.status_code} {response.text[:200]}")
        samples.append((at, now_text(), ms))
    return samples


def latencies(samples: list[tuple[str, str, float]]) -> list[float]:
    return [ms for _, _, ms in samples]


def rotating_bodies(users: list[str], count: int, tag: str) -> list[dict]:
    per_user = -(-count // len(users))
    bodies = [b for u in users for b in text_bodies(u, per_user, f"{tag}-{u}")]
    random.Random(tag).shuffle(bodies)
    return bodies[:count]


def run_job(http: httpx.Client, users: list[str], kind: str, tag: str
            ) -> tuple[dict, list[float]] | None:
    """Run one job over every user, searching meanwhile; the searches that began after it was
    queued and ended before it finished count (the runner is idle, so it claims a job as it
    is queued). Its status is read between batches of searches by the same thread, so no
    second client competes with the one measured. None when the server has no such kind."""
    response = http.post("/v1/jobs", json={"kind": kind})
    if response.status_code == 422:
        return None
    response.raise_for_status()
    job_id = response.json()["id"]
    samples: list[tuple[str, str, float]] = []
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        samples.extend(searches(http, rotating_bodies(
            users, STATUS_EVERY, f"{tag}-{len(samples)}")))
    inside = [ms for start, end, ms in samples
              if start >= job["created_at"] and end <= job["finished_at"]]
    return job, inside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.jobs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--per-user", type=int, default=3000, help="memories before round 1")
    parser.add_argument("--dup-share", type=float, default=0.1,
                        help="share of the memories that are planted duplicates")
    parser.add_argument("--rounds", type=int, default=4,
                        help="idle block, then one job of each kind; repeated")
    parser.add_argument("--round-memories", type=int, default=300,
                        help="memories per user added (not measured) before each later round")
    parser.add_argument("--searches", type=int, default=100, help="idle searches per round")
    parser.add_argument("--kinds", default=",".join(JOB_KINDS),
                        help="job kinds to run in turn, comma-separated")
    parser.add_argument("--match-idle", action="store_true",
                        help="after each job, as many idle searches as were timed during it")
    parser.add_argument("--inference-timeout-s", type=float, default=None,
                        help="the gateway's MEMORY_INFERENCE_TIMEOUT_S (default: its own)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    users = [f"u{i:02d}" for i in range(args.users)]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    env = dict(GATEWAY_ENV)
    if args.inference_timeout_s is not None:
        env["MEMORY_INFERENCE_TIMEOUT_S"] = str(args.inference_timeout_s)
    report: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "gateway_env": env, "load_average": {"start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as scratch, \
            triton_server(Path(scratch) / "triton") as triton, \
            gateway_process(triton, Path(scratch) / "data", Path(scratch) / "gateway",
                            env=env) as url:
        population = Population(url, users, _dim(url))
        log(f"seeding {len(users)} users x {args.per_user} (client vectors) ...")
        population.add(args.per_user, args.dup_share)
        idle: list[float] = []
        by_kind: dict[str, list[float]] = {}
        rounds: list[dict] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            searches(http, rotating_bodies(users, 50, "warm"))
            for n in range(args.rounds):
                if n:
                    population.add(args.round_memories, args.dup_share)
                block = latencies(searches(http, rotating_bodies(users, args.searches,
                                                                 f"idle{n}")))
                idle.extend(block)
                entry: dict = {"idle": percentiles(block), "jobs": []}
                for kind in kinds:
                    ran = run_job(http, users, kind, f"r{n}-{kind}")
                    if ran is None:
                        log(f"  no {kind} jobs on this server")
                        continue
                    job, inside = ran
                    by_kind.setdefault(kind, []).extend(inside)
                    if args.match_idle and inside:
                        after = latencies(searches(http, rotating_bodies(
                            users, len(inside), f"idle{n}-{kind}")))
                        idle.extend(after)
                        entry.setdefault("idle_after_jobs", []).append(percentiles(after))
                    entry["jobs"].append({
                        "kind": kind, "status": job["status"], "progress": job["progress"],
                        "seconds": round((datetime.fromisoformat(job["finished_at"])
                                          - datetime.fromisoformat(job["created_at"]))
                                         .total_seconds(), 2),
                        "searches_during": percentiles(inside) if inside else None})
                rounds.append(entry)
                log(f"round {n}: {json.dumps(entry)}")
    during = [ms for samples in by_kind.values() for ms in samples]
    if not during:
        log("no search fell inside a job: the jobs were too short; give more --per-user")
        return 1
    report["load_average"]["end"] = os.getloadavg()[0]
    report["planted_duplicates"] = population.planted
    report["idle"] = percentiles(idle)
    report["during_jobs"] = percentiles(during)
    report["during_by_kind"] = {kind: percentiles(samples) | {
        "p99_ratio_over_idle": round(percentiles(samples)["p99_ms"] / report["idle"]["p99_ms"],
                                     2)} for kind, samples in by_kind.items() if samples}
    report["rounds"] = rounds
    ratio = report["during_jobs"]["p99_ms"] / report["idle"]["p99_ms"]
    report["p99_ratio_during_over_idle"] = round(ratio, 2)
    report["p50_ratio_during_over_idle"] = round(
        report["during_jobs"]["p50_ms"] / report["idle"]["p50_ms"], 2)
    report["target_met"] = ratio <= TARGET_RATIO
    write_report(args.out, "bench-jobs", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
