"""Shared test isolation: no user environment leaks in, no real cluster is ever reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()
UPSTREAM = SHARED / "upstream"
TOOLS_BIN = Path(os.environ.get("LLMD_TEST_TOOLS", REPO / ".tools" / "bin"))

CLEARED = ("HF_TOKEN", "NAMESPACE", "RELEASE_NAME_POSTFIX", "KUBECONFIG")
REAL_POPEN = subprocess.Popen  # captured before pytest-subprocess swaps in its FakePopen


@pytest.fixture(autouse=True)
def isolation(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("LLMD_") or key in CLEARED:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("LLMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    from llmd import proc, redact

    redact.clear()
    proc.last_signal = None
    _guard_fake_process_groups(monkeypatch, proc)
    yield
    redact.clear()
    with proc._live_lock:  # never leave a fake in the registry that atexit reaps with os.killpg
        for pid in [pid for pid, p in proc._live.items() if not isinstance(p, REAL_POPEN)]:
            del proc._live[pid]


def _guard_fake_process_groups(monkeypatch, proc) -> None:
    """pytest-subprocess fakes carry tiny fake pids (1, 2, ...): os.killpg on one would signal a REAL
    process group (tests may run as root). Fakes receive the signal through send_signal instead."""
    real = proc._signal_group

    def guarded(p, sig):
        if isinstance(p, REAL_POPEN):
            real(p, sig)
        else:
            p.send_signal(sig)

    monkeypatch.setattr(proc, "_signal_group", guarded)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run `llmd ...` in-process through the real error boundary (llmd.cli.main)."""
    from llmd.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture
def upstream() -> Path:
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream reference data not found at {UPSTREAM} (../shared is absent)")
    return UPSTREAM


@pytest.fixture
def real_tools() -> Path:
    """Directory holding real helm/helmfile/kubectl from `make tools`; skip when absent."""
    needed = ("helm", "helmfile", "kubectl")
    if not all((TOOLS_BIN / n).exists() for n in needed):
        pytest.skip(f"real tool binaries not installed in {TOOLS_BIN} (run `make tools`)")
    return TOOLS_BIN


@pytest.fixture
def fake_tools_on_path(tmp_path, monkeypatch):
    """Put empty executables named kubectl/helm/helmfile on PATH so `which` succeeds; fp fakes Popen."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    for name in ("kubectl", "helm", "helmfile"):
        p = bindir / name
        p.write_text("#!/bin/sh\necho 'fake binary called outside pytest-subprocess' >&2\nexit 99\n")
        p.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bindir


PYTHON = sys.executable


def write_kubeconfig(path: Path, server: str, *, current: bool = True) -> Path:
    """A one-context kubeconfig (deadctx) for `server`; without `current`, no current-context is set."""
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {{server: "{server}"}}
contexts:
- name: deadctx
  context: {{cluster: dead, user: u}}
{"current-context: deadctx" if current else ""}
users:
- name: u
  user: {{token: not-a-secret}}
""")
    path.chmod(0o600)
    return path


@pytest.fixture
def silent_cluster(tmp_path, real_tools, monkeypatch):
    """An API server on 127.0.0.1 that accepts connections and never answers (a blackholed load balancer);
    real tools first on PATH. Returns (kubeconfig path, server URL). Stops by itself with the test."""
    import socket
    import threading

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    lsock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
                held.append(conn)  # never read, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    server = f"https://127.0.0.1:{lsock.getsockname()[1]}"
    monkeypatch.setenv("PATH", f"{real_tools}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path))  # kubectl's discovery cache stays in the test
    yield write_kubeconfig(tmp_path / "kubeconfig", server), server
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    lsock.close()


@pytest.fixture
def dead_cluster(tmp_path, real_tools, monkeypatch):
    """A kubeconfig whose API server is a 127.0.0.1 port nothing listens on; real tools first on PATH.
    Returns (kubeconfig path, server URL)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {{server: "https://127.0.0.1:{port}"}}
contexts:
- name: deadctx
  context: {{cluster: dead, user: u}}
current-context: deadctx
users:
- name: u
  user: {{token: not-a-secret}}
""")
    kc.chmod(0o600)
    monkeypatch.setenv("PATH", f"{real_tools}:/usr/bin:/bin")
    return kc, f"https://127.0.0.1:{port}"
