#!/usr/bin/env python3
"""How long the e2e control plane takes: start (etcd -> API server ready -> controllers), fake nodes Ready, CRDs
Established, stop (every process gone, every port closed). Needs `python3 e2e/build.py` and `make tools` first.

Usage: .venv/bin/python bench/e2e_cluster.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from cluster import DEFAULT_BIN, LocalCluster, cpu_node, gpu_node  # noqa: E402


def one_run(kubectl: str) -> dict[str, float]:
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="llmd-e2e-bench-") as work:
        c = LocalCluster(DEFAULT_BIN, Path(work))
        t0 = time.monotonic()
        try:
            c.start()
            times["start"] = time.monotonic() - t0
            t = time.monotonic()
            c.add_nodes(kubectl, [gpu_node("gpu-0"), gpu_node("gpu-1"), cpu_node("cpu-0")])
            times["nodes ready"] = time.monotonic() - t
            t = time.monotonic()
            c.install_crds(kubectl)
            times["crds"] = time.monotonic() - t
        finally:
            t = time.monotonic()
            c.stop()
            times["stop"] = time.monotonic() - t
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    kubectl = str(ROOT / ".tools" / "bin" / "kubectl")
    runs = [one_run(kubectl) for _ in range(args.runs)]
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:12s} median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
