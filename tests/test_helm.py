"""helm/helmfile wrappers: scope injection, version parsing, release parsing, helmfile progress tracking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmd.kube.helm import Helm, Helmfile, parse_version
from llmd.kube.kubectl import Scope
from llmd.ops.deploy import SyncTracker
from llmd.proc import Runner


def test_helm_gets_kube_context_kubeconfig_and_namespace():
    runner = Runner(dry_run=True)
    Helm(runner, Scope("ns1", "ctx1", "/k/config")).uninstall("ms-x")
    assert runner.planned[0].argv == ("helm", "uninstall", "ms-x", "--kubeconfig", "/k/config",
                                      "--kube-context", "ctx1", "--namespace", "ns1")
    assert runner.planned[0].mutates


def test_helmfile_flags_precede_the_subcommand_and_kubeconfig_goes_through_the_environment(monkeypatch):
    monkeypatch.setenv("LLMD_HELM", "/opt/helm3/helm")
    runner = Runner(dry_run=True)
    Helmfile(runner, Scope("ns1", "ctx1", "/k/config")).sync(Path("/r/helmfile.yaml"))
    cmd = runner.planned[0]
    assert cmd.argv == ("helmfile", "--file", "/r/helmfile.yaml", "--kube-context", "ctx1", "--namespace", "ns1",
                        "--helm-binary", "/opt/helm3/helm", "sync")
    assert cmd.env == {"KUBECONFIG": "/k/config"} and cmd.cwd == "/r"


def test_releases_parse_helm_list_json(fp, fake_tools_on_path):
    rows = [{"name": "gaie-x", "revision": "3", "status": "pending-upgrade", "chart": "inferencepool-v1.4.0"},
            {"name": "infra-x", "revision": "1", "status": "deployed", "chart": "llm-d-infra-v1.4.0"}]
    fp.register(["helm", "list", "--all", "--output", "json", "--kube-context", "c", "--namespace", "n"],
                stdout=json.dumps(rows))
    rel = Helm(Runner(), Scope("n", "c")).releases()
    assert rel["gaie-x"].pending and rel["gaie-x"].revision == 3
    assert not rel["infra-x"].pending


def test_helm_unreachable_is_exit_4(fp, fake_tools_on_path):
    from llmd.errors import ClusterError

    fp.register(["helm", "list", "--all", "--output", "json", "--kube-context", "c", "--namespace", "n"],
                stderr="Error: Kubernetes cluster unreachable: Get \"https://x:6443/version\": dial tcp: i/o timeout",
                returncode=1)
    with pytest.raises(ClusterError) as err:
        Helm(Runner(), Scope("n", "c")).releases()
    assert err.value.exit_code == 4


@pytest.mark.parametrize(("text", "expected"), [
    ("v3.15.3+g3bb50bb", (3, 15)), ("helmfile version 0.166.0", (0, 166)), ("helmfile version v1.1.3", (1, 1)),
    ("v1.33.9", (1, 33)), ("", None), ("garbage", None)])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_sync_tracker_names_the_release_in_flight():
    t = SyncTracker(("infra-x", "gaie-x", "ms-x"))
    for line in ("Adding repo llm-d-infra https://…", "Upgrading release=infra-x, chart=llm-d-infra/llm-d-infra",
                 'Release "infra-x" does not exist. Installing it now.', "NAME: infra-x", "STATUS: deployed",
                 "Upgrading release=gaie-x, chart=oci://registry.k8s.io/…", "Upgrading release=other, chart=y"):
        t.feed(line)
    assert t.in_flight() == ["gaie-x"]


def test_a_kubeconfig_list_is_not_passed_as_a_flag():
    """`--kubeconfig` takes one file; KUBECONFIG=a:b reaches kubectl and helm through the environment."""
    scope = Scope("ns1", "ctx1", "/a/config:/b/config")
    assert "--kubeconfig" not in scope.kubectl_flags() and "--kubeconfig" not in scope.helm_flags()
    assert Scope("ns1", "ctx1", "/a/config").kubectl_flags()[:2] == ("--kubeconfig", "/a/config")


def test_a_kubeconfig_list_reaches_kubectl_helm_and_helmfile_alike(tmp_path, monkeypatch):
    """--kubeconfig a:b (or LLMD_KUBECONFIG=a:b) cannot be a --kubeconfig flag: every child gets it as KUBECONFIG,
    so one run reads one kubeconfig whichever tool asks. Real child processes: fakes that print what they got."""
    import os

    from llmd.kube.kubectl import Kubectl

    for tool in ("kubectl", "helm", "helmfile"):
        fake = tmp_path / tool
        fake.write_text('#!/bin/sh\necho "KUBECONFIG=$KUBECONFIG args=$*"\n')
        fake.chmod(0o755)
        monkeypatch.setenv(f"LLMD_{tool.upper()}", str(fake))
    monkeypatch.setenv("KUBECONFIG", "/somewhere/else")  # the user's own, which a list flag must not fall back to
    listed = f"{tmp_path}/a{os.pathsep}{tmp_path}/b"
    scope = Scope("ns1", "ctx1", listed)
    runner = Runner()
    out = {
        "kubectl": Kubectl(runner, scope).run("get", "pods").stdout,
        "helm": Helm(runner, scope).runner.run(Helm(runner, scope).cmd("list")).stdout,
        "helmfile": runner.run(Helmfile(runner, scope).cmd(tmp_path / "helmfile.yaml", "sync")).stdout,
    }
    for tool, line in out.items():
        assert line.startswith(f"KUBECONFIG={listed} "), (tool, line)
        assert "--kubeconfig" not in line, (tool, line)
