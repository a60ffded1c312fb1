"""The exported version served by the real tritonserver (python backend, CPU).

Checks what only a live server can: the stub imports model.py and its runtime, warm-up with
TYPE_STRING samples loads, outputs match sentence-transformers, the dynamic batcher merges
concurrent requests, and one bad request fails alone.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import make_triton
from support.triton_stats import counts, quiet, settled
from tritonclient.utils import InferenceServerException

from export.validate import SENTENCES, reference_embeddings
from gateway.triton import TritonServer

STANDIN = Path(__file__).with_name("ort_standin_model.py")


def start_server(repo: Path, log_dir: Path) -> TritonServer:
    return make_triton(log_dir, repository=repo).start(timeout_s=120)


@pytest.fixture(scope="module")
def server(exported_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    triton = start_server(exported_repo, tmp_path_factory.mktemp("triton-export-logs"))
    try:
        yield triton
    finally:
        triton.stop()


@pytest.fixture(scope="module")
def reference(source_dir: Path) -> np.ndarray:
    return reference_embeddings(source_dir)


def infer(url: str, texts: list[bytes], model: str = "embedder") -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        batch = np.array([[t] for t in texts], dtype=object)
        tensor = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
        tensor.set_data_from_numpy(batch)
        wanted = [grpcclient.InferRequestedOutput("EMBEDDING")]
        result = client.infer(model, [tensor], outputs=wanted)
        return result.as_numpy("EMBEDDING")
    finally:
        client.close()


def test_embeddings_match_sentence_transformers(
    server: TritonServer, reference: np.ndarray, version_dir: Path
) -> None:
    served = infer(server.grpc_url, [s.encode("utf-8") for s in SENTENCES])
    assert served.shape == reference.shape == (len(SENTENCES), 384)
    assert served.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    max_abs_diff = float(np.max(np.abs(served - reference)))
    min_cosine = float(np.min(np.sum(served * reference, axis=1)))
    assert max_abs_diff <= 1e-4 and min_cosine >= 0.999
    # Same figures as the exporter recorded: the server ran the validated code path.
    recorded = json.loads((version_dir / "export_manifest.json").read_text())["validation"]
    assert max_abs_diff == pytest.approx(recorded["fp32"]["max_abs_diff"], abs=1e-6)


def test_warmup_samples_ran_at_load(server: TritonServer) -> None:
    # Warm-up runs before READY and is counted in the statistics.
    assert counts(server, "embedder").batch_sizes.get(8, 0) >= 1
    assert not re.search(r"warm.?up.*(fail|error)", server.log_tail(400), re.IGNORECASE)


def test_concurrent_requests_are_batched(server: TritonServer, reference: np.ndarray) -> None:
    before = quiet(server, "embedder")  # the previous test's request may still be counting
    texts = [SENTENCES[i % len(SENTENCES)].encode("utf-8") for i in range(64)]
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda t: infer(server.grpc_url, [t]), texts))
    for i, vectors in enumerate(results):
        assert vectors.shape == (1, 384)
        assert float(vectors[0] @ reference[i % len(SENTENCES)]) >= 0.999
    delta = settled(server, "embedder", before, 64)
    assert delta.requests == delta.inferences == 64
    assert delta.executions < 64, f"no batching: {delta.executions} executions for 64 requests"
    assert any(size > 1 for size in delta.batch_sizes), delta.batch_sizes


def test_bad_utf8_fails_only_its_own_request(server: TritonServer) -> None:
    payloads = [b"fine text %d" % i for i in range(15)] + [b"\xff\xfe not utf-8"]

    def call(payload: bytes) -> np.ndarray | InferenceServerException:
        try:
            return infer(server.grpc_url, [payload])
        except InferenceServerException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(call, payloads))
    assert all(isinstance(o, np.ndarray) and o.shape == (1, 384) for o in outcomes[:-1])
    assert isinstance(outcomes[-1], InferenceServerException)
    assert "UTF-8" in str(outcomes[-1]) and "INVALID_ARG" in str(outcomes[-1].status())


def test_large_request_and_empty_strings(server: TritonServer) -> None:
    texts = [b"", b" "] + [f"memory {i} ".encode() * (i % 8 + 1) for i in range(998)]
    vectors = infer(server.grpc_url, texts)
    assert vectors.shape == (1000, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    single = infer(server.grpc_url, [texts[500]])
    np.testing.assert_allclose(vectors[500], single[0], atol=1e-5)


def test_gpu_ensemble_layout_serves_on_cpu_with_a_standin(
    ensemble_repo: Path, reference: np.ndarray, tmp_path: Path
) -> None:
    """Tokenizer step + ensemble wiring of --backend onnxruntime, run for real on CPU.

    Only ``embedder_onnx`` is swapped for a python model running the same graph, because this
    tritonserver has no onnxruntime backend.
    """
    repo = tmp_path / "repo"
    shutil.copytree(ensemble_repo, repo, symlinks=True, ignore=shutil.ignore_patterns("*.onnx"))
    (repo / "embedder_onnx" / "1" / "model.onnx").symlink_to(
        ensemble_repo / "embedder_onnx" / "1" / "model.onnx"
    )
    shutil.copy(STANDIN, repo / "embedder_onnx" / "1" / "model.py")
    config = repo / "embedder_onnx" / "config.pbtxt"
    text = config.read_text().replace('backend: "onnxruntime"', 'backend: "python"')
    text = text.replace("KIND_GPU", "KIND_CPU")
    config.write_text(text[: text.index("optimization")])
    triton = start_server(repo, tmp_path)
    try:
        served = infer(triton.grpc_url, [s.encode("utf-8") for s in SENTENCES])
        assert float(np.min(np.sum(served * reference, axis=1))) >= 0.999
        with pytest.raises(InferenceServerException, match="UTF-8"):
            infer(triton.grpc_url, [b"\xff"])
    finally:
        triton.stop()
