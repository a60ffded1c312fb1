"""Generate perf_analyzer ``--input-data`` JSON for the models in a Triton repository.

    python -m loadtest.locust.perf_analyzer.inputs        # -> loadtest/locust/perf_analyzer/data/
    python -m loadtest.locust.perf_analyzer.inputs --repository docker/model_repository \
        --entries 200

perf_analyzer cannot be installed from PyPI (it ships in the NGC ``-py3-sdk`` image), so the
inputs are made here, from each model's ``config.pbtxt``: the same names, data types and
shapes Triton checks, with real texts of several lengths (string inputs become BYTES). The
embedder is always written; the reranker too when ``<repository>/reranker/config.pbtxt``
exists. ``requests_from`` turns the same JSON back into tritonclient inputs, which is how the
tests prove it valid against the real server.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from gateway.settings import ROOT
from loadtest.population import memory_text, query_text

MODELS = ("embedder", "reranker")
OUT = Path(__file__).resolve().parent / "data"
_NUMERIC = {"TYPE_INT64": np.int64, "TYPE_INT32": np.int32, "TYPE_FP32": np.float32,
            "TYPE_FP16": np.float16, "TYPE_BOOL": np.bool_}


def load_config(repository: Path, model: str) -> mc.ModelConfig:
    return text_format.Parse((repository / model / "config.pbtxt").read_text(), mc.ModelConfig())


def wire_type(data_type: int) -> str:
    """Triton's wire name for a config data type: TYPE_STRING -> BYTES, TYPE_FP32 -> FP32."""
    name = mc.DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def _text_for(input_name: str, rng: random.Random) -> str:
    """Queries where the model wants a query (reranker QUERY), memories everywhere else."""
    return query_text(rng) if "QUERY" in input_name.upper() else memory_text(rng)


def entries_for(config: mc.ModelConfig, count: int, seed: int = 0) -> list[dict]:
    """``count`` perf_analyzer data entries: one request's inputs each, batch dimension left
    out (perf_analyzer adds it; ``-b`` sets the batch size)."""
    rng = random.Random(seed)
    entries = []
    for _ in range(count):
        entry = {}
        for spec in config.input:
            shape = [d if d > 0 else 1 for d in spec.dims] or [1]
            size = int(np.prod(shape))
            type_name = mc.DataType.Name(spec.data_type)
            if type_name == "TYPE_STRING":
                content: list = [_text_for(spec.name, rng) for _ in range(size)]
            elif type_name in _NUMERIC:
                content = np.zeros(size, dtype=_NUMERIC[type_name]).tolist()
            else:
                raise ValueError(f"{config.name}.{spec.name}: no generator for {type_name}")
            entry[spec.name] = {"content": content, "shape": shape}
        entries.append(entry)
    return entries


def requests_from(data: dict, config: mc.ModelConfig) -> list[dict[str, np.ndarray]]:
    """The JSON's entries as numpy arrays with the batch dimension (what a client sends)."""
    types = {spec.name: mc.DataType.Name(spec.data_type) for spec in config.input}
    batched = config.max_batch_size > 0
    out = []
    for entry in data["data"]:
        arrays = {}
        for name, value in entry.items():
            shape = ([1] if batched else []) + list(value["shape"])
            if types[name] == "TYPE_STRING":
                flat = np.array([s.encode("utf-8") for s in value["content"]], dtype=np.object_)
            else:
                flat = np.array(value["content"], dtype=_NUMERIC[types[name]])
            arrays[name] = flat.reshape(shape)
        out.append(arrays)
    return out


def write_inputs(repository: Path, out: Path, entries: int = 100) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in MODELS:
        if not (repository / model / "config.pbtxt").exists():
            continue
        config = load_config(repository, model)
        path = out / f"{model}_inputs.json"
        data = {"data": entries_for(config, entries)}
        path.write_text(json.dumps(data, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.perf_analyzer.inputs",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--entries", type=int, default=100)
    args = parser.parse_args(argv)
    for path in write_inputs(args.repository, args.out, args.entries):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
