#!/usr/bin/env python3
"""Cost of `llmd prereqs`' local work: the CRD pipeline on a release-sized bundle, and `install --dry-run`.

1. Read a --crd-dir holding a synthetic bundle as large as the upstream ones (Gateway API standard-install.yaml
   is ~0.6 MB, Prometheus Operator stripped-down CRDs ~1.5 MB): parse (libyaml vs pure Python), label, encode
   the server-side-apply body. Median of N runs.
2. Whole `llmd prereqs install --dry-run` processes (render + write the helmfile; no process, no socket), without
   and with an image mirror (the rewrite of the releases' image values).

Usage: .venv/bin/python bench/prereqs.py [--runs 9] [--mb 2]
Prints a table and writes bench/results/prereqs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmd.ops.prereqs import crds as C  # noqa: E402
from llmd.ops.prereqs.catalog import catalog  # noqa: E402


def schema(depth: int, width: int) -> dict:
    """An openAPIV3Schema shaped like controller-gen output: nested objects with described properties."""
    if depth == 0:
        return {"type": "string", "description": "A field. " * 12, "maxLength": 253}
    return {"type": "object", "description": "An object. " * 8,
            "properties": {f"field{i}": schema(depth - 1, width) for i in range(width)}}


def bundle(target_mb: float) -> list[dict]:
    docs, size, n = [], 0, 0
    while size < target_mb * 1e6:
        plural = f"things{n}"
        doc = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": f"{plural}.gateway.networking.k8s.io",
                            "annotations": {"gateway.networking.k8s.io/bundle-version": "v1.5.1"}},
               "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                        "names": {"plural": plural, "kind": f"Thing{n}"},
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": schema(4, 5)}}]}}
        docs.append(doc)
        size += len(yaml.safe_dump(doc))
        n += 1
    return docs


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--mb", type=float, default=2.0)
    args = ap.parse_args()
    cat = catalog()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "crds"
        d.mkdir()
        docs = bundle(args.mb)
        (d / "standard-install.yaml").write_text(yaml.safe_dump_all(docs))
        mb = (d / "standard-install.yaml").stat().st_size / 1e6
        text = (d / "standard-install.yaml").read_text()
        results["parse, libyaml (ms)"] = median_ms(lambda: list(yaml.load_all(text, Loader=yaml.CSafeLoader)),
                                                   args.runs)
        results["parse, pure Python (ms)"] = median_ms(lambda: list(yaml.load_all(text, Loader=yaml.SafeLoader)),
                                                       max(3, args.runs // 3))
        results["--crd-dir read + label + SSA body (ms)"] = median_ms(
            lambda: json.dumps({"items": C.prepared(src := C.from_dirs([d], cat)["gateway-api"], src.names)}),
            args.runs)
        exe = shutil.which("llmd", path=str(Path(sys.executable).parent)) or "llmd"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMD_") and k != "PYTHONDONTWRITEBYTECODE"}
        env["LLMD_STATE_DIR"] = tmp
        argv = [exe, "prereqs", "install", "--dry-run", "--context", "bench", "--lws", "--crd-dir", str(d)]
        results["llmd prereqs install --dry-run, process (ms)"] = median_ms(
            lambda: subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                                   timeout=60), args.runs)
        mirrored = [*argv, "--image-mirror", "docker.io=registry.corp/docker,registry.k8s.io=registry.corp/k8s"]
        results["... with --image-mirror (2 rules), process (ms)"] = median_ms(
            lambda: subprocess.run(mirrored, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=True, timeout=60), args.runs)
    print(f"CRD bundle: {len(docs)} CRDs, {mb:.2f} MB")
    for k, v in results.items():
        print(f"  {k:48s} {v:8.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prereqs.json").write_text(json.dumps({"bundle_mb": round(mb, 2), "crds": len(docs),
                                                  **{k: round(v, 1) for k, v in results.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
