"""`llmd bench compare`: the same seeded perf workload once per scheduler profile, side by side.

Per profile: apply it through the platform (local: the gateway swaps its scheduler, which starts with an empty
prefix index; Kubernetes: `scheduler apply`, a gaie-only helmfile sync that rolls the EPP), which returns once the
profile is in effect; then the perf run,
whose shared-prefix prompts get fresh group prefixes (cold caches on every replica), warms up for `--warmup` (1 s when
not given) and measures. One JSON document holds every profile's summary under its name plus the ratios to the
first profile; each profile's full perf report is written beside it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError

SCHEMA = "llmd.compare/v1"
DEFAULT_WARMUP_S = 1.0
# (key, label, unit, lower is better) — the columns of the table, the ratios and the chart.
METRICS = (
    ("ttft_p50_ms", "TTFT p50", "ms", True),
    ("ttft_p99_ms", "TTFT p99", "ms", True),
    ("tpot_p50_ms", "TPOT p50", "ms", True),
    ("output_tok_s", "output tok/s", "tok/s", False),
    ("request_rate", "req/s", "req/s", False),
    ("hit_rate", "prefix hit rate", "", False),
    ("errors", "errors", "", True),
)


def parse_profiles(text: str | None) -> list[str]:
    from llmd.scheduler import profiles

    known = (*profiles.names(), *profiles.aliases())
    names = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not names:
        raise ConfigError("bench compare needs --scheduler with one or more profiles, e.g. --scheduler random,default",
                          hint="profiles: " + ", ".join(known))
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"--scheduler: unknown profile(s) {', '.join(bad)}", hint="profiles: " + ", ".join(known))
    if len(set(names)) != len(names):
        raise ConfigError(f"--scheduler {text}: a profile is listed twice", hint="name each profile once")
    return names


def stage_summary(stage: dict[str, Any]) -> dict[str, Any]:
    """The compared numbers of one perf stage summary (llmd.perf/v1)."""
    cached = (stage.get("tokens") or {}).get("cached") or {}
    return {
        "label": stage.get("label"),
        "ttft_p50_ms": (stage.get("ttft_ms") or {}).get("p50"),
        "ttft_p99_ms": (stage.get("ttft_ms") or {}).get("p99"),
        "tpot_p50_ms": (stage.get("tpot_ms") or {}).get("p50"),
        "output_tok_s": (stage.get("throughput") or {}).get("output_token_rate"),
        "request_rate": (stage.get("throughput") or {}).get("request_rate"),
        "hit_rate": cached.get("hit_rate"),
        "errors": (stage.get("requests") or {}).get("failed", 0),
        "failures": stage.get("failures") or {},
    }


def ratios(entry: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, *_ in METRICS:
        a, b = entry.get(key), base.get(key)
        out[key] = round(a / b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    return out


@dataclass
class CompareReport:
    platform: str
    profiles: list[str]
    config: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "platform": self.platform, "baseline": self.profiles[0], "profiles": self.profiles,
                "started_at": self.started_at, "finished_at": self.finished_at, "config": self.config,
                "entries": self.entries, "files": self.files}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_output() -> Path:
    from llmd.paths import state_dir

    d = state_dir() / "compare"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d / f"compare-{time.strftime('%Y%m%dT%H%M%S')}.json"


def run_compare(settings, runner, ui, profiles: list[str], perf_opts, *, output: Path,
                view=None) -> CompareReport:
    """`view`: how each profile's perf run shows itself (llmd.ops.perf.PerfView)."""
    from llmd.ops.endpoint import ServedModel, open_endpoint
    from llmd.ops.perf import run_perf
    from llmd.platform import select

    platform = select(settings)
    opts = perf_opts.validate()
    if opts.warmup == 0:
        opts = dataclasses.replace(opts, warmup=DEFAULT_WARMUP_S)
    report = CompareReport(platform.name, profiles, {**opts.to_dict(), "model": settings.served_model_name},
                           started_at=_now())
    stem = output.with_suffix("")
    for profile in profiles:
        ui.step(f"scheduler {profile}: applying")
        applied = platform.apply_scheduler(settings, runner, ui, profile)
        before = platform.pick_counts(settings)
        per_profile = dataclasses.replace(opts, output=f"{stem}.{profile}.perf.json", csv=None, benchmark_report=None)
        with open_endpoint(settings=settings, runner=runner, ui=ui) as endpoint:
            perf = run_perf(endpoint, per_profile.with_model(settings.served_model_name), ui,
                            served=ServedModel(settings.served_model_name, settings.max_model_len), view=view)
        after = platform.pick_counts(settings)
        stages = [stage_summary(s) for s in perf.stages]
        entry: dict[str, Any] = {"profile": profile, "applied": applied, "perf_report": per_profile.output,
                                 "complete": perf.complete, "stages": stages, **stages[-1]}
        if before is not None and after is not None:
            picks = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            total = sum(picks.values()) or 1
            entry["endpoint_share"] = {k: round(v / total, 4) for k, v in picks.items()}
        report.entries[profile] = entry
    base = report.entries[profiles[0]]
    for entry in report.entries.values():
        entry["ratio_to_baseline"] = ratios(entry, base)
    report.finished_at = _now()
    return report
