"""`llmd doctor` end to end through the CLI against the strict fake process boundary: every check runs,
failures carry their fix, the cluster-side checks are skipped (not waited on) when the cluster is gone."""

from __future__ import annotations

import json
import re
import time

import pytest

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    NS,
    SERVER,
    UNREACHABLE,
    Fake,
    clock_fixture,
    crd,
    fake_fixture,
    lst,
    no_killpg_fixture,
    tool_calls,
)

SIM = ("--accelerator", "sim")
CLIENT = ["kubectl", "version", "--client", "--output", "json"]
CLUSTER_CHECKS = ("kubernetes", "crds", "gateway class", "control plane", "monitoring", "lws", "storage", "gpus",
                  "model size", "namespace", "permissions", "releases")



def local_tools(fake, kubectl: str = "v1.33.9") -> None:
    fake.reg(CLIENT, json.dumps({"clientVersion": {"gitVersion": kubectl}}))
    fake.tools()


def healthy_cluster(fake, *, ns_exists: bool = True, releases: dict | None = None, reviews: int = 10) -> None:
    """A reachable cluster with every prerequisite of a sim deploy."""
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.namespace(ns_exists)
    fake.permissions(reviews + (0 if ns_exists else 1))
    fake.releases(fake.all_deployed() if releases is None else releases)


def doc(r) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(r.stdout)["checks"]}


def flat(text: str) -> str:
    """The table's text without borders and line breaks: cells wrap at 80 columns in a log (llmd.tables)."""
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩━─┳╇┴┬└┘┌┐]", " ", text).split())


def test_healthy_sim_setup_is_all_ok_and_exits_0(cli, fp, fake):
    local_tools(fake)
    healthy_cluster(fake)
    r = cli("doctor", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    for row in ("kubectl", "v1.33.9 (>= 1.28)", "helm", "v3.15.3+g3bb50bb (>= 3.12)", "helmfile", "0.166.0",
                "GatewayClass istio present", f"{NS} exists (created by llmd)", "10 create permissions granted",
                "infra-inference-scheduling deployed"):
        assert row in flat(r.stderr), row
    assert f"llmd doctor — namespace {NS} on context {CTX} ({SERVER})" in flat(r.stderr)
    assert "✓ ready to deploy" in r.stderr
    assert r.stdout == ""  # the table is human output: stderr only
    assert not any("apply" in c or "delete" in c for c in tool_calls(fp))  # doctor changes nothing


def test_json_is_one_document_with_every_check_in_order(cli, fp, fake):
    local_tools(fake)
    healthy_cluster(fake, ns_exists=False, releases={})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["status"] == "ok" and data["exit_code"] == 0
    assert data["target"] == {"namespace": NS, "context": CTX, "server": SERVER, "platform": "kubernetes"}
    assert [c["name"] for c in data["checks"]] == ["kubectl", "helm", "helmfile", "hf token", "context", "cluster",
                                                   *CLUSTER_CHECKS]
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["hf token"]["status"] == checks["storage"]["status"] == checks["gpus"]["status"] == "skip"
    assert checks["namespace"]["message"] == f"{NS} will be created"
    assert checks["permissions"]["message"] == "11 create permissions granted"  # + create namespaces
    assert checks["releases"]["message"] == "none installed"
    assert "┃" not in r.stderr  # no table with --json


def test_missing_tools_fail_with_install_hints_and_the_cluster_is_still_checked(cli, fp, fake, tmp_path,
                                                                               monkeypatch):
    bindir = tmp_path / "onlykubectl"
    bindir.mkdir()
    (bindir / "kubectl").write_text("#!/bin/sh\nexit 99\n")
    (bindir / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    fake.reg(CLIENT, json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}}))
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.namespace(True)
    fake.permissions(10)
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 3, r.stderr
    checks = doc(r)
    assert checks["helm"]["status"] == checks["helmfile"]["status"] == "fail"
    assert "install helm >= 3.12" in checks["helm"]["fixes"][0]
    assert "install helmfile >= 0.166" in checks["helmfile"]["fixes"][0]
    assert checks["crds"]["status"] == checks["permissions"]["status"] == "ok"
    assert checks["releases"] == {"name": "releases", "status": "skip", "message": "helm not found", "fixes": []}
    assert not any(c[0] in ("helm", "helmfile") for c in tool_calls(fp))


