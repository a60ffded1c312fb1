"""Duplicate handling at write: accuracy on the labelled set, and what it costs on ingest.

(a) Accuracy, per dedup setting (one gateway process each, same Triton): every user's base
    facts go in by batch (a merge among them is a false merge: they are distinct facts), then
    each probe of ``loadtest/bench/dedup_set.py`` by a single add. A planted duplicate is caught
    when the add answers NOOP/UPDATE with the id of the fact it repeats; a look-alike is falsely
    merged when the add answers anything but ADD. Settings swept: the lexical rule at several
    cosine floors, and the plain cosine rule (``MEMORY_DEDUP_LEXICAL=false``) at several
    thresholds.
(b) Cost: batch ingest of distinct texts (``loadtest/corpus.py``) through the default gateway,
    dedup on vs ``dedup: false``, rounds alternated so drift on a shared machine hits both;
    memories/s each and their ratio.

    python -m loadtest.bench.dedup [--texts 4000] [--batch 100] [--out loadtest/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from loadtest.bench.dedup_set import examples
from loadtest.corpus import sentences
from loadtest.stack import gateway_process, triton_server

SWEEP = [
    {"MEMORY_DEDUP_LEXICAL": "true", "MEMORY_DEDUP_MIN_COSINE": "0.3"},  # the default
    {"MEMORY_DEDUP_LEXICAL": "true", "MEMORY_DEDUP_MIN_COSINE": "0.5"},
    {"MEMORY_DEDUP_LEXICAL": "true", "MEMORY_DEDUP_MIN_COSINE": "0.7"},
    {"MEMORY_DEDUP_LEXICAL": "false", "MEMORY_DEDUP_MIN_COSINE": "0.9"},
    {"MEMORY_DEDUP_LEXICAL": "false", "MEMORY_DEDUP_MIN_COSINE": "0.95"},
    {"MEMORY_DEDUP_LEXICAL": "false", "MEMORY_DEDUP_MIN_COSINE": "0.98"},
]
COMMON = {"MEMORY_ADMISSION_ENABLED": "false", "MEMORY_AUTH": "off",
          "MEMORY_SQLITE_SYNCHRONOUS": "NORMAL"}


def accuracy(url: str, seed: int) -> dict:
    caught = planted = merged = distinct = 0
    by_kind: dict[str, list[int]] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for user in examples(seed):
            answer = http.post("/v1/memories/batch", json={"items": [
                {"user_id": user.user, "text": text} for text in user.base]})
            answer.raise_for_status()
            base = answer.json()["results"]
            distinct += len(base)
            merged += sum(r["event"] != "ADD" for r in base)
            ids = [r["id"] for r in base]
            for probe in user.probes:
                r = http.post("/v1/memories", json={"user_id": user.user, "text": probe.text})
                r.raise_for_status()
                result = r.json()
                hit = by_kind.setdefault(probe.kind, [0, 0])
                hit[1] += 1
                if probe.duplicate_of is None:
                    distinct += 1
                    wrong = result["event"] != "ADD"
                    merged += wrong
                    hit[0] += wrong
                else:
                    planted += 1
                    ok = result["event"] != "ADD" and result["id"] == ids[probe.duplicate_of]
                    caught += ok
                    hit[0] += ok
    return {"planted_duplicates": planted, "caught": caught, "recall": caught / planted,
            "distinct_facts": distinct, "false_merges": merged,
            "false_merge_rate": merged / distinct,
            "per_kind": {k: {"count": n, "caught_or_merged": c} for k, (c, n) in by_kind.items()}}


def ingest_rates(url: str, texts: list[str], batch: int, rounds: int) -> dict:
    elapsed = {"on": 0.0, "off": 0.0}
    count = {"on": 0, "off": 0}
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    with httpx.Client(base_url=url, timeout=120) as http:
        for r in range(rounds):
            for position, chunk in enumerate(chunks):
                order = ("on", "off") if (r + position) % 2 == 0 else ("off", "on")
                for mode in order:
                    body = {"items": [{"user_id": f"ingest-{mode}", "text": t} for t in chunk],
                            "dedup": mode == "on"}
                    if r:  # later rounds: new texts, so every round adds (no NOOP shortcut)
                        body["items"] = [{**i, "text": f"{i['text']} r{r}"}
                                         for i in body["items"]]
                    start = time.perf_counter()
                    answer = http.post("/v1/memories/batch", json=body)
                    elapsed[mode] += time.perf_counter() - start
                    answer.raise_for_status()
                    events = [x["event"] for x in answer.json()["results"]]
                    assert events.count("ADD") == len(chunk), events
                    count[mode] += len(chunk)
    on, off = count["on"] / elapsed["on"], count["off"] / elapsed["off"]
    return {"memories_per_s_dedup_on": on, "memories_per_s_dedup_off": off,
            "ratio_on_over_off": on / off, "memories_each": count["on"], "batch": batch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("loadtest/results"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    report: dict = {"created_at": datetime.now(UTC).isoformat(), "host": platform.node(),
                    "command": "python -m loadtest.bench.dedup " + " ".join(argv or []),
                    "accuracy": []}
    with triton_server(work / "logs") as triton:
        for n, setting in enumerate(SWEEP):
            with gateway_process(triton, work / f"acc-{n}", work / "logs",
                                 COMMON | setting) as url:
                result = accuracy(url, args.seed) | {"settings": setting}
            print(json.dumps(result), flush=True)
            report["accuracy"].append(result)
        with gateway_process(triton, work / "cost", work / "logs", COMMON) as url:
            report["ingest"] = ingest_rates(url, sentences(args.texts, seed=3), args.batch,
                                            args.rounds)
        print(json.dumps(report["ingest"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"dedup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
