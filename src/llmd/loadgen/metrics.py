"""Metric definitions (the one place: used by --help and stored in every report), statistics and SLO checks."""

from __future__ import annotations

import math

from llmd.durations import parse_duration
from llmd.errors import ConfigError

METRICS: dict[str, str] = {
    "ttft_ms": "Time to first token: arrival of the first content-bearing SSE event minus the time the request was "
               "written to the connection (client queue delay excluded).",
    "queue_ms": "Client queue delay: time the request was written minus its scheduled start (open loop: its arrival "
                "time; closed loop: when its concurrency slot freed). Large values mean the client or --max-inflight, "
                "not the server, held the request.",
    "itl_ms": "Inter-token latency: gaps between consecutive content-bearing events, pooled over all requests "
              "(events that arrive in one read have a gap of 0).",
    "tpot_ms": "Time per output token, per request: (last content event - first content event) / (output tokens - 1); "
               "requests with fewer than 2 output tokens have none.",
    "e2e_ms": "End-to-end latency: end of the response body minus the time the request was written.",
    "request_rate": "Successful requests per second over the stage's measured window (first send to last end).",
    "output_token_rate": "Output tokens of successful requests per second over the measured window.",
    "total_token_rate": "Prompt plus output tokens of successful requests per second over the measured window.",
    "goodput": "Successful requests per second that met every --slo limit; attainment is their share of all "
               "measured requests.",
    "error_rate": "Failed measured requests / all measured requests (warm-up and cancelled requests excluded).",
    "tokens": "Token counts come from the server's usage (stream_options.include_usage); when absent the output "
              "count falls back to the number of content events and the prompt count to the workload's word count, "
              "and token_source says so.",
    "cached_tokens": "Prompt tokens served from the prefix cache, from usage.prompt_tokens_details.cached_tokens when "
                     "the server reports it.",
    "client_cpu": "CPU seconds used by the load generator per wall second (1.0 = one core busy); with loop lag it "
                  "tells whether the client, not the server, limited the numbers.",
}

QUANTILES = (50, 90, 95, 99)


def percentile(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_vals:
        return math.nan
    k = (len(sorted_vals) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def summarize(values: list[float]) -> dict:
    """count, mean, p50, p90, p95, p99, max, min (None when there are no values)."""
    if not values:
        return {"count": 0, "mean": None, **{f"p{q}": None for q in QUANTILES}, "max": None, "min": None}
    vals = sorted(values)
    out = {"count": len(vals), "mean": _r(sum(vals) / len(vals))}
    for q in QUANTILES:
        out[f"p{q}"] = _r(percentile(vals, q))
    out["max"] = _r(vals[-1])
    out["min"] = _r(vals[0])
    return out


def _r(x: float) -> float:
    return round(x, 4)


_SLO_KEYS = ("ttft", "tpot", "itl", "e2e")


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft=200ms,tpot=50ms,e2e=10s[,attainment=0.95]` -> {"ttft": 200.0, ..., "attainment": 0.95} (ms).

    A bare number is milliseconds. Attainment (default 0.95) is the share of measured requests that must meet every
    limit; below it the stage breaches its SLO (exit 8).
    """
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in (*_SLO_KEYS, "attainment"):
            raise ConfigError(f"invalid --slo item {part.strip()!r}",
                              "use key=value with keys ttft, tpot, itl, e2e (ms or s) and attainment (0-1), "
                              "e.g. --slo ttft=200ms,tpot=50ms,attainment=0.95")
        if key == "attainment":
            try:
                frac = float(value)
            except ValueError:
                frac = -1.0
            if not 0 < frac <= 1:
                raise ConfigError(f"invalid --slo attainment {value!r}", "use a fraction in (0, 1], e.g. 0.95")
            out[key] = frac
            continue
        try:  # the duration parser of every other time flag; a bare number is milliseconds here
            seconds = parse_duration(value.replace(" ", ""), name=f"--slo {key}", bare_unit=1e-3)
        except ConfigError:
            seconds = 0.0
        if seconds <= 0:
            raise ConfigError(f"invalid --slo {key} value {value!r}",
                              "use a positive duration such as 200ms, 1.5s or 1m")
        out[key] = seconds * 1000.0
    if not any(k in out for k in _SLO_KEYS):
        raise ConfigError(f"--slo {text!r} sets no latency limit", "give at least one of ttft, tpot, itl, e2e")
    out.setdefault("attainment", 0.95)
    return out


def meets_slo(rec: dict, slo: dict[str, float]) -> bool:
    """A successful record meets the SLO when each limited metric it has is within its limit."""
    if not rec["ok"]:
        return False
    for key in _SLO_KEYS:
        limit = slo.get(key)
        if limit is None:
            continue
        value = rec.get("itl_max_ms") if key == "itl" else rec.get(f"{key}_ms")
        if value is not None and value > limit:
            return False
    return True
