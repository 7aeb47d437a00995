"""`llmd status`: verdict and exit code (0 healthy, 6 degraded / not deployed, 4 unreachable)."""

from __future__ import annotations

import json

import pytest

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    NS,
    UNREACHABLE,
    Fake,
    clock_fixture,
    deployment,
    gateway,
    lst,
    no_killpg_fixture,
    obj,
    route,
)


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return Fake(fp, tmp_path)


def cluster(fake, *, decode_ready=4, route_obj=None, pool=True, releases=None, svc=True, pvc=True):
    s = fake.s
    fake.context()
    fake.reachable()
    fake.namespace(True)
    fake.releases(releases or fake.all_deployed())
    items = [deployment(s.epp_name, 1), deployment(s.gateway_service, 1),
             deployment(s.decode_deployment, decode_ready, 4)]
    if svc:
        items.append(obj("Service", s.gateway_service, spec={"type": "ClusterIP", "clusterIP": "10.96.0.7",
                                                             "ports": [{"port": 15021}, {"port": 80}]}))
    if pvc:
        items.append(obj("PersistentVolumeClaim", s.pvc_name, status={"phase": "Bound",
                                                                        "capacity": {"storage": "50Gi"}}))
    fake.reg(fake.k("get", "deployments.apps,pods,persistentvolumeclaims,services", "--output", "json"), lst(*items))
    fake.reg(fake.k("get", "gateways.gateway.networking.k8s.io", s.gateway_name, "--output", "json"),
             json.dumps(gateway(s.gateway_name)))
    fake.reg(fake.k("get", "httproutes.gateway.networking.k8s.io", s.httproute_name, "--output", "json"),
             json.dumps(route_obj or route(s.httproute_name)))
    pool_argv = fake.k("get", "inferencepools.inference.networking.k8s.io", s.pool_name, "--output", "json")
    if pool:
        fake.reg(pool_argv, json.dumps(obj("InferencePool", s.pool_name, status={"parents": [
            {"conditions": [{"type": "Accepted", "status": "True"}]}]})))
    else:
        fake.not_found(pool_argv)


def test_healthy_stack_exits_0_with_json_document(cli, fake):
    cluster(fake)
    r = cli("status", "--context", CTX, "--accelerator", "sim", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "healthy" and doc["problems"] == []
    assert doc["releases"] == dict.fromkeys(fake.s.releases, "deployed")
    assert doc["gateway_service"]["ports"] == [15021, 80]
    assert doc["httproute"]["conditions"] == {"Accepted": "True", "ResolvedRefs": "True"}
    assert doc["pvc"]["phase"] == "Bound"
    assert {c["component"]: (c["ready"], c["desired"]) for c in doc["components"]} == {
        "epp": (1, 1), "gateway": (1, 1), "decode": (4, 4)}


def test_healthy_table_has_a_one_line_verdict(cli, fake):
    cluster(fake)
    r = cli("status", "--context", CTX)
    assert r.exit_code == 0
    assert "healthy: the stack can serve" in r.stderr and "4/4 ready" in r.stderr


def test_not_deployed_exits_6(cli, fake):
    fake.context()
    fake.reachable()
    fake.namespace(False)
    r = cli("status", "--context", CTX, "--json")
    assert r.exit_code == 6
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "not deployed" and f"namespace {NS} does not exist" in doc["problems"]


def test_degraded_names_each_problem_and_exits_6(cli, fake):
    s = fake.s
    cluster(fake, decode_ready=2, pool=False, svc=False,
            route_obj=route(s.httproute_name, resolved="False", message="backend not found"),
            releases={**fake.all_deployed(), s.gaie_release: "failed"})
    r = cli("status", "--context", CTX)
    assert r.exit_code == 6
    text = r.stderr
    assert "degraded:" in text
    for needle in (f"release {s.gaie_release} is failed", "decode", "2/4 ready", "ResolvedRefs=False",
                   f"InferencePool {s.pool_name} not found", f"gateway Service {s.gateway_service} not found"):
        assert needle in text, needle


def test_healthy_verdict_names_the_test_command_for_this_stack(cli, fake):
    cluster(fake)
    r = cli("status", "--context", CTX, "--accelerator", "sim")
    assert r.exit_code == 0, r.stderr
    assert f"`llmd test -n {NS} --context {CTX}` sends a request" in r.stderr


def test_degraded_hint_names_the_pinned_context(cli, fake):
    cluster(fake, decode_ready=2)
    r = cli("status", "--context", CTX)
    assert r.exit_code == 6
    assert f"`kubectl get pods -n {NS} --context {CTX}`" in r.stderr  # the pinned cluster, not the current one


def test_a_pending_release_hint_points_at_recover(cli, fake):
    s = fake.s
    cluster(fake, releases={**fake.all_deployed(), s.gaie_release: "pending-install"})
    r = cli("status", "--context", CTX)
    assert r.exit_code == 6
    assert f"release {s.gaie_release} is pending-install" in r.stderr
    assert f"llmd deploy --recover -n {NS} --context {CTX}" in r.stderr


def test_unreachable_cluster_exits_4(cli, fake):
    fake.context()
    fake.reg(fake.k("version", "--output", "json", namespaced=False), stderr=UNREACHABLE, rc=1)
    r = cli("status", "--context", CTX, "--json")
    assert r.exit_code == 4
    assert json.loads(r.stdout)["status"] == "failed"
    assert "waiting for the API server" in r.stderr  # the one probe says what it waits for


@pytest.mark.integration
def test_real_kubectl_against_a_refusing_server_shows_its_verdict_not_client_go_log_lines(cli, dead_cluster):
    """kubectl prints one `E1128 ... memcache.go:265] ...` line per discovery retry before its verdict: status
    and cleanup show the verdict (the transcript keeps the rest)."""
    kc, server = dead_cluster
    port = server.rsplit(":", 1)[1]
    for argv in (("status",), ("cleanup", "--force")):
        r = cli(*argv, "--kubeconfig", str(kc), "--json")
        assert r.exit_code == 4, r.stderr
        details = json.loads(r.stdout)["details"]
        assert f"The connection to the server 127.0.0.1:{port} was refused" in details
        assert "memcache.go" not in details and "memcache.go" not in r.stderr


def test_a_pool_deleted_by_hand_is_degraded_with_the_deploy_that_re_creates_it(cli, fake):
    """The releases are deployed but the InferencePool is gone: the route reports BackendNotFound and the hint
    names the deploy that re-creates it (a deploy re-syncs when a chart object is missing)."""
    s = fake.s
    gone = f"backend InferencePool {s.pool_name} not found"
    cluster(fake, pool=False, route_obj=obj("HTTPRoute", s.httproute_name, status={"parents": [{"conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": gone}]}]}))
    r = cli("status", "--context", CTX, "--accelerator", "sim", "--json")
    assert r.exit_code == 6, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "degraded"
    assert f"InferencePool {s.pool_name} not found" in doc["problems"]
    assert f"HTTPRoute ResolvedRefs=False (BackendNotFound: {gone})" in doc["problems"]
    assert doc["hint"].startswith(f"InferencePool {s.pool_name} missing although every release is deployed")
    assert f"`llmd deploy -n {NS} --context {CTX}`" in doc["hint"]
