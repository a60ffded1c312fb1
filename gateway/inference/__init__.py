"""Talking to Triton: the gateway never loads a model itself."""

from gateway.inference.client import EmbedderClient, ModelInfo
from gateway.inference.reranker import RerankerClient

__all__ = ["EmbedderClient", "ModelInfo", "RerankerClient"]
