"""An adaptive concurrency limit: AIMD on the latency the admitted requests actually see.

A fixed limit is right for one machine at one moment. The capacity behind the gateway moves
(Triton shares CPUs, long texts cost more than short ones, a GPU comes and goes), and the same
limit then either queues too much inside the backend (tail latency grows) or admits too little
(throughput drops). So the limit follows a latency target instead: every ``window`` completed
requests, if their p90 service time is over the target the limit shrinks by a fifth
(multiplicative decrease: leave overload fast); if it is well under and the limit was actually
reached, it grows by one (additive increase: probe for capacity slowly). Between
``minimum`` and ``maximum`` (the configured limit).
"""

from __future__ import annotations

import math


class AdaptiveLimit:
    def __init__(self, *, maximum: int, target_s: float, minimum: int = 1,
                 window: int = 32) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.target_s = target_s
        self.window = window
        self.limit = self.maximum
        self._samples: list[float] = []
        self._saturated = False

    def observe(self, service_s: float, *, saturated: bool) -> int:
        """Record one completed request; returns the (possibly new) limit."""
        self._samples.append(service_s)
        self._saturated |= saturated
        if len(self._samples) < self.window:
            return self.limit
        ordered = sorted(self._samples)
        p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
        if p90 > self.target_s:
            self.limit = max(self.minimum, math.floor(self.limit * 0.8))
        elif p90 < 0.7 * self.target_s and self._saturated:
            self.limit = min(self.maximum, self.limit + 1)
        self._samples.clear()
        self._saturated = False
        return self.limit
