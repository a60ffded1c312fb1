"""Mixed: what an agent does in a conversation, mostly recall, sometimes remember or correct."""

from __future__ import annotations

from locust import task

from loadtest.locust.scenarios.common import MemoryUser


class MixedUser(MemoryUser):
    @task(80)
    def find(self) -> None:
        self.search()

    @task(12)
    def remember(self) -> None:
        self.add()

    @task(4)
    def correct(self) -> None:
        self.update()

    @task(4)
    def forget(self) -> None:
        self.delete()
