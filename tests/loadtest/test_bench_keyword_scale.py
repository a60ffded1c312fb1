"""``make bench-keyword-scale`` end to end on a small scale (a real Triton and gateway), and
the two things its figures rest on: seeded vectors shaped like text embeddings, and a wait
for the index's graph builds before anything is measured."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
from support import settings_for
from support.servers import serving

from gateway.settings import ROOT
from loadtest.bench.common_words import SERVED_VERSION, VOCABULARY, WordVectors
from loadtest.bench.keyword_scale import main
from loadtest.stack import wait_for_index


def test_word_vectors_are_near_for_shared_words_and_far_otherwise() -> None:
    vectors_of = WordVectors(ROOT / SERVED_VERSION)
    first, second, third = (" ".join(VOCABULARY[i:i + 5]) for i in (0, 1, 15))
    a, b, c = np.asarray(vectors_of([first, second, third]))
    assert np.allclose(np.linalg.norm([a, b, c], axis=1), 1.0, atol=1e-5)
    assert float(a @ b) > float(a @ c) + 0.1  # four words shared against none


def test_the_wait_returns_once_no_graph_build_is_pending(tmp_path: Path, triton) -> None:
    settings = settings_for(triton, tmp_path, ann_threshold=300, auth="off")
    with serving(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        rng = np.random.default_rng(0)  # clustered, as embeddings are: a graph indexes them
        centres = rng.standard_normal((20, 384))
        vectors = (centres[rng.integers(0, 20, 400)]
                   + 0.6 * rng.standard_normal((400, 384))).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = [{"user_id": "big", "text": f"memory {i}", "embedding": v.round(6).tolist()}
                 for i, v in enumerate(vectors)]
        assert http.post("/v1/memories/batch", json={"items": items}).status_code == 201
        assert wait_for_index(http) is not None
        metrics = http.get("/metrics").text
        assert "memory_index_builds_pending 0.0" in metrics
        assert "memory_index_graph_vectors 400.0" in metrics  # built, not skipped


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--sizes", "1000,2000", "--searches", "5", "--out", str(out)]) == 0
    [path] = out.glob("keyword-scale-*.json")
    report = json.loads(path.read_text())
    assert report["after"]["index_settle_seconds"] is not None
    users = report["after"]["users"]
    assert set(users) == {"u1k", "u2k"}
    for figures in users.values():
        for mode in ("keyword", "hybrid"):
            assert figures[mode]["p50_ms"] > 0
    assert report["store_side_by_side"]
