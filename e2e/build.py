#!/usr/bin/env python3
"""Build the e2e control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) from the
pinned Go modules in e2e/go/*, into a cache directory (default .e2e/bin), rebuilt only when the lock changes.

The lock is every e2e/go/*/go.mod + go.sum plus the build recipe below; its sha256 is written next to the
binaries. `go build -mod=readonly` refuses a module whose hash is not in go.sum, and `go mod verify` checks the
module cache against it before every (re)build. GOMODCACHE and GOCACHE stay at Go's defaults (outside the repo),
so a fresh clone on the same machine rebuilds from the warm caches.

A dev tool outside src/ (like tools/install_tools.py): it calls subprocess directly, argv lists with timeouts.
Usage: python3 e2e/build.py [--dest DIR] [--check] [--jobs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GO_DIR = ROOT / "go"
KUBE_VERSION = "v1.34.4"
_V = "k8s.io/component-base/version"
# The version ldflags make /version report v1.34.4 (helm reads it for chart kubeVersion checks) instead of
# v0.0.0-master; -s -w drop symbol tables (smaller binaries, faster link).
KUBE_LDFLAGS = (f"-s -w -X {_V}.gitVersion={KUBE_VERSION} -X {_V}.gitMajor=1 -X {_V}.gitMinor=34 "
                f"-X {_V}.gitTreeState=clean")

# module dir -> (packages, ldflags, binary names). Part of the lock: changing it rebuilds.
RECIPE: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "etcd": (("go.etcd.io/etcd/server/v3",), "-s -w", ("etcd",)),
    "kubernetes": (("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "k8s.io/kubernetes/cmd/kube-scheduler"), KUBE_LDFLAGS,
                   ("kube-apiserver", "kube-controller-manager", "kube-scheduler")),
    "kwok": (("sigs.k8s.io/kwok/cmd/kwok",), "-s -w", ("kwok",)),
}
# go build names a /vN module's binary after the element before it: the etcd server builds as "server".
OUTPUT_NAMES = {"go.etcd.io/etcd/server/v3": ("server", "etcd")}
BINARIES = tuple(b for _, _, names in RECIPE.values() for b in names)
STAMP = ".lock-sha256"
TIMEOUT_S = 3600  # one cold build of kube-apiserver on two shared cores is ~15-25 minutes


def lock_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(GO_DIR.glob("*/go.[ms][ou][dm]")):
        h.update(str(path.relative_to(GO_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(json.dumps(RECIPE, sort_keys=True).encode())
    return h.hexdigest()


def up_to_date(dest: Path, digest: str) -> bool:
    stamp = dest / STAMP
    return (stamp.is_file() and stamp.read_text().strip() == digest
            and all(os.access(dest / b, os.X_OK) for b in BINARIES))


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"  # static binaries; no C toolchain needed
    env.setdefault("GOFLAGS", "")
    env["GOFLAGS"] = (env["GOFLAGS"] + " -mod=readonly").strip()
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("+", " ".join(argv), f"(in {cwd.relative_to(ROOT.parent)})", flush=True)
    subprocess.run(argv, cwd=cwd, env=env, check=True, timeout=TIMEOUT_S)


def build(dest: Path, jobs: int) -> None:
    go = shutil.which("go")
    if go is None:
        sys.exit("e2e/build.py: `go` is not on PATH; `make e2e` needs Go >= 1.24 (make test does not)")
    env = go_env()
    tmp = dest / ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    for module, (packages, ldflags, _names) in RECIPE.items():
        cwd = GO_DIR / module
        run([go, "mod", "verify"], cwd, env)
        started = time.monotonic()
        run([*nice, go, "build", "-p", str(jobs), "-trimpath", "-ldflags", ldflags, "-o", str(tmp) + os.sep,
             *packages], cwd, env)
        print(f"  {module}: {time.monotonic() - started:.0f}s", flush=True)
        for pkg, (built, want) in OUTPUT_NAMES.items():
            if pkg in packages:
                (tmp / built).rename(tmp / want)
    for name in BINARIES:
        os.replace(tmp / name, dest / name)
    tmp.rmdir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=ROOT.parent / ".e2e" / "bin")
    ap.add_argument("--check", action="store_true", help="exit 1 when a rebuild is needed; build nothing")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("E2E_GO_JOBS", "2")),
                    help="go build -p (default 2, or E2E_GO_JOBS): the machine is shared")
    args = ap.parse_args()
    dest = args.dest.resolve()
    digest = lock_digest()
    if up_to_date(dest, digest):
        print(f"e2e binaries up to date in {dest} (lock {digest[:12]})")
        return 0
    if args.check:
        print(f"e2e binaries in {dest} need a rebuild (lock {digest[:12]})")
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    (dest / STAMP).unlink(missing_ok=True)
    started = time.monotonic()
    build(dest, args.jobs)
    (dest / STAMP).write_text(digest + "\n")
    print(f"e2e binaries built in {time.monotonic() - started:.0f}s into {dest} (lock {digest[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
