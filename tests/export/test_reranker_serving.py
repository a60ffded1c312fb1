"""The exported reranker served by the real tritonserver (python backend, CPU).

What only a live server shows: the stub loads model.py and its runtime, the two-input warm-up
runs, scores equal the PyTorch model's, merged requests are split back right, and a bad
request fails alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import make_triton
from support.triton_stats import counts, quiet, settled
from tritonclient.utils import InferenceServerException

from export.rerank_validate import pairs, reference_scores
from gateway.triton import TritonServer


@pytest.fixture(scope="module")
def server(reranker_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    triton = make_triton(tmp_path_factory.mktemp("triton-reranker-logs"), repository=reranker_repo,
                         models=("reranker",))
    with triton:
        yield triton


def score(url: str, queries: list[bytes], passages: list[bytes]) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        tensors = []
        for name, values in (("QUERY", queries), ("PASSAGE", passages)):
            batch = np.array([[v] for v in values], dtype=object)
            tensor = grpcclient.InferInput(name, list(batch.shape), "BYTES")
            tensor.set_data_from_numpy(batch)
            tensors.append(tensor)
        result = client.infer("reranker", tensors,
                              outputs=[grpcclient.InferRequestedOutput("SCORE")])
        return result.as_numpy("SCORE")
    finally:
        client.close()


def encode(texts: list[str]) -> list[bytes]:
    return [t.encode("utf-8") for t in texts]


def test_scores_match_pytorch(server: TritonServer, cross_encoder_dir: Path) -> None:
    queries, passages = pairs()
    served = score(server.grpc_url, encode(queries), encode(passages))
    assert served.shape == (len(queries), 1) and served.dtype == np.float32
    reference = reference_scores(cross_encoder_dir, max_length=128)
    assert float(np.max(np.abs(served[:, 0] - reference))) <= 1e-4


def test_warmup_ran_at_load(server: TritonServer) -> None:
    assert counts(server, "reranker").batch_sizes.get(8, 0) >= 1
    assert not re.search(r"warm.?up.*(fail|error)", server.log_tail(400), re.IGNORECASE)


def test_concurrent_requests_are_batched_and_split_back(server: TritonServer) -> None:
    from support.tiny_cross_encoder import TOPICS, passage, query

    requests = [(query(t, 1), [passage(o, 0) for o in TOPICS[:5]]) for t in TOPICS[:5] * 8]
    alone = {q: score(server.grpc_url, encode([q] * 5), encode(p))[:, 0] for q, p in requests}
    before = quiet(server, "reranker")
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        results = list(pool.map(
            lambda r: score(server.grpc_url, encode([r[0]] * 5), encode(r[1])), requests))
    delta = settled(server, "reranker", before, len(requests))
    for (q, _), result in zip(requests, results, strict=True):
        np.testing.assert_allclose(result[:, 0], alone[q], atol=1e-5)  # padding changes nothing
    assert delta.requests == len(requests) and delta.inferences == 5 * len(requests)
    assert delta.executions < len(requests), delta
    assert any(size > 5 for size in delta.batch_sizes), delta


def test_bad_requests_fail_alone(server: TritonServer) -> None:
    good = [(encode(["what about chess?"]), encode([f"chess note {i}"])) for i in range(14)]
    bad_utf8 = ([b"query"], [b"\xff\xfe not utf-8"])
    uneven = (encode(["q", "q"]), encode(["p"]))

    def call(args: tuple[list[bytes], list[bytes]]) -> np.ndarray | InferenceServerException:
        try:
            return score(server.grpc_url, *args)
        except InferenceServerException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(call, [*good, bad_utf8, uneven]))
    assert all(isinstance(o, np.ndarray) and o.shape == (1, 1) for o in outcomes[:-2])
    utf8_error, uneven_error = outcomes[-2:]
    assert isinstance(utf8_error, InferenceServerException) and "UTF-8" in str(utf8_error)
    assert "INVALID_ARG" in str(utf8_error.status())
    assert isinstance(uneven_error, InferenceServerException)


def test_one_request_of_a_thousand_pairs(server: TritonServer) -> None:
    passages = [f"memory {i} about " + "hiking " * (i % 9) for i in range(1000)]
    scores = score(server.grpc_url, encode(["hiking?"] * 1000), encode(passages))
    assert scores.shape == (1000, 1) and np.all(np.isfinite(scores))
    single = score(server.grpc_url, encode(["hiking?"]), encode([passages[500]]))
    np.testing.assert_allclose(scores[500], single[0], atol=1e-5)
