"""Exact inner-product search in numpy: one contiguous matrix per collection.

Rows are appended into a matrix that grows by doubling; a removed row becomes a tombstone
(masked at search time) and the matrix is compacted once tombstones pass a quarter of it.
This is the partitioned engine with no ANN graphs: exact by construction, and the reference
that the ANN backends are held to.
"""

from __future__ import annotations

from gateway.index.partitioned import PartitionedIndex


class ExactIndex(PartitionedIndex):
    def __init__(self) -> None:
        super().__init__(builder=None)
