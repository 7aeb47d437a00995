"""Preflight with real child processes: a blackholed API server must not hang the run (F15)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import time

import pytest

SCRIPTS = {
    "kubectl": """#!/bin/sh
case "$*" in
  *"config view"*) echo '{"clusters":[{"name":"c","cluster":{"server":"https://10.255.255.1:6443"}}]}' ;;
  *" version "*) exec sleep 30 ;;  # a blackholed server: no answer, no error
  *) echo "unexpected: $*" >&2; exit 97 ;;
esac
""",
    "helm": "#!/bin/sh\necho v3.15.3+g3bb50bb\n",
    "helmfile": "#!/bin/sh\necho 'helmfile version 0.166.0'\n",
}


@pytest.fixture
def blackholed(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in SCRIPTS.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return bindir


def test_unreachable_server_fails_within_the_budget_and_leaves_no_child(cli, blackholed, monkeypatch):
    from llmd import proc
    from llmd.ops import preflight

    monkeypatch.setattr(preflight, "REACH_TIMEOUT_S", 1.0)  # the shipped budget is 12 s; same mechanism
    t0 = time.monotonic()
    r = cli("deploy", "--context", "lab", "--accelerator", "sim")
    elapsed = time.monotonic() - t0
    assert r.exit_code == 4, r.stderr
    assert "timed out after 1s" in r.stderr
    assert elapsed < 8
    assert proc.live_children() == []


def test_reachability_budget_is_within_the_preflight_limit():
    from llmd.ops import preflight

    assert preflight.REACH_TIMEOUT_S <= 15


@pytest.mark.parametrize("text", [
    '{"kind":"List","items":[{"a":1},{"a":2}]}',
    '{"a":1}\n{"a":2}\n',
    '{\n  "a": 1\n}{\n  "a": 2\n}',
])
def test_kubectl_json_output_in_every_shape(text):
    from llmd.ops.preflight import json_objects

    assert json_objects(text) == [{"a": 1}, {"a": 2}]


def test_kubectl_invalid_json_is_a_cluster_error():
    from llmd.errors import ClusterError
    from llmd.ops.preflight import json_objects

    with pytest.raises(ClusterError):
        json_objects('{"a":1}garbage')
