"""`llmd prereqs` on a real API server (tests/e2e/cluster.py: etcd, kube-apiserver, controller-manager, scheduler,
kwok), driven as a user would, through whole `llmd` processes with the real kubectl, helm and helmfile:

  a cluster without the CRDs -> `prereqs install` -> again (no change) -> `doctor` passes -> `deploy` works ->
  `prereqs uninstall` refuses while the stack exists -> `cleanup` -> `prereqs uninstall` removes what it installed.

The CRDs are the pinned upstream files from the Go module cache (`--crd-dir`, the air-gap path); Istio is the
stand-in charts in tests/e2e/charts (`--chart istio-base=... --chart istiod=...`); the stack's charts are the
suite's stand-ins (`LLMD_CHART_SOURCE_*`). Run with `make e2e`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import DEFAULT_BIN, LocalCluster, cpu_node, crd_files
from e2e_support import HF_TOKEN, Run
from gateway_controller import GatewayController

HERE = Path(__file__).resolve().parent
CHARTS = HERE / "charts"
NS = "e2e-prereqs"
STEP_TIMEOUT_S = 600
OURS = "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bare(tmp_path_factory, tools) -> Iterator[LocalCluster]:
    """A control plane of its own: the session cluster gets the CRDs from the suite's `crds` fixture, and this
    test starts from a cluster that has none (and leaves nothing behind for the others)."""
    if not (DEFAULT_BIN / ".lock-sha256").exists():
        pytest.fail("e2e binaries missing: run `make e2e` (it builds them with e2e/build.py)")
    c = LocalCluster(DEFAULT_BIN, tmp_path_factory.mktemp("prereqs-cluster")).start()
    controller = GatewayController(c.client)
    try:
        c.add_nodes(tools["kubectl"], [cpu_node("cpu-1"), cpu_node("cpu-2")])
        controller.start()
        yield c
    finally:
        controller.stop()
        c.stop()
    assert not controller.errors, "gateway controller errors:\n" + "\n".join(controller.errors)


@pytest.fixture(scope="module")
def crd_dir(tmp_path_factory) -> Path:
    """The pinned Gateway API v1.5.1 standard channel and GAIE v1.4.0 CRD files (Go module cache), copied into one
    directory as an air-gapped user would."""
    d = tmp_path_factory.mktemp("crds")
    for f in crd_files():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture
def run(bare, tools, tmp_path_factory):
    """Whole `llmd` processes against the bare cluster; the stack's charts are the suite's stand-ins."""
    home = tmp_path_factory.mktemp("prereqs-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMD_") and k not in ("HF_TOKEN", "KUBECONFIG", "NAMESPACE")}
    env.update({**bare.env(), "LLMD_KUBECTL": tools["kubectl"], "LLMD_HELM": tools["helm"],
                "LLMD_HELMFILE": tools["helmfile"], "LLMD_STATE_DIR": str(home / "state"), "HOME": str(home),
                "HELM_CACHE_HOME": str(home / "helm"), "HELM_CONFIG_HOME": str(home / "helm"),
                "HELM_DATA_HOME": str(home / "helm"), "HF_TOKEN": HF_TOKEN, "NO_COLOR": "1", "COLUMNS": "200",
                "LLMD_CHART_SOURCE_INFRA": str(CHARTS / "llm-d-infra"),
                "LLMD_CHART_SOURCE_GAIE": str(CHARTS / "inferencepool"),
                "LLMD_CHART_SOURCE_MS": str(CHARTS / "llm-d-modelservice")})

    def llmd(*args: str) -> Run:
        argv = [sys.executable, "-m", "llmd", *args]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                           stdin=subprocess.DEVNULL, check=False)
        assert HF_TOKEN not in p.stdout + p.stderr, "the HF token leaked into llmd's output"
        return Run(argv, p.returncode, p.stdout, p.stderr)

    return llmd


def get(cluster: LocalCluster, tools, *args: str) -> dict:
    out = cluster.kubectl(tools["kubectl"], *args, "--output", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def test_bare_cluster_to_deploy_and_back(bare, tools, crd_dir, run):
    istio = ("--chart", f"istio-base={CHARTS / 'istio-base'}", "--chart", f"istiod={CHARTS / 'istiod'}")
    install = ("prereqs", "install", "--accelerator", "sim", "--crd-dir", str(crd_dir), *istio,
               "--wait-timeout", "180")
    assert get(bare, tools, "get", "customresourcedefinitions").get("items", []) == []  # bare

    r = run(*install, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {s["component"]: s["action"] for s in doc["steps"]} == {
        "gateway-api": "install", "inference-extension": "install", "istio": "install"}
    assert doc["doctor"]["status"] in ("ok", "warn")
    crds = get(bare, tools, "get", "customresourcedefinitions", "--selector", OURS)["items"]
    names = {c["metadata"]["name"] for c in crds}
    assert {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
            "inferencepools.inference.networking.k8s.io"} <= names
    for c in crds:  # applied and waited on until Established, by the real API server
        assert any(x["type"] == "Established" and x["status"] == "True" for x in c["status"]["conditions"])
    istiod = get(bare, tools, "get", "deployment", "istiod", "--namespace", "istio-system")
    env = {e["name"]: e["value"] for e in istiod["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] == "true"
    record = get(bare, tools, "get", "configmap", "llmd-prereqs", "--namespace", "istio-system")
    assert record["data"]["releases"] == "istio-base,istiod" and record["data"]["namespace-created"] == "true"

    again = run(*install)
    assert again.code == 0, again.err
    assert "nothing to install: every prerequisite is present (no change)" in again.err

    status = run("prereqs", "status", "--json")
    assert status.code == 0, status.err
    got = {p["name"]: (p["installed"], p["installed_by_llmd"]) for p in json.loads(status.out)["prerequisites"]}
    assert got["gateway-api"] == got["inference-extension"] == got["istio"] == (True, True)

    doctor = run("doctor", "--accelerator", "sim")
    assert doctor.code == 0, doctor.err

    deploy = run("deploy", "-n", NS, "--accelerator", "sim", "--no-hf-token", "--replicas", "2", "--timeout", "300")
    assert deploy.code == 0, deploy.err

    refused = run("prereqs", "uninstall", "--yes")
    assert refused.code == 10, refused.err
    assert f"InferencePool {NS}/gaie-inference-scheduling" in refused.err
    assert f"`llmd cleanup -n <namespace>` for {NS}" in refused.err
    assert get(bare, tools, "get", "deployment", "istiod", "--namespace", "istio-system")  # nothing removed

    cleanup = run("cleanup", "-n", NS, "--force", "--remove-namespace")
    assert cleanup.code == 0, cleanup.err

    removed = run("prereqs", "uninstall", "--yes", "--json")
    assert removed.code == 0, removed.err
    assert json.loads(removed.out)["status"] == "removed"
    assert get(bare, tools, "get", "customresourcedefinitions", "--selector", OURS).get("items", []) == []
    assert run("prereqs", "uninstall", "--yes").code == 0  # a second uninstall is a no-op
