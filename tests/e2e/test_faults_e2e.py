"""Faults on the real control plane: the API server stopped mid-deploy, Ctrl-C during `helmfile sync`, and a
kubeconfig whose ServiceAccount token lacks permissions."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from e2e_support import interrupt, kubectl_json

pytestmark = pytest.mark.e2e

SIM = ("--accelerator", "sim", "--no-hf-token", "--replicas", "2", "--timeout", "180")
SYNC_STARTED = "helmfile sync (infra"


def _releases(cluster, tools, ns: str) -> dict[str, str]:
    out = cluster.kubectl(tools["kubectl"], "get", "secrets", "-n", ns,
                          "-l", "owner=helm", "-o", "json").stdout
    items = yaml.safe_load(out).get("items", [])
    latest: dict[str, tuple[int, str]] = {}
    for s in items:
        labels = s["metadata"]["labels"]
        rev = int(labels["version"])
        if rev >= latest.get(labels["name"], (0, ""))[0]:
            latest[labels["name"]] = (rev, labels["status"])
    return {name: status for name, (_, status) in latest.items()}


def test_api_server_stopped_mid_deploy_exits_4_then_a_rerun_completes(cluster, tools, crds, llmd, ns):
    p = llmd.spawn("deploy", "-n", ns, *SIM)
    deadline = time.monotonic() + 120
    seen = ""
    assert p.stderr is not None
    while SYNC_STARTED not in seen and time.monotonic() < deadline and p.poll() is None:
        seen += p.stderr.readline()
    assert SYNC_STARTED in seen, seen
    time.sleep(1.0)  # helm is talking to the API server now
    cluster.stop_component("kube-apiserver")
    try:
        _out, err = p.communicate(timeout=180)
    finally:
        cluster.restart_apiserver()
    err = seen + err
    assert p.returncode == 4, err
    assert "unreachable" in err.lower() or "refused" in err.lower(), err

    r = llmd("deploy", "-n", ns, *SIM, timeout=300)
    if r.code == 5:  # a release was left pending-*: the message says to recover, and --recover does
        assert "--recover" in r.err, r.err
        r = llmd("deploy", "-n", ns, *SIM, "--recover", timeout=300)
    assert r.code == 0, r.err
    assert set(_releases(cluster, tools, ns).values()) == {"deployed"}
    assert llmd("status", "-n", ns, "--json").json()["verdict"] == "healthy"
    assert llmd("cleanup", "-n", ns, "--force", timeout=300).code == 0


def test_ctrl_c_during_helmfile_sync_leaves_what_the_message_says(cluster, tools, crds, llmd, ns):
    p = llmd.spawn("deploy", "-n", ns, *SIM)
    code, _out, err = interrupt(p, SYNC_STARTED)
    assert code == 130, err
    assert "interrupted during helmfile sync" in err and "--recover" in err
    # no helm or helmfile child of that run survives it
    rendered = os.path.join(llmd.env["LLMD_STATE_DIR"], "rendered")
    leftovers = [line for line in os.popen("ps -eo pid,args").read().splitlines() if rendered in line]
    assert leftovers == [], leftovers
    # what it says may be pending is at most what exists; nothing outside the three releases
    releases = _releases(cluster, tools, ns)
    assert set(releases) <= {"infra-inference-scheduling", "gaie-inference-scheduling", "ms-inference-scheduling"}
    named = err.split("release", 1)[1].split("may be pending", 1)[0] if "may be pending" in err else ""
    for name, status in releases.items():
        if status.startswith("pending"):
            assert name in named, f"{name} is {status} but the message named only {named!r}"
    r = llmd("deploy", "-n", ns, *SIM, "--recover", timeout=300)
    assert r.code == 0, r.err
    assert set(_releases(cluster, tools, ns).values()) == {"deployed"}
    assert llmd("cleanup", "-n", ns, "--force", timeout=300).code == 0


def test_rbac_limited_service_account_exits_4_naming_the_permission_before_any_change(cluster, tools, crds, llmd,
                                                                                      ns, tmp_path):
    k = tools["kubectl"]
    sa = "limited-deployer"
    cluster.apply(k, [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
        # cluster-wide reads preflight needs, nothing more
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{ns}-read"},
         "rules": [{"apiGroups": ["", "storage.k8s.io", "apiextensions.k8s.io", "gateway.networking.k8s.io"],
                    "resources": ["nodes", "namespaces", "storageclasses", "customresourcedefinitions",
                                  "gatewayclasses"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": f"{ns}-read"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{ns}-read"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
        # in the namespace: read everything, create only Secrets and ConfigMaps
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "half", "namespace": ns},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["create", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "half", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "half"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
    ])
    token = cluster.kubectl(k, "create", "token", sa, "-n", ns, "--duration", "1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig_path.read_text())
    admin["users"] = [{"name": sa, "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = sa
    kubeconfig = tmp_path / "limited.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(admin))
    kubeconfig.chmod(0o600)
    def names() -> set[str]:
        objs = kubectl_json(cluster, tools, "get", "secrets,configmaps", "-n", ns)["items"]
        return {o["metadata"]["name"] for o in objs}

    before = names()

    r = llmd("deploy", "-n", ns, *SIM, extra_env={"KUBECONFIG": str(kubeconfig)})
    assert r.code == 4, r.err
    assert "missing permissions (RBAC)" in r.err
    assert f"create deployments.apps in {ns}" in r.err and f"create services in {ns}" in r.err
    assert f"create secrets in {ns}" not in r.err  # granted, so not named
    assert token not in r.err + r.out
    after = names()
    assert after == before, f"objects were created before the permission check: {after - before}"
    assert _releases(cluster, tools, ns) == {}
