"""The perf_analyzer input JSON is valid for the real models: sent through tritonclient to the
real Triton server, every entry is accepted and answered with the declared output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import MODEL_REPOSITORY
from tritonclient.grpc import InferInput

from gateway.triton import TritonServer
from loadtest.locust.perf_analyzer.inputs import (
    load_config,
    requests_from,
    wire_type,
    write_inputs,
)
from loadtest.locust.triton_sweep import sweep


def send_all(triton: TritonServer, model: str, data: dict) -> list[dict[str, np.ndarray]]:
    config = load_config(MODEL_REPOSITORY, model)
    types = {spec.name: wire_type(spec.data_type) for spec in config.input}
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    answers = []
    try:
        for arrays in requests_from(data, config):
            inputs = []
            for name, array in arrays.items():
                item = InferInput(name, list(array.shape), types[name])
                item.set_data_from_numpy(array)
                inputs.append(item)
            result = client.infer(model, inputs, client_timeout=60)
            answers.append({o.name: result.as_numpy(o.name) for o in config.output})
    finally:
        client.close()
    return answers


def test_embedder_inputs_match_its_config_and_the_server(triton: TritonServer,
                                                          tmp_path: Path) -> None:
    paths = write_inputs(MODEL_REPOSITORY, tmp_path, entries=12)
    assert tmp_path / "embedder_inputs.json" in paths
    data = json.loads((tmp_path / "embedder_inputs.json").read_text())
    assert len(data["data"]) == 12
    lengths = {len(e["TEXT"]["content"][0]) for e in data["data"]}
    assert max(lengths) > 4 * min(lengths)  # several text lengths, not one
    for entry in data["data"]:
        assert set(entry) == {"TEXT"} and entry["TEXT"]["shape"] == [1]
    answers = send_all(triton, "embedder", data)
    for answer in answers:
        vector = answer["EMBEDDING"]
        assert vector.shape[0] == 1 and vector.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vector, axis=1), 1.0, atol=1e-4)


def test_reranker_inputs_when_a_reranker_is_in_the_repository(triton: TritonServer,
                                                                tmp_path: Path) -> None:
    folder = MODEL_REPOSITORY / "reranker"
    if not (folder / "config.pbtxt").exists():
        pytest.skip("no model_repository/reranker/config.pbtxt yet")
    if not any(p.is_dir() and p.name.isdigit() for p in folder.iterdir()):
        pytest.skip("reranker has a config but no exported version (python -m export reranker)")
    write_inputs(MODEL_REPOSITORY, tmp_path, entries=6)
    data = json.loads((tmp_path / "reranker_inputs.json").read_text())
    control = grpcclient.InferenceServerClient(triton.grpc_url)
    loaded_here = not control.is_model_ready("reranker")
    try:
        if loaded_here:
            control.load_model("reranker")
        answers = send_all(triton, "reranker", data)
    finally:
        if loaded_here:
            control.unload_model("reranker")
        control.close()
    assert len(answers) == 6
    for answer in answers:
        for output in answer.values():
            assert output.shape[0] == 1 and np.all(np.isfinite(output.astype(np.float64)))


def test_triton_sweep_reports_throughput_latency_and_server_batches(
    triton: TritonServer,
) -> None:
    report = sweep(triton.grpc_url, triton.http_url, "embedder", [1, 4], 0.5, MODEL_REPOSITORY)
    one, four = report["levels"]
    assert one["concurrency"] == 1 and four["concurrency"] == 4
    for level in (one, four):
        assert level["requests"] > 0 and level["throughput_per_s"] > 0
        assert 0 < level["p50_ms"] <= level["p99_ms"]
        assert sum(level["server_batch_histogram"].values()) > 0
    assert set(one["server_batch_histogram"]) == {1}  # one in flight: nothing to merge
