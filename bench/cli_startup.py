#!/usr/bin/env python3
"""Time whole `llmd` processes: `llmd --version`, `llmd render`, `llmd sim --help` (median of N runs).

Usage: .venv/bin/python bench/cli_startup.py [--runs 15]
Prints a table and writes bench/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def llmd_argv() -> list[str]:
    exe = shutil.which("llmd", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "llmd"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs(argv: list[str], runs: int, env: dict[str, str], *,
              check: bool = True) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per run. CPU time is the steadier number on a shared machine, where a CPU quota
    rounds wall times up to its scheduling period."""
    wall, cpu = [], []
    for _ in range(runs):
        started, cpu_before = time.perf_counter(), _children_cpu()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=check, timeout=60)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((_children_cpu() - cpu_before) * 1000)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    base = llmd_argv()
    # Measure what users get: with bytecode caching (some sandboxes set PYTHONDONTWRITEBYTECODE, which
    # recompiles every module on every start and hides the real cost).
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMD_") and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        env["LLMD_STATE_DIR"] = tmp
        cases = {
            "llmd --version": [*base, "--version"],
            "llmd render": [*base, "render", "--out", str(Path(tmp) / "out")],
            "llmd sim --help": [*base, "sim", "--help"],  # one command's parse: imports only that command
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
        }
        results = {}
        for name, argv in cases.items():
            time_runs(argv, 2, env)  # warm the page cache and .pyc files
            samples, cpu = time_runs(argv, args.runs, env)
            results[name] = {"median_ms": round(statistics.median(samples), 1), "min_ms": round(min(samples), 1),
                             "max_ms": round(max(samples), 1), "cpu_median_ms": round(statistics.median(cpu), 1),
                             "runs": args.runs}
    width = max(len(n) for n in results)
    print(f"{'command':<{width}}  median    min     max    cpu   (ms, {args.runs} runs)")
    for name, r in results.items():
        print(f"{name:<{width}}  {r['median_ms']:>6.1f} {r['min_ms']:>6.1f} {r['max_ms']:>7.1f} "
              f"{r['cpu_median_ms']:>6.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli_startup.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
