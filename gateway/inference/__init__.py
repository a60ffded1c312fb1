"""Talking to Triton: the gateway never loads a model itself."""

from gateway.inference.client import EmbedderClient, ModelInfo

__all__ = ["EmbedderClient", "ModelInfo"]
