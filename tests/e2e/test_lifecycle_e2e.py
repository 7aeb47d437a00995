"""The deploy path on a real API server, driven through whole `llmd` processes with the real kubectl/helm/helmfile:
deploy -> wait -> status --json healthy -> test / test --perf through a real `kubectl port-forward` -> identical
redeploy changes nothing -> --scheduler rolls only the EPP -> --model (immutable selector) replaces the decode
Deployment -> cleanup leaves nothing llmd created -> a second cleanup is a no-op."""

from __future__ import annotations

import re

import pytest
from e2e_support import kubectl_json, namespaced_objects

pytestmark = pytest.mark.e2e

SIM = ("--accelerator", "sim", "--no-hf-token", "--replicas", "2", "--timeout", "180")


def _uid_set(cluster, tools, ns: str, selector: str) -> set[str]:
    pods = kubectl_json(cluster, tools, "get", "pods", "-n", ns, "-l", selector)["items"]
    return {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def test_missing_crds_exit_3_with_the_install_commands_and_no_change(cluster, tools, llmd, ns):
    """Runs on the bare cluster (before the `crds` fixture installs them): preflight names what is missing."""
    k = tools["kubectl"]
    crd = "inferencepools.inference.networking.k8s.io"
    had = bool(cluster.kubectl(k, "get", "crd", crd, "--ignore-not-found", "-o", "name").stdout.strip())
    if had:  # another test installed them already this session: take the pool CRD away for this test only
        cluster.kubectl(k, "delete", "crd", crd, "--wait=true", timeout=120)
    try:
        r = llmd("deploy", "-n", ns, *SIM)
        assert r.code == 3, r.err
        assert f"{crd} missing" in r.err
        assert "kubectl apply -k" in r.err and "gateway-api-inference-extension/config/crd/?ref=v1.4.0" in r.err
        gone = cluster.kubectl(k, "get", "namespace", ns, "--ignore-not-found", "-o", "name").stdout
        assert gone.strip() == "", "preflight failed, yet the namespace was created"
    finally:
        if had:
            cluster.install_crds(k)


def test_sim_stack_lifecycle(cluster, tools, crds, llmd, ns):
    k = tools["kubectl"]
    deploy = ("deploy", "-n", ns, *SIM)

    # ---- first deploy: every step, then our own readiness wait
    r = llmd(*deploy, "--json", timeout=300)
    assert r.code == 0, r.err
    report = r.json()
    assert report["changed"] is True
    assert [c["component"] for c in report["readiness"]["components"]] == ["epp", "gateway", "decode", "route"]
    assert "chart ms: local chart" in r.err  # the air-gap sources are shown
    assert re.search(r"decode [0-2]/2", r.err), "no readiness progress was shown"

    status = llmd("status", "-n", ns, "--json")
    assert status.code == 0, status.err
    doc = status.json()
    assert doc["verdict"] == "healthy" and doc["healthy"] is True
    assert set(doc["releases"]) >= {"infra-inference-scheduling", "gaie-inference-scheduling",
                                    "ms-inference-scheduling"}

    # ---- smoke and perf through a real kubectl port-forward to the gateway Service (kwok -> llmd sim)
    smoke = llmd("test", "-n", ns, "--json", timeout=180)
    assert smoke.code == 0, smoke.err + smoke.out
    assert smoke.json()["error"] is None
    perf = llmd("test", "-n", ns, "--perf", "--concurrency", "4", "--requests", "40", "--output-tokens", "16",
                "--json", timeout=240)
    assert perf.code == 0, perf.err + perf.out[-2000:]
    assert "port-forward" in perf.err  # the report says it crossed a tunnel

    # ---- identical redeploy: nothing changes
    gen_before = kubectl_json(cluster, tools, "get", "deployments", "-n", ns)
    r = llmd(*deploy, "--json", timeout=300)
    assert r.code == 0, r.err
    assert r.json()["changed"] is False
    sync = next(s for s in r.json()["steps"] if s["step"] == "helmfile sync")
    assert sync["status"] == "unchanged"
    gen_after = kubectl_json(cluster, tools, "get", "deployments", "-n", ns)
    assert {d["metadata"]["name"]: d["metadata"]["generation"] for d in gen_before["items"]} == \
        {d["metadata"]["name"]: d["metadata"]["generation"] for d in gen_after["items"]}

    # ---- a scheduler change rolls the EPP only
    decode_sel = "llm-d.ai/role=decode"
    epp_sel = "inferencepool=gaie-inference-scheduling-epp"
    decode_before = _uid_set(cluster, tools, ns, decode_sel)
    epp_before = _uid_set(cluster, tools, ns, epp_sel)
    r = llmd(*deploy, "--scheduler", "random", "--json", timeout=300)
    assert r.code == 0, r.err
    assert r.json()["changed"] is True
    assert _uid_set(cluster, tools, ns, decode_sel) == decode_before, "the decode pods were restarted"
    epp_after = _uid_set(cluster, tools, ns, epp_sel)
    assert epp_after and not (epp_after & epp_before), "the EPP did not roll"
    # deploy returned only once the real controller reported the rollout complete (rule 15, F71)
    epp = kubectl_json(cluster, tools, "get", "deployment", "-n", ns, "gaie-inference-scheduling-epp")
    st = epp["status"]
    assert st["observedGeneration"] >= epp["metadata"]["generation"] > 1
    assert st["updatedReplicas"] == st["replicas"] == epp["spec"]["replicas"]
    assert next(c for c in r.json()["readiness"]["components"] if c["component"] == "epp")["rolled_out"] is True

    # ---- a model change alters the immutable decode selector: replaced before the sync, then healthy
    r = llmd(*deploy, "--scheduler", "random", "--model", "Qwen/Qwen3-0.6B", "--json", timeout=300)
    assert r.code == 0, r.err
    assert "will be replaced: its selector is immutable" in r.err
    assert "llm-d.ai/model: Llama-3.1-8B-Instruct -> Qwen3-0.6B" in r.err
    dep = kubectl_json(cluster, tools, "get", "deployment", "-n", ns,
                       "ms-inference-scheduling-llm-d-modelservice-decode")
    assert dep["spec"]["selector"]["matchLabels"]["llm-d.ai/model"] == "Qwen3-0.6B"
    smoke = llmd("test", "-n", ns, "--model", "Qwen/Qwen3-0.6B", timeout=180)
    assert smoke.code == 0, smoke.err

    # ---- cleanup removes everything llmd created; a second cleanup is a no-op
    r = llmd("cleanup", "-n", ns, "--force", "--json", timeout=300)
    assert r.code == 0, r.err
    left = [o for o in namespaced_objects(cluster, tools, ns)
            if not o.startswith(("ServiceAccount/default", "ConfigMap/kube-root-ca.crt"))]
    assert left == [], f"cleanup left objects behind: {left}"
    assert cluster.kubectl(k, "get", "gateways,httproutes,inferencepools", "-n", ns, "-o", "name").stdout == ""
    again = llmd("cleanup", "-n", ns, "--force", "--json", timeout=120)
    assert again.code == 0, again.err
    doc = again.json()
    assert doc["status"] == "nothing to do" and doc["exit_code"] == 0, doc
    assert [s for s in doc["steps"] if s["status"] != "absent"] == [], doc["steps"]
    assert "will remove" not in again.out + again.err, "a second cleanup still planned removals"
    # nothing labelled as llmd's is left in the namespace (kept: the namespace itself, without --remove-namespace)
    assert namespaced_objects(cluster, tools, ns, selector="app.kubernetes.io/managed-by=llmd") == []
