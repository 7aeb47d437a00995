"""The real kubectl binary (`make tools`) against a tiny fake Kubernetes API server on 127.0.0.1: our argv is
accepted, and its real failures map to exit 7 with its stderr (F34, F36) or a prompt failure (server down).
Skipped when the tools are not installed."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmd.errors import TestFailed
from llmd.kube.kubectl import Kubectl, Scope
from llmd.kube.portforward import PortForward
from llmd.proc import Runner, live_children

NS = "llmd-test"
POD = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "gw-1", "namespace": NS},
       "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}, "status": {"phase": "Running"}}
RESOURCES = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service", "verbs": ["get", "list"],
     "shortNames": ["svc"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"],
     "shortNames": ["po"]},
    {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
     "verbs": ["create", "get"]}]}


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code}


class FakeApiServer:
    """Just enough of the API for `kubectl get service(s)` and `kubectl port-forward svc/gw` (which fails the
    connection upgrade the way a vanished pod does)."""

    def __init__(self, services: dict[str, dict]) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                api.paths.append(self.path.split("?")[0])
                code, body = api.answer(self.path.split("?")[0])
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        self.services = services
        self.paths: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, path: str) -> tuple[int, dict]:
        base = f"/api/v1/namespaces/{NS}"
        if path == "/version":  # the reachability probe every cluster verb makes first
            return 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.1"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        if path == "/api/v1":
            return 200, RESOURCES
        if path == f"{base}/services":
            return 200, {"kind": "ServiceList", "apiVersion": "v1", "metadata": {},
                         "items": list(self.services.values())}
        if path.startswith(f"{base}/services/"):
            name = path.rsplit("/", 1)[1]
            if name in self.services:
                return 200, self.services[name]
            return 404, _status(404, "NotFound", f'services "{name}" not found')
        if path == f"{base}/pods":
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [POD]}
        if path == f"{base}/pods/gw-1":
            return 200, POD
        if path.endswith("/portforward"):
            return 400, _status(400, "BadRequest", "unable to upgrade connection: pod does not exist")
        return 404, _status(404, "NotFound", f"{path} not found")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def service(name: str) -> dict:
    return {"kind": "Service", "apiVersion": "v1", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": "gw"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def kubeconfig(tmp_path, server: str):
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    return str(path)


@pytest.fixture
def api():
    s = FakeApiServer({"gw": service("gw"), "infra-other-inference-gateway": service("infra-other-inference-gateway")})
    yield s
    s.close()


@pytest.fixture
def real_kubectl(real_tools, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # kubectl's discovery cache goes here, not to the real home
    return Runner(tools={"kubectl": str(real_tools / "kubectl")})


def test_f36_real_kubectl_failing_the_upgrade_is_exit_7_with_its_stderr(api, real_kubectl, tmp_path):
    kubectl = Kubectl(real_kubectl, Scope(NS, context="fake", kubeconfig=kubeconfig(tmp_path, api.url)))
    started = time.monotonic()
    with pytest.raises(TestFailed) as err:
        with PortForward(kubectl, "svc/gw", ready_timeout=10):
            pass
    assert time.monotonic() - started < 8
    assert "exited (code 1) before forwarding" in err.value.message
    assert "unable to upgrade connection: pod does not exist" in err.value.details
    assert any(p.endswith("/pods/gw-1/portforward") for p in api.paths)  # our argv reached the upgrade step
    assert live_children() == []


def test_f34_real_kubectl_missing_gateway_service(api, real_kubectl, tmp_path):
    from llmd.ops.endpoint import open_endpoint
    from llmd.settings import load_settings

    s = load_settings({"namespace": NS, "kubeconfig": kubeconfig(tmp_path, api.url), "kube_context": "fake"})
    with pytest.raises(TestFailed) as err, open_endpoint(settings=s, runner=real_kubectl):
        pass
    assert f"gateway Service {s.gateway_service} not found" in err.value.message
    assert "infra-other-inference-gateway" in err.value.message


def test_real_kubectl_with_the_api_server_down_fails_promptly(real_kubectl, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    kubectl = Kubectl(real_kubectl, Scope(NS, kubeconfig=kubeconfig(tmp_path, dead)))
    started = time.monotonic()
    with pytest.raises(TestFailed) as err:
        with PortForward(kubectl, "svc/gw", ready_timeout=10):
            pass
    assert time.monotonic() - started < 8
    assert "refused" in err.value.details
