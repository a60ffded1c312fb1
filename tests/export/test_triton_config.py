"""The committed Triton config is the generated one, parses, and matches the exported graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from export import triton_config

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository" / "embedder"


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


@pytest.mark.parametrize("relative", sorted(triton_config.python_backend_files()))
def test_committed_files_equal_the_generator(relative: str) -> None:
    expected = triton_config.python_backend_files()[relative]
    assert (COMMITTED / relative).read_bytes() == expected, (
        f"model_repository/embedder/{relative} is stale: run `python -m export embedder`"
    )


def test_python_backend_config_is_the_gateway_contract() -> None:
    config = parse(triton_config.python_backend_config())
    assert (config.name, config.backend, config.max_batch_size) == ("embedder", "python", 1024)
    (text,) = config.input
    assert (text.name, text.data_type, list(text.dims)) == ("TEXT", mc.TYPE_STRING, [1])
    (embedding,) = config.output
    assert (embedding.name, embedding.data_type) == ("EMBEDDING", mc.TYPE_FP32)
    assert list(embedding.dims) == [-1]
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [16, 32]
    assert batching.max_queue_delay_microseconds == 2000
    policy = batching.default_queue_policy
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert policy.default_timeout_microseconds == 30_000_000
    assert policy.allow_timeout_override and policy.max_queue_size == 512
    (group,) = config.instance_group
    assert (group.kind, group.count) == (mc.ModelInstanceGroup.KIND_CPU, 1)
    assert config.version_policy.latest.num_versions == 1
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {"intra_op_threads": "2", "inner_batch_size": "64"}


def test_warmup_files_are_serialized_string_tensors() -> None:
    config = parse(triton_config.python_backend_config())
    files = triton_config.python_backend_files()
    assert len(config.model_warmup) == len(triton_config.WARMUP_SAMPLES) >= 1
    for sample in config.model_warmup:
        data = sample.inputs["TEXT"]
        assert data.data_type == mc.TYPE_STRING and list(data.dims) == [1]
        _batch, text = triton_config.WARMUP_SAMPLES[sample.name]
        wire = files[f"warmup/{data.input_data_file}"]
        assert wire == serialize_byte_tensor(np.array([text.encode()], dtype=object)).item()
        assert deserialize_bytes_tensor(wire).tolist() == [text.encode()]


def test_python_backend_tensor_contract_matches_the_version(version_dir: Path) -> None:
    """model.py reads TEXT and writes EMBEDDING; the graph output it returns is 384-d."""
    source = (version_dir / "model.py").read_text()
    assert 'INPUT_NAME = "TEXT"' in source and 'OUTPUT_NAME = "EMBEDDING"' in source
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert outputs["sentence_embedding"][-1] == 384


def test_onnxruntime_backend_layout(ensemble_repo: Path) -> None:
    """--backend onnxruntime: ensemble + tokenizer + native ORT model, names from the graph."""
    repo = ensemble_repo
    configs = {
        name: parse((repo / name / "config.pbtxt").read_text())
        for name in ("embedder", "embedder_tokenize", "embedder_onnx")
    }
    session = ort.InferenceSession(str(repo / "embedder_onnx" / "1" / "model.onnx"))
    graph_inputs = [i.name for i in session.get_inputs()]
    graph_outputs = {o.name: o.shape for o in session.get_outputs()}

    onnx_cfg = configs["embedder_onnx"]
    assert onnx_cfg.backend == "onnxruntime"
    assert [i.name for i in onnx_cfg.input] == graph_inputs
    assert all(i.data_type == mc.TYPE_INT64 for i in onnx_cfg.input)
    (out,) = onnx_cfg.output
    assert out.name in graph_outputs and list(out.dims) == graph_outputs[out.name][1:]
    assert onnx_cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    (accel,) = onnx_cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"

    tokenize = configs["embedder_tokenize"]
    assert [o.name for o in tokenize.output] == graph_inputs
    assert {"model.py", "tokenizer.json", "embedding_runtime.py"} <= {
        p.name for p in (repo / "embedder_tokenize" / "1").iterdir()
    }

    ensemble = configs["embedder"]
    assert ensemble.platform == "ensemble"
    assert [i.name for i in ensemble.input] == ["TEXT"]
    assert [o.name for o in ensemble.output] == ["EMBEDDING"]
    first, second = ensemble.ensemble_scheduling.step
    assert (first.model_name, second.model_name) == ("embedder_tokenize", "embedder_onnx")
    assert set(first.output_map) == set(second.input_map) == set(graph_inputs)
    assert dict(second.output_map) == {"sentence_embedding": "EMBEDDING"}
    manifest = json.loads((repo / "embedder" / "1" / "export_manifest.json").read_text())
    assert manifest["models"] == {"embedder": 1, "embedder_tokenize": 1, "embedder_onnx": 1}
    assert manifest["options"] == {"quantize": None, "backend": "onnxruntime", "tensorrt": True}
