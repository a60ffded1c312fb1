"""Optional LLM extraction (``infer: true``): facts from a conversation, then ADD / UPDATE /
DELETE / NOOP decisions against similar stored memories, through any OpenAI-compatible
chat-completions endpoint (vLLM, TensorRT-LLM / Triton's OpenAI frontend, NIM, Ollama)."""
