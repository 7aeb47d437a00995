"""The one retry policy: exponential backoff, capped, jittered by default (rule 11 in docs/behaviours.md).

The smoke test retries transient HTTP answers with it; the port-forward paces its restarts with it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


def backoff(attempt: int, base: float = 0.25, cap: float = 4.0, rng: random.Random | None = None, *,
            jitter: bool = True) -> float:
    """Seconds before retry number `attempt` (1 = the first): x = base * 2^(attempt-1), capped; with `jitter`
    uniform in [x/2, x], so clients that failed together do not retry together."""
    x = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(x / 2, x) if jitter else x


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    window_s: float = 30.0  # total time spent retrying one operation
    base: float = 0.25  # first backoff step (seconds); doubled per attempt, capped
    cap: float = 4.0
    sleep: Callable[[float], None] = time.sleep
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        return backoff(attempt, self.base, self.cap, jitter=self.jitter)
