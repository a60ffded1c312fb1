"""Benchmarks and load tests (Locust scenarios come later)."""
