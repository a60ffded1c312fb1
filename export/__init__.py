"""Model exporters: turn reference models into validated, versioned Triton model folders.

``python -m export embedder`` writes ``model_repository/embedder/<N>/``; see ``export.cli``.
"""

from .cli import main
from .errors import ExportError, ValidationError

__all__ = ["ExportError", "ValidationError", "main"]
