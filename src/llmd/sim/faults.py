"""Which fault (if any) a request gets: the `x-llmd-fault` header wins, else one draw against
the exclusive `--fault KIND:RATE` probabilities."""

from __future__ import annotations

import random

from llmd.sim.config import FaultSpec

# Faults answered at once, before the request takes a slot (they mimic the gateway or a proxy).
IMMEDIATE = frozenset({"status", "rate_limit", "context_length", "html_200", "no_choices"})


class FaultPicker:
    def __init__(self, specs: tuple[FaultSpec, ...], rng: random.Random) -> None:
        self.specs = specs
        self.rng = rng
        self._header_cache: dict[bytes, FaultSpec] = {}

    def pick(self, header: bytes | None) -> FaultSpec | None:
        """Raises ConfigError for an unknown header value (the app answers 400)."""
        if header:
            spec = self._header_cache.get(header)
            if spec is None:
                spec = FaultSpec.parse(header.decode("latin-1"), with_rate=False)
                if len(self._header_cache) < 256:
                    self._header_cache[header] = spec
            return spec
        if not self.specs:
            return None
        u = self.rng.random()
        acc = 0.0
        for spec in self.specs:
            acc += spec.rate
            if u < acc:
                return spec
        return None

    @staticmethod
    def after_tokens(spec: FaultSpec, n_out: int) -> int:
        """Token index at which a stream fault fires (default: half the output, at least 1)."""
        if spec.param is None:
            return max(1, n_out // 2)
        return min(int(spec.param), n_out)
