"""Endpoint resolution: --url validation, GKE Gateway address, the gateway Service check (F34), pod evidence,
and the pinned context on every kubectl call (pytest-subprocess plays kubectl)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import threading

import pytest

from llmd.errors import ConfigError, ExitCode, LlmdError, TestFailed
from llmd.ops.endpoint import Endpoint, normalize_url, open_endpoint
from llmd.proc import Runner
from llmd.settings import load_settings
from smoke_faults import FaultServer


@pytest.mark.parametrize(("given", "base"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000"),
    ("https://gw.example.com/team-a/v1", "https://gw.example.com/team-a"),
    ("http://[::1]:9000/", "http://[::1]:9000"),
])
def test_url_normalisation(given, base):
    assert normalize_url(given) == base


@pytest.mark.parametrize("bad", ["127.0.0.1:8000", "ftp://h", "http://", "http://u:p@h", "http://h/?x=1", "http://h/#f"])
def test_bad_urls_are_usage_errors(bad):
    with pytest.raises(ConfigError) as err:
        normalize_url(bad)
    assert err.value.exit_code == ExitCode.USAGE and err.value.hint


CTX = "kind-llmd"


def settings(**flags):
    return load_settings({"namespace": "llmd-test", "kube_context": CTX, **flags})


def kubectl_argv(*args, context=CTX):
    return ["kubectl", "--context", context, "--namespace", "llmd-test", "--request-timeout=10s", *args]


@pytest.fixture
def reachable(fp):
    """The context pinned from the kubeconfig and the one API-server probe every cluster verb makes first."""
    base = ["kubectl", "--context", CTX, "--request-timeout=10s"]
    fp.register([*base, "config", "view", "--minify", "--output", "json"],
                stdout=json.dumps({"clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}]}))
    fp.register([*base, "version", "--output", "json"],
                stdout=json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}, "serverVersion": {"gitVersion": "v1"}}))


def test_gke_uses_the_gateway_status_address(fp, fake_tools_on_path, reachable):
    s = settings(environment="gke")
    gw = {"status": {"addresses": [{"type": "IPAddress", "value": "34.1.2.3"}]}}
    fp.register(kubectl_argv("get", "gateway", s.gateway_name, "--output", "json"), stdout=json.dumps(gw))
    with open_endpoint(settings=s, runner=Runner()) as ep:
        assert ep.kind == "gke" and ep.url == "http://34.1.2.3:80" and not ep.via_port_forward
        ep.ensure_alive()  # nothing to re-probe on a direct address
        assert ep.generation == 1 and ep.names["pool"] == s.pool_name


def test_gke_gateway_without_address_is_exit_7_with_its_conditions(fp, fake_tools_on_path, reachable):
    s = settings(environment="gke")
    gw = {"status": {"conditions": [{"type": "Programmed", "status": "False", "reason": "Pending"}]}}
    fp.register(kubectl_argv("get", "gateway", s.gateway_name, "--output", "json"), stdout=json.dumps(gw))
    with pytest.raises(TestFailed) as err, open_endpoint(settings=s, runner=Runner()):
        pass
    assert "has no address yet" in err.value.message and "Programmed=False Pending" in err.value.details
    assert f"kubectl describe gateway {s.gateway_name} -n llmd-test" in err.value.hint


def test_gke_gateway_missing(fp, fake_tools_on_path, reachable):
    s = settings(environment="gke")
    fp.register(kubectl_argv("get", "gateway", s.gateway_name, "--output", "json"), returncode=1,
                stderr=f'Error from server (NotFound): gateways.gateway.networking.k8s.io "{s.gateway_name}" not found')
    with pytest.raises(TestFailed, match="not found in namespace llmd-test"), open_endpoint(settings=s,
                                                                                          runner=Runner()):
        pass


@pytest.mark.parametrize(("env", "service"), [
    ("istio", "infra-inference-scheduling-inference-gateway-istio"),
    ("agentgateway", "infra-inference-scheduling-inference-gateway"),
    ("kgateway", "infra-inference-scheduling-inference-gateway"),
])
def test_f34_expected_service_name_per_provider_and_nothing_matching(fp, fake_tools_on_path, reachable, env, service):
    s = settings(environment=env)
    fp.register(kubectl_argv("get", "service", service, "--output", "json"), returncode=1,
                stderr=f'Error from server (NotFound): services "{service}" not found')
    fp.register(kubectl_argv("get", "services", "--output", "json"), stdout=json.dumps({"items": []}))
    with pytest.raises(TestFailed) as err, open_endpoint(settings=s, runner=Runner()):
        pass
    assert f"gateway Service {service} not found" in err.value.message and "*-inference-gateway*: none" in \
        err.value.message
    assert err.value.details == "all Services in llmd-test: (none)"


def test_context_is_pinned_on_every_kubectl_call_including_the_port_forward(fp, fake_tools_on_path, reachable):
    srv = FaultServer()
    try:
        s = settings()
        svc = s.gateway_service
        fp.register(kubectl_argv("get", "service", svc, "--output", "json", ), stdout="{}")
        done = threading.Event()

        def live(process):
            process.stdout.seek(0)
            done.wait(30)

        fp.register(kubectl_argv("port-forward", "--address", "127.0.0.1", f"svc/{svc}", ":80"),
                    stdout=[f"Forwarding from 127.0.0.1:{srv.port} -> 80"], callback=live,
                    signal_callback=lambda _p, _s: done.set())
        with open_endpoint(settings=s, runner=Runner()) as ep:
            assert ep.via_port_forward and ep.url == srv.url and ep.generation == 1 and ep.restarts == 0
            assert ep.to_dict()["port_forward"]["target"] == f"svc/{svc}"
        assert all("--context" in call and "kind-llmd" in call for call in fp.calls)
    finally:
        srv.close()


def test_pod_summary_is_failure_evidence(fp, fake_tools_on_path):
    from llmd.kube.kubectl import Kubectl, Scope
    from llmd.ops.endpoint import pod_summary

    pods = {"items": [
        {"metadata": {"name": "ms-decode-abc"}, "status": {"phase": "Pending", "containerStatuses": [
            {"ready": False, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
        {"metadata": {"name": "gaie-epp-xyz"}, "status": {"phase": "Running", "containerStatuses": [
            {"ready": True, "restartCount": 0, "state": {"running": {}}}]}},
    ]}
    fp.register(kubectl_argv("get", "pods", "--output", "json"), stdout=json.dumps(pods))
    text = pod_summary(Kubectl(Runner(), Scope("llmd-test", CTX)))
    assert "ms-decode-abc  Pending  ready 0/1  restarts 3  CrashLoopBackOff" in text
    assert "gaie-epp-xyz  Running  ready 1/1  restarts 0" in text


def test_evidence_says_when_pod_status_cannot_be_collected():
    def boom():
        raise LlmdError("cluster unreachable")

    ep = Endpoint("gateway", "x", base_url="http://127.0.0.1:1", diagnose=boom)
    assert ep.evidence() == "(could not collect pod status: cluster unreachable)"
    assert Endpoint("url", "x", base_url="http://h").evidence() is None


def test_embedded_sim_is_a_supervised_child_serving_the_settings_model():
    import httpx

    from llmd import proc
    from llmd.ops.endpoint import open_endpoint
    from llmd.settings import load_settings

    settings = load_settings({"model": "org/demo-model"}, environ={})
    with open_endpoint(settings=settings, sim=True) as ep:
        children = proc.live_children()
        assert len(children) == 1
        models = httpx.get(f"{ep.url}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["org/demo-model"]
        assert ep.url.startswith("http://127.0.0.1:")
    assert proc.live_children() == []
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(children[0], 0)


def test_embedded_sim_keeps_serving_whatever_it_writes_to_stderr(monkeypatch):
    """A pipe nobody reads blocks its writer at 64 KiB: the simulator's stderr is drained, not left to fill. Python's
    verbose import trace writes ~100 KiB to stderr before the simulator prints its URL."""
    import httpx

    from llmd.ops.endpoint import open_endpoint
    from llmd.settings import load_settings

    monkeypatch.setenv("PYTHONVERBOSE", "1")
    with open_endpoint(settings=load_settings({}, environ={}), sim=True) as ep:
        assert httpx.get(f"{ep.url}/v1/models", timeout=5).status_code == 200


def test_direct_endpoints_never_lose_a_tunnel():
    ep = Endpoint("url", "x", base_url="http://127.0.0.1:1")
    assert ep.lost_during(1, 2) is False and ep.generation == 1
