"""Multi-tenant: every request acts for a tenant drawn from a Zipf law over the seeded users.

A few tenants make most of the traffic (as real agent fleets do), which is what the gateway's
fair-share cap is for: the busiest tenant must not take every slot. Exponent from
``LOADTEST_ZIPF_S`` (default 1.1).
"""

from __future__ import annotations

import itertools
import os

from locust import task

from loadtest.locust.scenarios.common import SEED_USERS, MemoryUser, seeded_user

ZIPF_S = float(os.environ.get("LOADTEST_ZIPF_S", "1.1"))
_TENANTS = [seeded_user(i) for i in range(SEED_USERS)]
_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) ** ZIPF_S for rank in range(SEED_USERS)))


class TenantUser(MemoryUser):
    def pick(self) -> str:
        self.tenant = self.rng.choices(_TENANTS, cum_weights=_CUMULATIVE)[0]
        return self.tenant

    @task(8)
    def find(self) -> None:
        self.search(self.pick())

    @task(2)
    def remember(self) -> None:
        self.add(self.pick())
