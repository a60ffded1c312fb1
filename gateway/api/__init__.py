"""HTTP layer: wire schemas, routers, and the error/limit plumbing around them."""
