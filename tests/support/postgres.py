"""The throwaway PostgreSQL server of the tests: ``loadtest.postgres``, shared with the
benchmarks (the session fixtures are in ``tests/conftest.py``)."""

from loadtest.postgres import PostgresServer, find_binary, started, unavailable_reason

__all__ = ["PostgresServer", "find_binary", "started", "unavailable_reason"]
