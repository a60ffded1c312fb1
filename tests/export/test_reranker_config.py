"""The committed reranker config is the generated one, parses, and matches the exported graph."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import deserialize_bytes_tensor

from export import reranker_config, triton_config

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository" / "reranker"


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


@pytest.mark.parametrize("relative", sorted(reranker_config.files()))
def test_committed_files_equal_the_generator(relative: str) -> None:
    assert (COMMITTED / relative).read_bytes() == reranker_config.files()[relative], (
        f"model_repository/reranker/{relative} is stale: regenerate it with the exporter"
    )


def test_config_is_the_gateway_contract() -> None:
    config = parse(reranker_config.python_backend_config())
    assert (config.name, config.backend) == ("reranker", "python")
    assert config.max_batch_size >= 512  # a search's whole candidate pool in one request
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("QUERY", mc.TYPE_STRING, [1]), ("PASSAGE", mc.TYPE_STRING, [1])]
    (score,) = config.output
    assert (score.name, score.data_type, list(score.dims)) == ("SCORE", mc.TYPE_FP32, [1])
    # Batching, queueing, versions and threads exactly as the embedder's.
    embedder = parse(triton_config.python_backend_config())
    assert config.dynamic_batching == embedder.dynamic_batching
    assert config.dynamic_batching.default_queue_policy.allow_timeout_override
    assert config.version_policy == embedder.version_policy
    assert list(config.instance_group) == list(embedder.instance_group)
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {"intra_op_threads": "2", "inner_batch_size": "64"}


def test_warmup_samples_feed_both_inputs() -> None:
    config = parse(reranker_config.python_backend_config())
    files = reranker_config.files()
    assert {s.name for s in config.model_warmup} == set(reranker_config.WARMUP_SAMPLES)
    for sample in config.model_warmup:
        batch, query, passage = reranker_config.WARMUP_SAMPLES[sample.name]
        assert sample.batch_size == batch and set(sample.inputs) == {"QUERY", "PASSAGE"}
        for name, text in (("QUERY", query), ("PASSAGE", passage)):
            data = sample.inputs[name]
            assert data.data_type == mc.TYPE_STRING and list(data.dims) == [1]
            wire = files[f"warmup/{data.input_data_file}"]
            assert deserialize_bytes_tensor(wire).tolist() == [text.encode()]


def test_tensor_contract_matches_the_version(reranker_repo: Path) -> None:
    """model.py reads QUERY/PASSAGE and writes SCORE; the graph gives one logit per pair."""
    version = reranker_repo / "reranker" / "1"
    source = (version / "model.py").read_text()
    for line in ('QUERY_NAME = "QUERY"', 'PASSAGE_NAME = "PASSAGE"', 'OUTPUT_NAME = "SCORE"'):
        assert line in source
    session = ort.InferenceSession(str(version / "model.onnx"))
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(outputs) == [reranker_config.GRAPH_OUTPUT] and outputs["logits"][-1] == 1
    assert "token_type_ids" in {i.name for i in session.get_inputs()}
