"""Benchmarks: one module per ``make bench*`` target or study, each writing JSON to
``loadtest/results/``. They start their stack through ``loadtest.stack`` and import nothing
from the Locust kit (``loadtest.locust``)."""
