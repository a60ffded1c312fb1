"""Model versions: which one serves (``active``), swapping the embedder with a background
re-embedding (``activation``), swapping the reranker (``rerankers``), Triton's model control
(``control``) and the batcher-free query twin (``query_model``).

The version table itself sits behind the store protocol (``gateway.store.base.VersionTable``).
"""
