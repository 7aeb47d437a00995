"""TTFT and inter-token latency of llm-d-inference-sim (default latency calculator).

    LF(running) = 1 + (time_factor_under_load - 1) * (running - 1) / (max_num_seqs - 1)   (1 if max_num_seqs <= 1)
    TTFT = N(ttft * LF, ttft_std)                                         when ttft or its std is set
         = N(prefill_overhead * LF + (n - n_cached) * prefill_per_token * LF, prefill_std)   otherwise
    ITL  = N(itl * LF, itl_std)

N(mean, std) is a normal sample clamped to [0.3, 1.7] * mean. Unlike upstream we do not truncate
to whole milliseconds, so sub-millisecond latencies stay usable for benchmarks.
"""

from __future__ import annotations

import random

from llmd.sim.config import SimConfig


class Latency:
    def __init__(self, cfg: SimConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self._slope = ((cfg.time_factor_under_load - 1.0) / (cfg.max_num_seqs - 1)) if cfg.max_num_seqs > 1 else 0.0
        self.fixed_ttft = cfg.ttft > 0 or cfg.ttft_std > 0

    def load_factor(self, running: int) -> float:
        return 1.0 + self._slope * max(running - 1, 0)

    def _norm(self, mean: float, std: float) -> float:
        if std <= 0 or mean <= 0:
            return mean
        return min(max(self.rng.gauss(mean, std), 0.3 * mean), 1.7 * mean)

    def ttft(self, n_prompt: int, n_cached: int, running: int) -> float:
        lf = self.load_factor(running)
        cfg = self.cfg
        if self.fixed_ttft:
            return self._norm(cfg.ttft * lf, cfg.ttft_std)
        mean = cfg.prefill_overhead * lf + max(n_prompt - n_cached, 0) * cfg.prefill_per_token * lf
        return self._norm(mean, cfg.prefill_std)

    def itl(self, running: int) -> float:
        cfg = self.cfg
        if cfg.itl <= 0:
            return 0.0
        return self._norm(cfg.itl * self.load_factor(running), cfg.itl_std)