def test_too_old_tools_fail_naming_version_and_minimum_and_the_cluster_is_still_checked(cli, fp, fake):
    old = json.dumps({"clientVersion": {"gitVersion": "v1.26.3"}, "serverVersion": {"gitVersion": "v1.33.1"}})
    fake.reg(CLIENT, old)
    fake.reg(["helm", "version", "--short"], "v3.10.1+g9f88ccb\n")
    fake.reg(["helmfile", "--version"], "helmfile version 0.166.0\n")
    fake.context()
    fake.reg(fake.k("version", "--output", "json", namespaced=False), old)  # the server answered
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.namespace(True)
    fake.permissions(10)
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM)
    assert r.exit_code == 3, r.stderr
    assert "kubectl v1.26.3 is older than 1.28" in r.stderr
    assert "helm v3.10.1+g9f88ccb is older than 3.12" in r.stderr
    assert "fix: upgrade helm to >= 3.12" in r.stderr
    assert "GatewayClass istio present" in r.stderr  # an old client does not stop the cluster checks
    assert "✗ not ready to deploy: kubectl, helm, cluster failed (exit 3)" in r.stderr


def test_unreachable_cluster_exits_4_and_skips_the_cluster_checks_with_the_reason(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reg(fake.k("version", "--output", "json", namespaced=False),
             json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}}), stderr=UNREACHABLE, rc=1)
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 4, r.stderr
    checks = doc(r)
    assert checks["cluster"]["status"] == "fail"
    assert f"cluster unreachable: namespace {NS} on context {CTX} ({SERVER})" in checks["cluster"]["message"]
    assert "was refused" in checks["cluster"]["message"]
    assert "kubectl cluster-info" in checks["cluster"]["fixes"][0]
    for name in CLUSTER_CHECKS:
        if name == "model size":  # local: runs without a cluster (the sim has no PVC)
            assert checks[name]["status"] == "skip"
            continue
        assert checks[name] == {"name": name, "status": "skip", "message": "the cluster check failed",
                                "fixes": []}
    assert checks["kubectl"]["status"] == checks["helm"]["status"] == "ok"  # local checks still ran
    assert json.loads(r.stdout)["exit_code"] == 4


def test_missing_kubeconfig_exits_4_and_asks_nothing_of_the_cluster(cli, fp, fake):
    local_tools(fake)
    r = cli("doctor", "--kubeconfig", "/nonexistent/kubeconfig", *SIM)
    assert r.exit_code == 4
    assert "kubeconfig /nonexistent/kubeconfig does not exist" in r.stderr
    assert "the context check failed" in r.stderr
    assert [c for c in tool_calls(fp) if c[0] == "kubectl"] == [CLIENT]


