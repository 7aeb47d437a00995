#!/usr/bin/env python3
"""What `llmd scheduler apply --platform local` costs: in-process applies that swap the running gateway's scheduler
(random <-> default), applies of the config already running (`unchanged`: no PUT), `--dry-run` diffs, and whole
`llmd scheduler apply` processes (median of N). Deploys a 2-replica local stack in a temporary state dir first and
cleans it up at the end.

Usage: .venv/bin/python bench/local_scheduler_apply.py [--runs 15]
Prints a table and writes bench/results/local_scheduler_apply.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_startup import llmd_argv, time_runs  # noqa: E402


class QuietUI:
    def step(self, *_: object) -> None:
        pass


def median_ms(fn, runs: int) -> float:
    times = []
    for i in range(runs):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    base = llmd_argv()
    local = ["--platform", "local", "--replicas", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLMD_STATE_DIR"] = tmp
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([*base, "deploy", *local, "-q"], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            from llmd.platform.local import LocalPlatform
            from llmd.settings import load_settings

            platform, ui = LocalPlatform(), QuietUI()
            settings = {p: load_settings({"platform": "local", "replicas": 2, "scheduler": p}, environ={})
                        for p in ("random", "default")}

            def apply(profile: str, *, dry_run: bool = False, want: str) -> None:
                got = platform.apply_scheduler(settings[profile], None, ui, profile, dry_run=dry_run)["status"]
                assert got == want, (profile, got, want)

            swap = ("random", "default")  # the deploy runs default: the first swap is to random
            rows = {"apply, scheduler swapped (in-process)": median_ms(
                lambda i: apply(swap[i % 2], want="applied"), args.runs)}
            platform.apply_scheduler(settings["default"], None, ui, "default")  # untimed: default runs
            rows["apply, same config: unchanged (in-process)"] = median_ms(
                lambda i: apply("default", want="unchanged"), args.runs)
            rows["apply --dry-run (in-process)"] = median_ms(
                lambda i: apply("random", dry_run=True, want="planned"), args.runs)

            def process(profile: str) -> float:
                wall, _ = time_runs([*base, "scheduler", "apply", *local, "--scheduler", profile], 1, env)
                return wall[0]

            rows["`llmd scheduler apply` process, swapped"] = statistics.median(
                process(swap[i % 2]) for i in range(args.runs))
            platform.apply_scheduler(settings["default"], None, ui, "default")
            rows["`llmd scheduler apply` process, unchanged"] = statistics.median(
                process("default") for _ in range(args.runs))
        finally:
            subprocess.run([*base, "cleanup", *local, "--force", "-q"], env=env, check=False, timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    width = max(map(len, rows))
    for label, ms in rows.items():
        print(f"{label:<{width}}  {ms:8.1f} ms")
    out = ROOT / "bench" / "results" / "local_scheduler_apply.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": args.runs, "median_ms": {k: round(v, 2) for k, v in rows.items()}}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
