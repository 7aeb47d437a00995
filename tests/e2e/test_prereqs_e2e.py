"""`llmd prereqs` on a real API server (tests/e2e/cluster.py: etcd, kube-apiserver, controller-manager, scheduler,
kwok), driven as a user would, through whole `llmd` processes with the real kubectl, helm and helmfile:

  a cluster without the CRDs -> `prereqs install` -> again (no change) -> `doctor` passes -> `deploy` works ->
  `prereqs uninstall` refuses while the stack exists -> `cleanup` -> `prereqs uninstall` removes what it installed.

The CRDs are the pinned upstream files from the Go module cache (`--crd-dir`, the air-gap path); Istio is the
stand-in charts in tests/e2e/charts (`--chart istio-base=... --chart istiod=...`); the stack's charts are the
issue-8 stand-ins (`--chart-source-*`). Skipped when the e2e binaries (`python3 e2e/build.py`) or Go are absent.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOOLS = Path(os.environ.get("LLMD_TEST_TOOLS", ROOT / ".tools" / "bin"))
BIN = Path(os.environ.get("LLMD_E2E_BIN", ROOT / ".e2e" / "bin"))
CHARTS = HERE / "charts"
NS = "e2e-prereqs"
STEP_TIMEOUT_S = 600

pytestmark = pytest.mark.e2e

cluster_mod = pytest.importorskip("cluster", reason="tests/e2e/cluster.py (issue 8) not present")


def _missing() -> str | None:
    if not (BIN / "kube-apiserver").exists():
        return f"e2e binaries not built in {BIN} (python3 e2e/build.py)"
    if not all((TOOLS / t).exists() for t in ("kubectl", "helm", "helmfile")):
        return f"real kubectl/helm/helmfile not in {TOOLS} (make tools)"
    if shutil.which("go") is None:
        return "go not found: the pinned CRD files come from the Go module cache"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[object]:
    why = _missing()
    if why:
        pytest.skip(why)
    from gateway_controller import GatewayController

    work = tmp_path_factory.mktemp("prereqs-cluster")
    c = cluster_mod.LocalCluster(BIN, work).start()
    controller = None
    try:
        c.add_nodes(str(TOOLS / "kubectl"), [cluster_mod.cpu_node("cpu-1"), cluster_mod.cpu_node("cpu-2")])
        controller = GatewayController(c.client).start()
        yield c
    finally:
        if controller is not None:
            controller.stop()
        c.stop()


@pytest.fixture(scope="module")
def crd_dir(tmp_path_factory) -> Path:
    """The Gateway API v1.5.1 standard channel and GAIE v1.4.0 CRD files, as an air-gapped user would copy them."""
    d = tmp_path_factory.mktemp("crds")
    for f in cluster_mod.crd_files():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def llmd(cluster, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    helm_home = tmp_path_factory.mktemp("helm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMD_") and k not in ("HF_TOKEN", "KUBECONFIG")}
    env.update({"KUBECONFIG": str(cluster.kubeconfig_path), "PATH": f"{TOOLS}{os.pathsep}{env.get('PATH', '')}",
                "LLMD_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200",
                "HELM_CACHE_HOME": str(helm_home), "HELM_CONFIG_HOME": str(helm_home),
                "HELM_DATA_HOME": str(helm_home)})
    exe = [sys.executable, "-m", "llmd"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*exe, *args], env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)

    return run


def kubectl_json(cluster, *args: str) -> dict:
    out = cluster.kubectl(str(TOOLS / "kubectl"), *args, "--output", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def test_bare_cluster_to_deploy_and_back(cluster, crd_dir, llmd):
    istio = ("--chart", f"istio-base={CHARTS / 'istio-base'}", "--chart", f"istiod={CHARTS / 'istiod'}")
    install = ("prereqs", "install", "--accelerator", "sim", "--crd-dir", str(crd_dir), *istio,
               "--wait-timeout", "180")
    assert kubectl_json(cluster, "get", "customresourcedefinitions").get("items", []) == []  # bare

    r = llmd(*install, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {s["component"]: s["action"] for s in doc["steps"]} == {
        "gateway-api": "install", "inference-extension": "install", "istio": "install"}
    assert doc["doctor"]["status"] in ("ok", "warn")
    crds = kubectl_json(cluster, "get", "customresourcedefinitions", "--selector",
                        "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq")["items"]
    names = {c["metadata"]["name"] for c in crds}
    assert {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
            "inferencepools.inference.networking.k8s.io"} <= names
    for c in crds:  # applied and waited on until Established, by the real API server
        assert any(x["type"] == "Established" and x["status"] == "True" for x in c["status"]["conditions"])
    istiod = kubectl_json(cluster, "get", "deployment", "istiod", "--namespace", "istio-system")
    env = {e["name"]: e["value"] for e in istiod["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ENABLE_GATEWAY_API_INFERENCE_EXTENSION"] == "true"
    record = kubectl_json(cluster, "get", "configmap", "llmd-prereqs", "--namespace", "istio-system")
    assert record["data"]["releases"] == "istio-base,istiod" and record["data"]["namespace-created"] == "true"

    again = llmd(*install)
    assert again.returncode == 0, again.stderr
    assert "nothing to install: every prerequisite is present (no change)" in again.stderr

    status = llmd("prereqs", "status", "--json")
    assert status.returncode == 0, status.stderr
    got = {p["name"]: (p["installed"], p["installed_by_llmd"]) for p in json.loads(status.stdout)["prerequisites"]}
    assert got["gateway-api"] == got["inference-extension"] == got["istio"] == (True, True)

    doctor = llmd("doctor", "--accelerator", "sim")
    assert doctor.returncode == 0, doctor.stderr

    stack = ("-n", NS, "--accelerator", "sim", "--chart-source-infra", str(CHARTS / "llm-d-infra"),
             "--chart-source-gaie", str(CHARTS / "inferencepool"), "--chart-source-ms",
             str(CHARTS / "llm-d-modelservice"))
    deploy = llmd("deploy", *stack, "--timeout", "300")
    assert deploy.returncode == 0, deploy.stderr

    refused = llmd("prereqs", "uninstall", "--yes")
    assert refused.returncode == 10, refused.stderr
    assert f"InferencePool {NS}/gaie-inference-scheduling" in refused.stderr
    assert f"`llmd cleanup -n <namespace>` for {NS}" in refused.stderr
    assert kubectl_json(cluster, "get", "deployment", "istiod", "--namespace", "istio-system")  # nothing removed

    cleanup = llmd("cleanup", "-n", NS, "--force", "--remove-namespace")
    assert cleanup.returncode == 0, cleanup.stderr

    removed = llmd("prereqs", "uninstall", "--yes", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["status"] == "removed"
    left = kubectl_json(cluster, "get", "customresourcedefinitions", "--selector",
                        "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq")
    assert left.get("items", []) == []
    assert llmd("prereqs", "uninstall", "--yes").returncode == 0  # a second uninstall is a no-op
