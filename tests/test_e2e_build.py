"""e2e/build.py's cache: it builds into --dest at first, is up to date once the lock stamp matches (go is not even
called), and is stale again when a go.mod/go.sum changes or a binary is missing. No Go needed: a fake `go` on PATH
records each call and writes dummy binaries where `go build -o` asks; the script runs as a process on a copy of
e2e/ (so a lock edit never touches the repo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

FAKE_GO = f"""#!{sys.executable}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_GO_LOG"], "a") as fh:
    fh.write(json.dumps({{"args": args, "cwd": os.getcwd(), "GOFLAGS": os.environ.get("GOFLAGS"),
                         "CGO_ENABLED": os.environ.get("CGO_ENABLED")}}) + "\\n")
if args[:1] == ["build"]:
    out = Path(args[args.index("-o") + 1])
    for pkg in [a for a in args if "/" in a and not a.startswith(("-", str(out)))]:
        parts = pkg.split("/")
        name = parts[-2] if parts[-1].startswith("v") and parts[-1][1:].isdigit() else parts[-1]
        (out / name).write_text("#!/bin/sh\\n")
        (out / name).chmod(0o755)
"""


@pytest.fixture
def e2e(tmp_path):
    """A copy of e2e/ (build.py and the go.mod/go.sum locks), a fake go first on PATH, and a run helper."""
    root = tmp_path / "repo" / "e2e"
    root.mkdir(parents=True)
    shutil.copy2(REPO / "e2e" / "build.py", root / "build.py")
    for lock in (REPO / "e2e" / "go").glob("*/go.[ms][ou][dm]"):
        dst = root / "go" / lock.parent.name / lock.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lock, dst)
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "go").write_text(FAKE_GO)
    (fakebin / "go").chmod(0o755)
    log = tmp_path / "go-calls.jsonl"
    dest = tmp_path / "cache" / "bin"
    env = {**os.environ, "PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}", "FAKE_GO_LOG": str(log)}
    env.pop("GOFLAGS", None)

    def run(*args: str) -> tuple[int, str, list[dict]]:
        before = len(log.read_text().splitlines()) if log.exists() else 0
        p = subprocess.run([sys.executable, str(root / "build.py"), "--dest", str(dest), *args], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        calls = [json.loads(line) for line in (log.read_text().splitlines() if log.exists() else [])[before:]]
        return p.returncode, p.stdout + p.stderr, calls

    run.root = root  # type: ignore[attr-defined]
    run.dest = dest  # type: ignore[attr-defined]
    return run


def test_builds_once_then_up_to_date_then_stale_after_a_lock_edit(e2e):
    dest: Path = e2e.dest
    code, out, calls = e2e("--check")
    assert code == 1 and "need a rebuild" in out and calls == [], out

    # ---- first run: every module verified against go.sum, then built read-only, static
    code, out, calls = e2e()
    assert code == 0, out
    modules = ("etcd", "kubernetes", "kwok")
    assert [(Path(c["cwd"]).name, c["args"][:2]) for c in calls] == \
        [(m, a) for m in modules for a in (["mod", "verify"], ["build", "-p"])]
    assert all(c["GOFLAGS"] == "-mod=readonly" and c["CGO_ENABLED"] == "0" for c in calls)
    assert sorted(p.name for p in dest.iterdir()) == sorted((*BINARIES, ".lock-sha256")), "stray or partial files"
    assert all(os.access(dest / b, os.X_OK) for b in BINARIES)
    stamp = (dest / ".lock-sha256").read_text().strip()
    assert stamp[:12] in out and "built" in out

    # ---- second run: the stamp matches, go is not called
    code, out, calls = e2e()
    assert code == 0 and "up to date" in out and calls == [], out
    assert e2e("--check")[0] == 0

    # ---- a go.sum edit (a re-pinned module) makes it stale: --check says so, a run rebuilds with a new stamp
    gosum = e2e.root / "go" / "kwok" / "go.sum"
    gosum.write_text(gosum.read_text() + "example.com/extra v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    code, out, calls = e2e("--check")
    assert code == 1 and calls == [], out
    code, out, calls = e2e()
    assert code == 0 and len(calls) == 6, out
    new_stamp = (dest / ".lock-sha256").read_text().strip()
    assert new_stamp != stamp
    assert e2e()[2] == []


def test_a_go_mod_edit_or_a_missing_binary_rebuilds(e2e):
    assert e2e()[0] == 0
    (e2e.dest / "kube-scheduler").unlink()
    code, out, calls = e2e()
    assert code == 0 and calls, f"a missing binary did not trigger a rebuild: {out}"
    assert (e2e.dest / "kube-scheduler").exists()

    gomod = e2e.root / "go" / "kubernetes" / "go.mod"
    gomod.write_text(gomod.read_text().replace("k8s.io/kubernetes v1.34.4", "k8s.io/kubernetes v1.34.5", 1))
    assert "k8s.io/kubernetes v1.34.5" in gomod.read_text()
    assert e2e("--check")[0] == 1


def test_a_failed_go_build_leaves_no_stamp(e2e, tmp_path):
    """A build that fails half-way must not be taken for a cache hit next time."""
    fake = tmp_path / "fakebin" / "go"
    fake.write_text(FAKE_GO + "if args[:1] == ['build'] and 'kwok' in os.getcwd():\n    sys.exit(2)\n")
    code, out, _ = e2e()
    assert code != 0 and "(in e2e/go/kwok)" in out, out
    assert not (e2e.dest / ".lock-sha256").exists()
    assert e2e("--check")[0] == 1
