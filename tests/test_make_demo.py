"""`make demo`, the README's first command, as a user runs it: the Makefile recipe itself against the real local
platform (sim replicas and the scheduling gateway on 127.0.0.1), then nothing left running. About 13 s, and it
must stay under two minutes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUDGET_S = 120  # the issue: under two minutes on this 2-core machine, the environment existing (measured ~13 s)
pytestmark = pytest.mark.skipif(shutil.which("make") is None or not Path("/proc/self/environ").exists(),
                                reason="needs make and /proc")


def _processes_of(state: Path) -> list[str]:
    """Every live process started with this LLMD_STATE_DIR (replicas, gateway, llmd itself), by its environment."""
    mark = f"LLMD_STATE_DIR={state}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0"):
                found.append((environ.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def test_make_demo_deploys_tests_reports_and_cleans_up(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "llmd").exists():
        pytest.skip(f"no llmd console script in {venv}/bin (run from the project's venv: `make test`)")
    demo, state = tmp_path / "demo", tmp_path / "state"
    env = {**os.environ, "LLMD_STATE_DIR": str(state), "NO_COLOR": "1"}
    probe = subprocess.Popen(["sleep", "30"], env=env)  # the leftover check below sees a process of this dir
    try:
        seen = _processes_of(state)
        assert len(seen) == 1 and seen[0].startswith("sleep"), seen
    finally:
        probe.kill()
        probe.wait(timeout=5)
    # VENV: this interpreter's venv; -o: never (re)build it from here, whatever its stamp says
    argv = ["make", "--no-print-directory", "-C", str(ROOT), "demo", f"VENV={venv}", f"DEMO_DIR={demo}",
            "-o", f"{venv}/.installed-stamp"]
    start = time.monotonic()
    # the timeout only stops a hung run; the bound (under two minutes on the 2-core machine) is asserted
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=240, env=env)
    elapsed = time.monotonic() - start
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert elapsed < DEMO_BUDGET_S, f"make demo took {elapsed:.1f} s, over the {DEMO_BUDGET_S} s budget\n{out[-3000:]}"

    # status showed every replica and the gateway ready, the smoke test passed once, then where the files went
    assert "healthy: the stack can serve" in out, out[-3000:]
    assert all(f"replica-{i} http://127.0.0.1:" in out for i in range(8)) and "scheduler default) │ 1/1 ready" in out
    assert out.count("smoke test passed: meta-llama/Llama-3.1-8B-Instruct at local gateway") == 1, out[-3000:]
    assert f"report: {demo}/perf.json  chart: {demo}/perf.png" in out.splitlines()

    report = json.loads((demo / "perf.json").read_text())
    assert report["complete"] is True
    # the local platform's shared-prefix defaults (the Makefile gives no sizing flags): 6x one replica's cache
    assert (report["config"]["groups"], report["config"]["system_prompt_len"]) == (48, 1024)
    (stage,) = report["stages"]
    assert stage["requests"]["measured"] == 192 and stage["requests"]["failed"] == 0
    # the shared-prefix load on 8 replicas behind the default profile: prefix affinity is visible
    assert stage["tokens"]["cached"]["hit_rate"] > 0.5, stage["tokens"]
    assert (demo / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "next:" in out and "make compare" in out  # printed after the cleanup, on success only
    # cleanup ran: nothing started for this state dir is still running
    assert _processes_of(state) == []
