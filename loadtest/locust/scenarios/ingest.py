"""Ingest: one memory at a time (interactive) and batches of 10-50 (priority: batch)."""

from __future__ import annotations

from locust import task

from loadtest.locust.scenarios.common import MemoryUser


class IngestUser(MemoryUser):
    @task(4)
    def add_one(self) -> None:
        self.add()

    @task(1)
    def add_many(self) -> None:
        self.add_batch()
