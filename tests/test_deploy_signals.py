"""F52 with real child processes: Ctrl-C while helmfile runs stops its whole process group, names the release
that may be pending and exits 130. The fake binaries are small shell scripts on PATH answering what llmd asks."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

CRDS = {"kind": "List", "items": [
    {"kind": "CustomResourceDefinition", "metadata": {"name": n},
     "spec": {"versions": [{"name": "v1", "served": True}]},
     "status": {"conditions": [{"type": "Established", "status": "True"}]}}
    for n in ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
              "inferencepools.inference.networking.k8s.io")]}
REVIEWS = {"kind": "List", "items": [{"status": {"allowed": True}}] * 11}

KUBECTL = """#!/bin/sh
case "$*" in
  *"config view"*) echo '{"clusters":[{"name":"c","cluster":{"server":"https://127.0.0.1:6443"}}]}' ;;
  *" version "*) echo '{"clientVersion":{"gitVersion":"v1.33.9"},"serverVersion":{"gitVersion":"v1.33.1"}}' ;;
  *customresourcedefinitions*) cat "$DATA/crds.json" ;;
  *gatewayclasses*) echo '{"kind":"GatewayClass","metadata":{"name":"istio"}}' ;;
  *"get namespace"*|*"get configmap"*) echo 'Error from server (NotFound): not found' >&2; exit 1 ;;
  *"create --filename -"*) cat >/dev/null; cat "$DATA/reviews.json" ;;
  *" apply "*) cat >/dev/null; echo applied ;;
  *) echo "unexpected kubectl $*" >&2; exit 97 ;;
esac
"""
HELM = """#!/bin/sh
case "$1" in
  version) echo v3.15.3+g3bb50bb ;;
  list) echo '[]' ;;
  *) echo "unexpected helm $*" >&2; exit 97 ;;
esac
"""
HELMFILE = """#!/bin/sh
case "$*" in
  *--version*) echo 'helmfile version 0.166.0' ;;
  *" sync") echo $$ > "$DATA/helmfile.pid"
            echo 'Upgrading release=gaie-inference-scheduling, chart=oci://registry.k8s.io/x'
            exec sleep 30 ;;
  *) echo "unexpected helmfile $*" >&2; exit 97 ;;
esac
"""


@pytest.fixture
def scripted_tools(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "crds.json").write_text(json.dumps(CRDS))
    (data / "reviews.json").write_text(json.dumps(REVIEWS))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("kubectl", KUBECTL), ("helm", HELM), ("helmfile", HELMFILE)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("DATA", str(data))
    return data


def test_ctrl_c_during_helmfile_stops_its_group_and_exits_130(cli, scripted_tools):
    from llmd import proc

    pid_file = scripted_tools / "helmfile.pid"

    def press_ctrl_c():
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # helmfile is running and has printed its first line
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    t0 = time.monotonic()
    r = cli("deploy", "--context", "lab", "--accelerator", "sim")
    assert r.exit_code == 130, r.stderr
    assert "release gaie-inference-scheduling may be pending" in r.stderr
    assert "llmd deploy --recover" in r.stderr
    assert time.monotonic() - t0 < 15
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group is gone, not just the leader
    assert proc.live_children() == []
