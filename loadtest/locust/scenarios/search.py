"""Search: queries against the seeded users' memories (each answer must hold 1-10 hits)."""

from __future__ import annotations

from locust import task

from loadtest.locust.scenarios.common import MemoryUser


class SearchUser(MemoryUser):
    @task
    def find(self) -> None:
        self.search()
