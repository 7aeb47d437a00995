"""The real kubectl/helm/helmfile binaries (`make tools`) against an API server that refuses connections on
127.0.0.1: proves the flags, version outputs and error texts llmd relies on, with no cluster at all."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.integration


def test_deploy_pins_the_current_context_and_fails_fast_with_exit_4(cli, dead_cluster):
    kc, server = dead_cluster
    t0 = time.monotonic()
    r = cli("deploy", "--kubeconfig", str(kc), "--accelerator", "sim")
    assert r.exit_code == 4, r.stderr
    assert f"cluster unreachable: namespace llm-d-inference-scheduling on context deadctx ({server})" in r.stderr
    assert "helm v3.15" not in r.stderr  # versions were read, not echoed as errors
    assert time.monotonic() - t0 < 15


def test_status_and_cleanup_report_the_unreachable_cluster(cli, dead_cluster):
    kc, _ = dead_cluster
    r = cli("status", "--kubeconfig", str(kc), "--json")
    assert r.exit_code == 4
    assert json.loads(r.stdout)["exit_code"] == 4
    r = cli("cleanup", "--kubeconfig", str(kc), "--force")
    assert r.exit_code == 4
    assert "cluster unreachable" in r.stderr


def test_helm_and_helmfile_versions_meet_the_minimums(real_tools, monkeypatch):
    from llmd.kube.helm import helm_version, helmfile_version, parse_version
    from llmd.ops.preflight import MIN_VERSIONS
    from llmd.proc import Runner

    monkeypatch.setenv("PATH", f"{real_tools}:/usr/bin:/bin")
    runner = Runner()
    assert parse_version(helm_version(runner)) >= MIN_VERSIONS["helm"]
    assert parse_version(helmfile_version(runner)) >= MIN_VERSIONS["helmfile"]


def test_real_helmfile_accepts_our_global_flags(tmp_path, dead_cluster):
    """An empty state: helmfile parses --file/--kube-context/--namespace/--helm-binary and stops at 'no releases'."""
    from llmd.errors import CommandFailed
    from llmd.kube.helm import Helmfile
    from llmd.kube.kubectl import Scope
    from llmd.proc import Runner

    kc, _ = dead_cluster
    (tmp_path / "helmfile.yaml").write_text("releases: []\n")
    with pytest.raises(CommandFailed) as err:
        Helmfile(Runner(), Scope("ns1", "deadctx", str(kc))).sync(tmp_path / "helmfile.yaml")
    assert "no releases found" in err.value.result.stderr
    assert "unknown flag" not in err.value.result.stderr
