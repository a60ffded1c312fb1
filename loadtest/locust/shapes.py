"""Step load for finding the knee: add users in equal steps, hold each step, then stop.

Given to Locust next to a scenario
(``-f loadtest/locust/scenarios/mixed.py,loadtest/locust/shapes.py``) so the same scenarios
serve both fixed and stepped runs. With constant-throughput users each step offers
``users x LOADTEST_RATE`` requests/s; the report cuts the request log into the same steps
(``step_windows``) and calls the knee the step with the most successful requests/s whose p99
stays under the SLO.

    LOADTEST_STEP_USERS    users added per step (default 10)
    LOADTEST_STEP_SECONDS  how long each step is held (default 15)
    LOADTEST_STEPS         number of steps (default 8)
"""

from __future__ import annotations

import os

from locust import LoadTestShape

from loadtest.locust.report import step_windows


class StepLoad(LoadTestShape):
    step_users = int(os.environ.get("LOADTEST_STEP_USERS", "10"))
    step_seconds = float(os.environ.get("LOADTEST_STEP_SECONDS", "15"))
    steps = int(os.environ.get("LOADTEST_STEPS", "8"))

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        for users, _, end in step_windows(self.step_users, self.step_seconds, self.steps):
            if run_time < end:
                return users, float(max(self.step_users, 1) * 4)  # reach each step in ~0.25 s
        return None
