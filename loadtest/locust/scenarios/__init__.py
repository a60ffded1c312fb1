"""Locust scenarios, one locustfile each (``locust -f loadtest/locust/scenarios/<name>.py``).

    ingest        single adds (realistic text sizes) and batch adds (priority: batch)
    search        searches over the seeded population
    mixed         80% search, 12% add, 4% update, 4% delete
    multi_tenant  many tenants with Zipf-distributed activity (a few very busy, most quiet)
    swap          mixed load while the embedder is reloaded in Triton mid-run

Run them through ``make loadtest SCENARIO=...`` (``python -m loadtest.locust.runner``), which starts
the stack, seeds it and reports; ``common.py`` documents the environment they read.
"""

SCENARIOS = ("ingest", "search", "mixed", "multi_tenant", "swap")
