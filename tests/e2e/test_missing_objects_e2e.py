"""What a real cluster can lack, on the real API server: an InferencePool deleted behind helm's back (the gateway
controller then reports the HTTPRoute ResolvedRefs=False/BackendNotFound; `status` says so with the deploy that
repairs it, and that deploy re-creates the pool), and the Prometheus Operator CRDs `--monitoring` needs."""

from __future__ import annotations

import time

import pytest
from e2e_support import kubectl_json
from gateway_controller import prometheus_operator_crds

pytestmark = pytest.mark.e2e

SIM = ("--accelerator", "sim", "--no-hf-token", "--replicas", "1", "--timeout", "180")
POOL = "gaie-inference-scheduling"
ROUTE = "llm-d-inference-scheduling"


def _resolved_refs(cluster, tools, ns: str) -> dict:
    route = kubectl_json(cluster, tools, "get", "httproutes.gateway.networking.k8s.io", ROUTE, "-n", ns)
    conds = [c for p in (route.get("status") or {}).get("parents") or [] for c in p.get("conditions") or []]
    return next((c for c in conds if c["type"] == "ResolvedRefs"), {})


def _until(check, what: str, limit_s: float = 30):
    deadline = time.monotonic() + limit_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"{what} within {limit_s:.0f}s"
        time.sleep(0.5)
    return got


def test_a_deleted_inference_pool_is_reported_by_status_and_re_created_by_deploy(cluster, tools, crds, llmd, ns):
    k = tools["kubectl"]
    r = llmd("deploy", "-n", ns, *SIM, "--json", timeout=300)
    assert r.code == 0, r.err
    assert llmd("status", "-n", ns).code == 0
    route = kubectl_json(cluster, tools, "get", "httproutes.gateway.networking.k8s.io", ROUTE, "-n", ns)
    assert [b["name"] for rule in route["spec"]["rules"] for b in rule["backendRefs"]] == [POOL]

    # ---- the pool goes behind helm's back: the releases stay `deployed`, the route loses its backend
    cluster.kubectl(k, "delete", "inferencepools.inference.networking.k8s.io", POOL, "-n", ns, "--wait=true",
                    timeout=60)
    cond = _until(lambda: (c := _resolved_refs(cluster, tools, ns)).get("status") == "False" and c,
                  "the gateway controller did not mark the route's backend missing")
    assert cond["reason"] == "BackendNotFound" and f"InferencePool {POOL} not found" in cond["message"]

    st = llmd("status", "-n", ns, "--json")
    assert st.code == 6, st.err  # README: 6 = not ready (degraded)
    doc = st.json()
    assert doc["verdict"] == "degraded" and doc["exit_code"] == 6
    assert doc["releases"] == dict.fromkeys(doc["releases"], "deployed")
    assert f"HTTPRoute ResolvedRefs=False (BackendNotFound: backend InferencePool {POOL} not found)" in doc["problems"]
    assert f"InferencePool {POOL} not found" in doc["problems"]
    assert f"`llmd deploy -n {ns}" in doc["hint"] and "re-creates it" in doc["hint"]
    text = llmd("status", "-n", ns)
    assert text.code == 6
    assert "BackendNotFound" in text.err and f"InferencePool {POOL} missing although every release" in text.err

    # ---- the hint's deploy, same flags: the bundle is unchanged, yet it syncs and the pool is back
    r = llmd("deploy", "-n", ns, *SIM, "--json", timeout=300)
    assert r.code == 0, r.err
    assert f"InferencePool {POOL} is missing from the cluster" in r.err
    assert next(s for s in r.json()["steps"] if s["step"] == "helmfile sync")["status"] == "done"
    kubectl_json(cluster, tools, "get", "inferencepools.inference.networking.k8s.io", POOL, "-n", ns)
    assert _resolved_refs(cluster, tools, ns)["status"] == "True"
    st = llmd("status", "-n", ns, "--json")
    assert st.code == 0 and st.json()["verdict"] == "healthy", st.out


def test_monitoring_needs_the_prometheus_operator_crds(cluster, tools, crds, llmd, ns):
    """Defect 4 on the real API server: without the CRDs, exit 3 before anything changes; with them (schemaless
    stand-ins: only the kinds' existence matters) the charts' ServiceMonitor and PodMonitor are admitted."""
    k = tools["kubectl"]
    r = llmd("deploy", "-n", ns, *SIM, "--monitoring", timeout=120)
    assert r.code == 3, r.err
    assert "Prometheus Operator" in r.err and "--no-monitoring" in r.err
    assert cluster.kubectl(k, "get", "namespace", ns, "--ignore-not-found", "-o", "name").stdout.strip() == ""

    docs = prometheus_operator_crds()
    cluster.apply(k, docs)
    names = [d["metadata"]["name"] for d in docs]
    try:
        cluster.kubectl(k, "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
        r = llmd("deploy", "-n", ns, *SIM, "--monitoring", "--json", timeout=300)
        assert r.code == 0, r.err
        kinds = {o["kind"] for o in kubectl_json(cluster, tools, "get", "servicemonitors,podmonitors", "-n", ns)
                 ["items"]}
        assert kinds == {"ServiceMonitor", "PodMonitor"}
    finally:  # the other tests see a cluster without the Prometheus Operator, as before
        cluster.kubectl(k, "delete", "crd", *names, "--ignore-not-found", "--wait=true", timeout=120)