def test_missing_crds_fail_with_install_commands_and_every_other_check_runs(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds(crd("gateways.gateway.networking.k8s.io"), crd("httproutes.gateway.networking.k8s.io"),
              crd("inferencepools.inference.networking.k8s.io", version="v1alpha2"))
    fake.control_plane(present=False)
    fake.namespace(False)
    fake.permissions(11)
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 3, r.stderr
    checks = doc(r)
    assert checks["crds"]["status"] == "fail"
    assert "inferencepools.inference.networking.k8s.io does not serve v1" in checks["crds"]["message"]
    assert checks["crds"]["fixes"] == [f"llmd prereqs install --context {CTX}",
                                       'kubectl apply -k "https://github.com/kubernetes-sigs/gateway-api-inference-'
                                       'extension/config/crd/?ref=v1.4.0"']
    assert checks["gateway class"]["status"] == "skip"  # needs the CRDs; not asked
    # the control plane is checked on its own: istiod runs (or not) whatever the CRDs
    assert checks["control plane"]["status"] == "fail"
    assert checks["control plane"]["message"] == ("Istio control plane (istiod) not installed "
                                                  "(no Deployment istio-system/istiod)")
    assert checks["control plane"]["fixes"] == [f"llmd prereqs install --context {CTX}"]
    assert checks["namespace"]["status"] == checks["permissions"]["status"] == checks["releases"]["status"] == "ok"


def test_missing_gateway_control_plane_fails_with_the_provider_install(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class(present=False, name="agentgateway")
    fake.not_found(fake.kn("agentgateway-system", "get", "deployments.apps", "agentgateway", "--output", "json"),
                   "deployments.apps", "agentgateway")
    fake.namespace(True)
    fake.permissions(10)
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM, "-e", "agentgateway", "--json")
    assert r.exit_code == 3
    gc = doc(r)["gateway class"]
    assert gc["status"] == "fail" and "GatewayClass 'agentgateway' not found" in gc["message"]
    assert gc["fixes"][0] == f"llmd prereqs install -e agentgateway --context {CTX}"
    assert "agentgateway.helmfile.yaml" in gc["fixes"][1]
    cp = doc(r)["control plane"]
    assert cp == {"name": "control plane", "status": "fail",
                  "message": "agentgateway control plane not installed "
                             "(no Deployment agentgateway-system/agentgateway)",
                  "fixes": [f"llmd prereqs install -e agentgateway --context {CTX}"]}


def test_gpu_model_checks_token_storage_and_warns_on_gpu_shortfall(cli, fp, fake, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.storage(default=True)
    fake.nodes(gpus=2)
    fake.namespace(True)
    fake.permissions(12)  # with the model-cache PVC and download Job
    fake.releases({})
    r = cli("doctor", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr  # a warning is not a failure
    checks = doc(r)
    assert checks["hf token"] == {"name": "hf token", "status": "ok", "message": "from env HF_TOKEN", "fixes": []}
    assert checks["storage"]["message"] == "default StorageClass standard"
    assert checks["gpus"]["status"] == "warn"
    assert "only 2 nvidia.com/gpu allocatable, 4 needed" in checks["gpus"]["message"]
    assert json.loads(r.stdout)["status"] == "warn"
    assert "hf_tttt" not in r.stdout + r.stderr


def test_no_default_storage_class_and_no_token_fail(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.storage(default=False)
    fake.nodes(gpus=8)
    fake.namespace(True)
    fake.permissions(12)
    fake.releases({})
    r = cli("doctor", "--context", CTX)
    assert r.exit_code == 3, r.stderr
    assert "no default StorageClass and no --storage-class" in flat(r.stderr)
    assert "fix: pass --storage-class <name> (standard), or use --model-cache emptydir" in flat(r.stderr)
    assert "no Hugging Face token for meta-llama/Llama-3.1-8B-Instruct" in flat(r.stderr)
    assert "✗ not ready to deploy: hf token, storage failed (exit 3)" in r.stderr


def test_no_hf_token_flag_is_a_warning(cli, fp, fake):
    local_tools(fake)
    healthy_cluster(fake, reviews=10)
    r = cli("doctor", "--context", CTX, "--no-hf-token", "--model-cache", "emptydir", "--accelerator", "cpu",
            "--json")
    assert r.exit_code == 0, r.stderr
    token = doc(r)["hf token"]
    assert token["status"] == "warn" and "--no-hf-token" in token["message"]


def test_forbidden_rbac_exits_4_listing_each_missing_permission(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.namespace(False)
    fake.permissions(11, denied=(0, 1))
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 4, r.stderr
    perms = doc(r)["permissions"]
    assert perms["message"] == f"missing permissions (RBAC): create namespaces (cluster), create secrets in {NS}"
    assert doc(r)["releases"]["status"] == "ok"  # the run went on


def test_forbidden_read_fails_that_check_only(cli, fp, fake):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.reg(fake.k("get", "namespace", NS, "--output", "json", namespaced=False),
             stderr=f'Error from server (Forbidden): namespaces "{NS}" is forbidden: User "dev" cannot get', rc=1)
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 4
    checks = doc(r)
    assert checks["namespace"]["status"] == "fail" and "forbidden by RBAC" in checks["namespace"]["message"]
    assert checks["permissions"]["status"] == "skip"
    assert checks["releases"]["status"] == "ok"


def test_pending_release_fails_with_the_recover_command(cli, fp, fake):
    local_tools(fake)
    healthy_cluster(fake, releases={"infra-inference-scheduling": "deployed",
                                    "gaie-inference-scheduling": "pending-upgrade"})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 3
    rel = doc(r)["releases"]
    assert rel["status"] == "fail" and "gaie-inference-scheduling pending-upgrade (revision 2)" in rel["message"]
    assert f"llmd deploy --recover -n {NS} --context {CTX}" in rel["fixes"][0]


def test_terminating_namespace_warns_without_waiting(cli, fp, fake, clock):
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.namespace(terminating=1)
    fake.permissions(10)
    fake.releases({})
    r = cli("doctor", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 0, r.stderr
    ns = doc(r)["namespace"]
    assert ns["status"] == "warn" and "Terminating (NamespaceContentRemaining" in ns["message"]
    assert clock.sleeps == []


SCRIPTS = {
    "kubectl": """#!/bin/sh
case "$*" in
  *"--client"*) echo '{"clientVersion":{"gitVersion":"v1.33.9"}}' ;;
  *"config view"*) echo '{"clusters":[{"name":"c","cluster":{"server":"https://10.255.255.1:6443"}}]}' ;;
  *" version "*) exec sleep 30 ;;  # a blackholed server: no answer, no error
  *) echo "unexpected: $*" >&2; exit 97 ;;
esac
""",
    "helm": "#!/bin/sh\necho v3.15.3+g3bb50bb\n",
    "helmfile": "#!/bin/sh\necho 'helmfile version 0.166.0'\n",
}


def test_blackholed_server_costs_one_reachability_budget_and_leaves_no_child(cli, tmp_path, monkeypatch):
    from llmd import proc
    from llmd.ops import preflight

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in SCRIPTS.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setattr(preflight, "REACH_TIMEOUT_S", 1.0)  # the shipped budget is 12 s; same mechanism
    t0 = time.monotonic()
    r = cli("doctor", "--context", "lab", *SIM, "--json")
    elapsed = time.monotonic() - t0
    assert r.exit_code == 4, r.stderr
    checks = doc(r)
    assert "timed out after 1s" in checks["cluster"]["message"]
    assert all(checks[n]["status"] == "skip" for n in CLUSTER_CHECKS)
    assert elapsed < 6
    assert proc.live_children() == []


@pytest.mark.integration
def test_real_tools_against_a_refusing_server_exit_4_well_within_15s(cli, dead_cluster):
    kc, server = dead_cluster
    port = int(server.rsplit(":", 1)[1])
    t0 = time.monotonic()
    r = cli("doctor", "--kubeconfig", str(kc), *SIM, "--json")
    assert time.monotonic() - t0 < 15
    assert r.exit_code == 4, r.stderr
    checks = doc(r)
    assert [checks[n]["status"] for n in ("kubectl", "helm", "helmfile")] == ["ok", "ok", "ok"]
    assert checks["context"]["message"].startswith(f"deadctx (current context), server https://127.0.0.1:{port}")
    assert checks["cluster"]["status"] == "fail" and "cluster unreachable" in checks["cluster"]["message"]


def test_a_block_volume_default_class_warns_that_the_shared_model_cache_needs_rwx(cli, fp, fake, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    local_tools(fake)
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.control_plane()
    fake.storage(default=True, provisioner="ebs.csi.aws.com")
    fake.nodes(gpus=8)
    fake.namespace(True)
    fake.permissions(12)
    fake.releases({})
    r = cli("doctor", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr  # a warning: an RWX class may still be passed at deploy time
    storage = doc(r)["storage"]
    assert storage["status"] == "warn"
    assert "ebs.csi.aws.com" in storage["message"] and "ReadWriteOnce" in storage["message"]
    assert any("--model-cache emptydir" in f for f in storage["fixes"])

