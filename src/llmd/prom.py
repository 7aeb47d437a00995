"""A small parser for the Prometheus text exposition format (what vLLM, the simulator and the EPP serve on
/metrics), and the few reductions `llmd scheduler metrics` needs: sums over label matches, histogram means
and quantiles from cumulative buckets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> dict[str, list[Sample]]:
    """Samples by metric name (histogram series keep their _bucket/_sum/_count names). Bad lines are skipped."""
    out: dict[str, list[Sample]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(2) or "")}
        out.setdefault(m.group(1), []).append(Sample(m.group(1), labels, value))
    return out


class Metrics:
    def __init__(self, text: str) -> None:
        self.samples = parse(text)

    def has(self, *names: str) -> bool:
        return any(n in self.samples for n in names)

    def total(self, *names: str, **match: str) -> float | None:
        """Sum of every series of the first of `names` present whose labels include `match`; None if absent."""
        for name in names:
            if name in self.samples:
                return sum(s.value for s in self.samples[name] if all(s.labels.get(k) == v for k, v in match.items()))
        return None

    def histogram(self, name: str) -> tuple[list[tuple[float, float]], float, float] | None:
        """(cumulative buckets (le, count) summed over series, sum, count) or None."""
        buckets: dict[float, float] = {}
        for s in self.samples.get(f"{name}_bucket", []):
            le = math.inf if s.labels.get("le") in ("+Inf", "Inf") else float(s.labels.get("le", "nan"))
            buckets[le] = buckets.get(le, 0.0) + s.value
        count = self.total(f"{name}_count")
        if count is None:
            return None
        return sorted(buckets.items()), self.total(f"{name}_sum") or 0.0, count


def mean(hist: tuple[list[tuple[float, float]], float, float] | None) -> float | None:
    if hist is None or hist[2] <= 0:
        return None
    return hist[1] / hist[2]


def quantile(q: float, hist: tuple[list[tuple[float, float]], float, float] | None) -> float | None:
    """Linear interpolation inside the bucket holding the q-th observation (Prometheus histogram_quantile);
    the upper bound of the highest finite bucket when it falls in +Inf."""
    if hist is None or hist[2] <= 0 or not hist[0]:
        return None
    buckets, _, count = hist
    rank = q * count
    lower_le, lower_count = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if math.isinf(le):
                return lower_le
            if cum == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (cum - lower_count)
        lower_le, lower_count = le, cum
    return buckets[-1][0] if not math.isinf(buckets[-1][0]) else lower_le
