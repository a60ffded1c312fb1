"""Domain types at the bottom of the house: what the store and the memory logic share.

Nothing here imports another gateway package, so the store (below the memory service) and the
service (above it) can both depend on these values without depending on each other.
"""
