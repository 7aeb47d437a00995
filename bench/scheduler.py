#!/usr/bin/env python3
"""What the scheduler features cost: in-process validation of EPP configs (with positions), the effective config of
every profile, the render with its validation, and whole `llmd scheduler validate|show` processes (median of N).

Usage: .venv/bin/python bench/scheduler.py [--runs 15]
Prints a table and writes bench/results/scheduler.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_startup import llmd_argv, time_runs  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "epp"


def per_call_ms(fn, n: int) -> float:
    fn()  # warm caches (preset tables, registry)
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()

    from llmd.render import render_bundle
    from llmd.scheduler import effective_config, profile_names, validate_config
    from llmd.scheduler.validate import check_file
    from llmd.settings import load_settings

    files = sorted(str(p) for p in FIXTURES.glob("*.yaml"))
    default = load_settings({}, environ={})
    precise = load_settings({"scheduler": "precise-prefix", "no_hf_token": True}, environ={})
    rows = {
        "validate one fixture file (marks + every rule)": per_call_ms(lambda: [check_file(f) for f in files[:1]], 500),
        f"validate all {len(files)} fixture files": per_call_ms(lambda: [check_file(f) for f in files], 200),
        "effective config + validate, every profile": per_call_ms(
            lambda: [validate_config(effective_config(n, model="m/x")) for n in profile_names()], 200),
        "render_bundle default": per_call_ms(lambda: render_bundle(default), 50),
        "render_bundle precise-prefix": per_call_ms(lambda: render_bundle(precise), 50),
    }
    env = {**os.environ, "LLMD_STATE_DIR": tempfile.mkdtemp(prefix="llmd-bench-"), "NO_COLOR": "1"}
    env.pop("LLMD_CONFIG", None)
    exe = llmd_argv()
    procs = {
        "llmd scheduler validate (3 files)": [*exe, "scheduler", "validate", *files],
        "llmd scheduler show --profile default": [*exe, "scheduler", "show", "--profile", "default"],
    }
    out: dict[str, dict[str, float]] = {k: {"ms": round(v, 3)} for k, v in rows.items()}
    for name, argv in procs.items():
        wall, cpu = time_runs(argv, args.runs, env, check=False)  # validate exits 2 on the guide's bad configs
        out[name] = {"median_wall_ms": round(statistics.median(wall), 1),
                     "median_cpu_ms": round(statistics.median(cpu), 1)}
    width = max(map(len, out))
    for name, v in out.items():
        print(f"{name:<{width}}  " + "  ".join(f"{k} {val}" for k, val in v.items()))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "scheduler.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
