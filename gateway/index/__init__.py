"""Vector indexes: a cache over the store's vectors, rebuildable from it at any time."""
