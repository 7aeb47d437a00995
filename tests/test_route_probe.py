"""The cluster probe behind a gateway that keeps answering 404/503: a missing or rejected HTTPRoute fails the
smoke test fast (exit 7, condition + fix), an EPP with 0 ready replicas is named in the evidence, and the probe
stays cheap (one read-only kubectl call, rate-limited, given up when the cluster cannot be read).
pytest-subprocess plays kubectl; the HTTP side is a real socket on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from llmd.kube.kubectl import Kubectl, Scope
from llmd.ops.endpoint import Endpoint
from llmd.ops.route_probe import RouteProbe
from llmd.ops.smoke import RetryPolicy, Smoke
from llmd.proc import Runner
from llmd.settings import load_settings
from smoke_faults import FaultServer, Reply

NS = "llmd-test"


@pytest.fixture
def s():
    return load_settings({"namespace": NS})


def probe_argv(s):
    return ["kubectl", "--namespace", NS, "--request-timeout=5s", "get",
            f"httproutes.gateway.networking.k8s.io/{s.httproute_name}",
            f"inferencepools.inference.networking.k8s.io/{s.pool_name}", f"deployments.apps/{s.epp_name}",
            "--ignore-not-found", "--output", "json"]


def route(s, *, parents=None, conditions=None):
    obj = {"kind": "HTTPRoute", "metadata": {"name": s.httproute_name},
           "spec": {"parentRefs": [{"name": n} for n in (parents or [s.gateway_name])]}}
    if conditions is not None:
        obj["status"] = {"parents": [{"parentRef": {"name": s.gateway_name}, "conditions": conditions}]}
    return obj


def cond(ctype, status, reason="", message=""):
    return {"type": ctype, "status": status, "reason": reason, "message": message}


ACCEPTED = [cond("Accepted", "True", "Accepted"), cond("ResolvedRefs", "True", "ResolvedRefs")]


def pool(s):
    return {"kind": "InferencePool", "metadata": {"name": s.pool_name}}


def epp(s, ready):
    return {"kind": "Deployment", "metadata": {"name": s.epp_name}, "spec": {"replicas": 1},
            "status": {"readyReplicas": ready}}


def listing(*objs):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)})


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(s, clock=None, **kw):
    return RouteProbe(Kubectl(Runner(), Scope(NS)), s, clock=clock or Clock(), **kw)


def test_missing_route_is_fatal_on_the_second_probe_with_the_fix(fp, fake_tools_on_path, s, tmp_path):
    fp.register(probe_argv(s), stdout=listing(pool(s), epp(s, 1)), occurrences=2)
    manifest = tmp_path / "httproute.yaml"
    manifest.write_text("kind: HTTPRoute\n")
    clock = Clock()
    p = make(s, clock, route_manifest=manifest)
    first = p.poll()
    assert not first.fatal and "re-checking the HTTPRoute" in first.problems
    assert p.poll() is None  # not due yet: no kubectl call
    assert len(fp.calls) == 1
    clock.t += 3.0
    second = p.poll()
    assert second.fatal and len(fp.calls) == 2
    assert f"HTTPRoute {s.httproute_name} not found in namespace {NS}" in second.message
    assert "`llmd deploy`" in second.hint and f"kubectl apply -n {NS} -f {manifest}" in second.hint


def test_without_a_rendered_manifest_the_fix_says_how_to_render_one(fp, fake_tools_on_path, s, tmp_path):
    fp.register(probe_argv(s), stdout="")  # --ignore-not-found with nothing found prints nothing
    finding = make(s, route_manifest=tmp_path / "absent.yaml", confirm=1).poll()
    assert finding.fatal and "llmd render --out rendered" in finding.hint
    assert "rendered/manifests/httproute.yaml" in finding.hint
    assert "EPP not ready: Deployment" in finding.text() and f"InferencePool {s.pool_name} not found" in finding.text()


@pytest.mark.parametrize(("conditions", "says", "fix"), [
    ([cond("Accepted", "False", "NotAllowedByListeners", "no listener allows routes from llmd-test"),
      cond("ResolvedRefs", "True")], "Accepted=False (NotAllowedByListeners): no listener allows", "parentRef"),
    ([cond("Accepted", "True"), cond("ResolvedRefs", "False", "InvalidKind",
                                     "backendRef group inference.networking.x-k8s.io is not supported")],
     "ResolvedRefs=False (InvalidKind): backendRef group inference.networking.x-k8s.io", "group "
     "inference.networking.k8s.io"),
])
def test_rejected_route_is_fatal_with_the_condition_message(fp, fake_tools_on_path, s, conditions, says, fix):
    fp.register(probe_argv(s), stdout=listing(route(s, conditions=conditions), pool(s), epp(s, 1)), occurrences=2)
    clock = Clock()
    p = make(s, clock)
    assert not p.poll().fatal
    clock.t += 5
    finding = p.poll()
    assert finding.fatal and says in finding.message and fix in finding.hint and "llmd deploy" in finding.hint


def test_a_rejection_that_clears_is_not_fatal(fp, fake_tools_on_path, s):
    rejected = [cond("Accepted", "True"), cond("ResolvedRefs", "False", "BackendNotFound")]
    fp.register(probe_argv(s), stdout=listing(route(s, conditions=rejected), pool(s), epp(s, 1)))
    fp.register(probe_argv(s), stdout=listing(route(s, conditions=ACCEPTED), pool(s), epp(s, 1)))
    clock = Clock()
    p = make(s, clock)
    assert not p.poll().fatal
    clock.t += 5
    finding = p.poll()
    assert not finding.fatal and finding.problems == []
    assert f"HTTPRoute {s.httproute_name} Accepted, ResolvedRefs" in finding.text()


def test_route_attached_to_another_gateway_is_fatal(fp, fake_tools_on_path, s):
    fp.register(probe_argv(s), stdout=listing(route(s, parents=["other-gateway"]), pool(s), epp(s, 1)))
    finding = make(s, confirm=1).poll()
    assert finding.fatal and f"attached to Gateway other-gateway, not to Gateway {s.gateway_name}" in finding.message


def test_epp_not_ready_and_a_route_without_status_are_evidence_not_verdicts(fp, fake_tools_on_path, s):
    fp.register(probe_argv(s), stdout=listing(route(s), pool(s), epp(s, 0)))
    finding = make(s, confirm=1).poll()
    assert not finding.fatal
    assert f"EPP not ready: Deployment {s.epp_name} 0/1 ready" in finding.problems
    assert "no status from the gateway controller yet" in finding.text()


def test_an_unreadable_cluster_is_said_once_and_never_asked_again(fp, fake_tools_on_path, s):
    fp.register(probe_argv(s), returncode=1, stderr='Error from server (Forbidden): httproutes is forbidden')
    clock = Clock()
    p = make(s, clock)
    finding = p.poll()
    assert not finding.fatal and "cluster status unavailable" in finding.text() and "forbidden" in finding.text()
    clock.t += 60
    assert p.poll() is None and p.evidence(fresh=True) == finding.text()
    assert len(fp.calls) == 1


def test_polls_are_not_echoed_unless_verbose(fp, fake_tools_on_path, s):
    fp.register(probe_argv(s), stdout=listing(route(s, conditions=ACCEPTED), pool(s), epp(s, 1)))
    shown, detail = [], []
    runner = Runner(echo=shown.append)
    RouteProbe(Kubectl(runner, Scope(NS)), s, echo=detail.append).poll()
    assert shown == [] and len(detail) == 1 and "get httproutes" in detail[0]
    assert runner.echo == shown.append  # restored


# ---- through the smoke test: real HTTP on 127.0.0.1 ---------------------------------------------------


@pytest.fixture
def srv():
    server = FaultServer(load_settings({}).served_model_name)
    yield server
    server.close()


def smoke(srv, probe, ready_timeout):
    ep = Endpoint("gateway", "test gateway", base_url=srv.url, route_probe=probe, names={})
    policy = RetryPolicy(base=0.05, cap=0.2, window_s=2)
    return Smoke(ep, model=None, prompt="hi", max_tokens=4, ready_timeout=ready_timeout, policy=policy)


def test_404_behind_a_gateway_with_no_route_fails_fast_not_at_the_deadline(fp, fake_tools_on_path, s, srv):
    srv.script("/v1/models", Reply(404, body=b"", content_type="text/plain"), repeat=True)
    fp.register(probe_argv(s), stdout=listing(pool(s), epp(s, 1)), occurrences=3)
    probe = RouteProbe(Kubectl(Runner(), Scope(NS)), s, interval=0.3)
    started = time.monotonic()
    report = smoke(srv, probe, ready_timeout=30).run()
    took = time.monotonic() - started
    assert took < 5, f"waited {took:.1f}s of a 30s deadline"
    first = report.failed_checks[0]
    assert first.name == "models" and f"HTTPRoute {s.httproute_name} not found" in first.detail
    assert "/v1/models answered HTTP 404" in first.detail and "llmd deploy" in first.hint
    assert "HTTP 404" in first.evidence and "cluster: HTTPRoute" in first.evidence
    assert [c.status for c in report.checks[1:]] == ["skipped"] * 4


def test_503_until_the_deadline_names_the_epp_in_the_evidence(fp, fake_tools_on_path, s, srv):
    srv.script("/v1/models", Reply(503, body=b"no healthy upstream", content_type="text/plain"), repeat=True)
    fp.register(probe_argv(s), stdout=listing(route(s, conditions=ACCEPTED), pool(s), epp(s, 0)), occurrences=20)
    probe = RouteProbe(Kubectl(Runner(), Scope(NS)), s, interval=0.3)
    report = smoke(srv, probe, ready_timeout=1.0).run()
    first = report.failed_checks[0]
    assert "no healthy upstream" in first.detail and "still failing after" in first.detail
    assert f"EPP not ready: Deployment {s.epp_name} 0/1 ready" in first.evidence
    assert probe.probes <= 6  # rate-limited: about one per interval, plus the fresh one for the report


def test_url_endpoints_never_ask_the_cluster(fp, srv):
    srv.script("/v1/models", Reply(404, body=b"", content_type="text/plain"), repeat=True)
    ep = Endpoint("url", "direct", base_url=srv.url)
    report = Smoke(ep, model=None, prompt="hi", max_tokens=4, ready_timeout=1.0).run()
    assert not report.ok and len(fp.calls) == 0
