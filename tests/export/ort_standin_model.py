"""Test-only stand-in for ``embedder_onnx``: runs the ONNX graph in the python backend.

The CPU tritonserver from nvidia-pytriton has no onnxruntime backend, so the GPU ensemble is
exercised here with this model in place of the native one. Same tensor names, same graph file.
"""

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(str(version_dir / "model.onnx"))
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {
                n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs
            }
            values = self.session.run(self.outputs, feeds)
            tensors = [pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
