"""Export a PerfReport as llm-d Benchmark Report v0.2 documents (one per stage), for llm-d-benchmark tooling.

Field names, units and enums follow the published v0.2 schema (version "0.2"; run / scenario.load / results.
request_performance.aggregate with requests, latency and throughput; Statistics need `units` and `mean`; units
"ms", "count", "ms/token", "tokens/s", "queries/s"). Absent values are omitted, as the schema's dump does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from llmd import __version__
from llmd.loadgen.metrics import summarize
from llmd.loadgen.report import PerfReport, _atomic_write
from llmd.redact import redact

VERSION = "0.2"
_DIST = {"fixed": "fixed", "normal": "gaussian", "uniform": "random", "lognormal": "other"}


def _stats(summary: dict, units: str) -> dict | None:
    if not summary or summary.get("count", 0) == 0 or summary.get("mean") is None:
        return None
    out = {"units": units, "mean": summary["mean"]}
    for key in ("min", "p50", "p90", "p95", "p99", "max"):
        if summary.get(key) is not None:
            out[key] = summary[key]
    return out


def _rate(value: float, units: str) -> dict:
    return {"units": units, "mean": value}


def _seq_len(mean: int, dist: str, spread: float) -> dict:
    kind = _DIST.get(dist, "other")
    out: dict = {"distribution": kind, "value": max(1, int(mean))}
    if kind == "gaussian":
        out["std_dev"] = round(mean * spread, 3)
    elif kind == "random":
        out["min"] = max(1, round(mean * (1 - spread)))
        out["max"] = max(1, round(mean * (1 + spread)))
    return out


def _load(report: PerfReport, stage: dict, index: int) -> dict:
    cfg = report.config
    std: dict = {"tool": "llmd", "tool_version": __version__,
                 "source": "sampled" if cfg.get("workload") == "file" else "random", "stage": index}
    if cfg.get("workload") == "shared-prefix":
        std["input_seq_len"] = _seq_len(cfg["system_prompt_len"] + cfg["question_len"], "fixed", 0)
        std["prefix"] = {"prefix_len": _seq_len(cfg["system_prompt_len"], "fixed", 0), "num_groups": cfg["groups"],
                         "num_users_per_group": cfg["prompts_per_group"], "num_prefixes": 1}
    else:
        std["input_seq_len"] = _seq_len(cfg.get("input_tokens") or 1, cfg.get("dist", "fixed"),
                                        cfg.get("dist_spread", 0.0))
    if cfg.get("output_tokens") or cfg.get("workload") != "file":
        std["output_seq_len"] = _seq_len(cfg.get("output_tokens") or 128, cfg.get("dist", "fixed"),
                                         cfg.get("dist_spread", 0.0))
    if stage["mode"] == "open":
        std["rate_qps"] = stage["rate"]
    else:
        std["concurrency"] = stage["concurrency"]
    return {"metadata": {"schema_version": "0.0.1", "description": f"llmd perf {cfg.get('workload')} "
                                                                   f"{stage['label']}"},
            "standardized": std, "native": {"args": {k: v for k, v in cfg.items() if v is not None}}}


def stage_document(report: PerfReport, stage: dict, index: int) -> dict:
    recs = [r for r in report.records if r["stage"] == stage["name"] and not r["warmup"]]
    ok = [r for r in recs if r["ok"]]
    requests: dict = {"total": stage["requests"]["measured"], "failures": stage["requests"]["failed"],
                      "incomplete": stage["requests"]["cancelled"]}
    for key, field in (("input_length", "input_tokens"), ("output_length", "output_tokens")):
        st = _stats(summarize([float(r[field]) for r in ok]), "count")
        if st:
            requests[key] = st
    latency = {k: v for k, v in {
        "time_to_first_token": _stats(stage["ttft_ms"], "ms"),
        "time_per_output_token": _stats(stage["tpot_ms"], "ms/token"),
        "inter_token_latency": _stats(stage["itl_ms"], "ms/token"),
        "request_latency": _stats(stage["e2e_ms"], "ms"),
    }.items() if v}
    th = stage["throughput"]
    window = stage["window_s"] or 0.0
    in_rate = round(stage["tokens"]["input"] / window, 2) if window else 0.0
    throughput = {"input_token_rate": _rate(in_rate, "tokens/s"),
                  "output_token_rate": _rate(th["output_token_rate"], "tokens/s"),
                  "total_token_rate": _rate(th["total_token_rate"], "tokens/s"),
                  "request_rate": _rate(th["request_rate"], "queries/s")}
    run_id = report.environment.get("run_id", "run")
    return {
        "version": VERSION,
        "run": {"uid": f"{run_id}-{stage['name']}", "eid": run_id,
                "time": _time(report.started_at, report.finished_at)},
        "scenario": {"load": _load(report, stage, index)},
        "results": {"request_performance": {"aggregate": {"requests": requests, "latency": latency,
                                                          "throughput": throughput}}},
    }


def _time(start: str, end: str) -> dict:
    out = {"start": start, "end": end}
    try:
        secs = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        out["duration"] = f"PT{secs:g}S"
    except ValueError:
        pass
    return {k: v for k, v in out.items() if v}


def write_benchmark_reports(report: PerfReport, path: str) -> list[Path]:
    """One JSON document per stage: PATH for a single stage, else PATH with `-<stage>` before the suffix."""
    import json

    target = Path(path).expanduser()
    out = []
    for i, stage in enumerate(report.stages):
        p = target if len(report.stages) == 1 else target.with_name(f"{target.stem}-{stage['name']}{target.suffix}")
        out.append(_atomic_write(str(p), redact(json.dumps(stage_document(report, stage, i), indent=1)) + "\n"))
    return out
