"""Vector indexes: a cache over the store's vectors, rebuildable from it at any time."""

from gateway.index.base import Hit, VectorIndex
from gateway.index.exact import ExactIndex

__all__ = ["ExactIndex", "Hit", "VectorIndex"]
