"""Inference: the Triton clients (embedder, reranker, model control) and the in-gateway query
encoder (``local_encoder.py``: the embedder's ONNX export run on the gateway's CPU for search
queries, unless ``MEMORY_QUERY_ENCODER=triton``). Documents are always embedded by Triton.
"""
