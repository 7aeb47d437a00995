"""PerfReport: per-stage summaries, breaches, JSON (versioned schema) and CSV of the per-request records."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llmd.loadgen.engine import StageRun
from llmd.loadgen.metrics import METRICS, meets_slo, summarize
from llmd.redact import redact
from llmd.sse import FAILURE_CLASSES

SCHEMA = "llmd.perf/v1"
CLIENT_BOUND_CPU = 0.85  # busy share of one core above which the client, not the server, is the suspect
CLIENT_BOUND_LAG_MS = 10.0  # event-loop lag p99 above which timestamps are late (when the client is also busy)
CLIENT_BUSY_CPU = 0.5
CSV_FIELDS = ("id", "stage", "worker", "index", "warmup", "ok", "failure", "status", "scheduled_s", "queue_ms",
              "ttft_ms", "tpot_ms", "e2e_ms", "itl_max_ms", "input_tokens", "output_tokens", "token_source",
              "cached_tokens", "content_events", "finish_reason", "group", "retry_after", "error")


def summarize_stage(runs: list[StageRun], slo: dict[str, float], max_error_rate: float, stage=None) -> dict:
    """One stage (possibly from several worker processes, each with a share of `stage`) -> summary with breaches."""
    stage = stage or runs[0].stage
    records = [r for run in runs for r in run.records]
    measured = [r for r in records if not r["warmup"]]
    ok = [r for r in measured if r["ok"]]
    failed = [r for r in measured if not r["ok"]]
    failures = {c: 0 for c in FAILURE_CLASSES}
    for r in failed:
        failures[r["failure"] if r["failure"] in failures else "malformed_stream"] += 1
    window_start = min((r["sent_ns"] for r in measured if r["sent_ns"]), default=0)
    window_end = max((r["end_ns"] for r in measured if r["end_ns"]), default=0)
    window_s = max((window_end - window_start) / 1e9, 1e-9) if measured else 0.0
    out_tok = sum(r["output_tokens"] for r in ok)
    in_tok = sum(r["input_tokens"] for r in ok)
    error_rate = len(failed) / len(measured) if measured else 0.0
    wall_s = max((max(run.end_ns for run in runs) - min(run.start_ns for run in runs)) / 1e9, 1e-9)
    cpu_s = sum(run.cpu_s for run in runs)
    lags = sorted(x for run in runs for x in run.loop_lag_ms)
    cpu_share = max(run.cpu_s / max((run.end_ns - run.start_ns) / 1e9, 1e-9) for run in runs)
    lag_p99 = summarize(lags)["p99"] or 0.0
    summary: dict = {
        "name": stage.name, "label": stage.label(), "mode": stage.mode, "concurrency": stage.concurrency,
        "rate": stage.rate, "arrival": stage.arrival if stage.mode == "open" else None,
        "complete": not any(run.interrupted for run in runs),
        "requests": {"measured": len(measured), "ok": len(ok), "failed": len(failed),
                     "warmup_excluded": len(records) - len(measured), "cancelled": sum(run.cancelled for run in runs)},
        "failures": {k: v for k, v in failures.items() if v},
        "error_rate": round(error_rate, 6),
        "shed_429": sum(1 for r in failed if r["status"] == 429),
        "window_s": round(window_s, 4),
        "throughput": {
            "request_rate": round(len(ok) / window_s, 3) if window_s else 0.0,
            "output_token_rate": round(out_tok / window_s, 2) if window_s else 0.0,
            "total_token_rate": round((in_tok + out_tok) / window_s, 2) if window_s else 0.0,
        },
        "ttft_ms": summarize([r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]),
        "queue_ms": summarize([r["queue_ms"] for r in measured if r["queue_ms"] is not None]),
        "itl_ms": summarize([x for run in runs for x in run.itl_ms]),
        "tpot_ms": summarize([r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]),
        "e2e_ms": summarize([r["e2e_ms"] for r in ok if r["e2e_ms"] is not None]),
        "tokens": {"input": in_tok, "output": out_tok,
                   "output_source": _source(ok), "cached": _cached(ok)},
        "client": {"workers": len(runs), "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3),
                   "cpu_per_core_max": round(cpu_share, 3), "loop_lag_p99_ms": lag_p99,
                   "connections": sum(run.client_connections for run in runs)},
        "breaches": [],
    }
    bound = cpu_share >= CLIENT_BOUND_CPU or (lag_p99 >= CLIENT_BOUND_LAG_MS and cpu_share >= CLIENT_BUSY_CPU)
    summary["client"]["client_bound"] = bound
    if measured and error_rate > max_error_rate:
        summary["breaches"].append(f"{stage.label()}: error rate {error_rate:.2%} > --max-error-rate "
                                   f"{max_error_rate:.2%} ({_top(summary['failures'])})")
    if slo:
        good = [r for r in ok if meets_slo(r, slo)]
        attainment = len(good) / len(measured) if measured else 0.0
        summary["slo"] = {"limits_ms": {k: v for k, v in slo.items() if k != "attainment"},
                          "attainment_target": slo["attainment"], "attainment": round(attainment, 4),
                          "goodput": round(len(good) / window_s, 3) if window_s else 0.0}
        if measured and attainment < slo["attainment"]:
            summary["breaches"].append(f"{stage.label()}: SLO attainment {attainment:.1%} < target "
                                       f"{slo['attainment']:.0%} ({_slo_text(slo)})")
    return summary


def _source(ok: list[dict]) -> str:
    srcs = {r["token_source"] for r in ok}
    return srcs.pop() if len(srcs) == 1 else ("mixed" if srcs else "none")


def _cached(ok: list[dict]) -> dict | None:
    hits = [r["cached_tokens"] for r in ok if r["cached_tokens"] is not None]
    if not hits:
        return None
    prompt = sum(r["input_tokens"] for r in ok if r["cached_tokens"] is not None)
    return {"reported_by": len(hits), "cached_tokens": sum(hits),
            "hit_rate": round(sum(hits) / prompt, 4) if prompt else None}


def _top(failures: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(failures.items(), key=lambda kv: -kv[1])) or "none"


def _slo_text(slo: dict) -> str:
    return ", ".join(f"{k}<={v:g}ms" for k, v in slo.items() if k != "attainment")


@dataclass
class PerfReport:
    config: dict
    environment: dict
    stages: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    complete: bool = True
    started_at: str = ""
    finished_at: str = ""
    warnings: list[str] = field(default_factory=list)
    files: dict = field(default_factory=dict)
    write_errors: list[str] = field(default_factory=list)  # files that could not be written (not in the JSON)

    @property
    def breaches(self) -> list[str]:
        return [b for s in self.stages for b in s["breaches"]]

    def to_dict(self, *, records: bool = True) -> dict:
        doc = {
            "schema": SCHEMA, "complete": self.complete, "started_at": self.started_at,
            "finished_at": self.finished_at, "config": self.config, "environment": self.environment,
            "metric_definitions": METRICS, "stages": self.stages, "breaches": self.breaches,
            "warnings": self.warnings,
        }
        if records:
            doc["records"] = [_public(r) for r in self.records]
        else:
            doc["files"] = self.files
            if self.write_errors:
                doc["write_errors"] = self.write_errors
        return doc

    def write_json(self, path: str) -> Path:
        return _atomic_write(path, redact(json.dumps(self.to_dict(), indent=1, default=str)) + "\n")

    def write_csv(self, path: str) -> Path:
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in self.records:
            w.writerow(r)
        return _atomic_write(path, redact(buf.getvalue()))


def _public(rec: dict) -> dict:
    """Record without the raw monotonic clock values (meaningless outside this machine)."""
    return {k: v for k, v in rec.items() if k not in ("sent_ns", "end_ns")}


def _atomic_write(path: str, text: str) -> Path:
    """Write via a private temp file in the same directory then rename, so a report is never half written."""
    target = Path(path).expanduser()
    if target.exists() and (target.is_symlink() or not target.is_file()):
        # /dev/null, a FIFO, /dev/stdout or a link: write through it. A rename would replace the device
        # node or the link itself with a regular file (seen: `--output /dev/null` replaced /dev/null).
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        return target
    fd, tmp = tempfile.mkstemp(prefix=".llmd-perf-", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
