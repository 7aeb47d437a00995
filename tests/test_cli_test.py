"""`llmd test` end to end through the real CLI boundary: --sim, --url, the port-forward path (fp and a real
fake-kubectl process), bad input (exit 2), smoke failures (exit 7), --perf, and Ctrl-C leaving no child behind."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from llmd import proc
from smoke_faults import FaultServer, Reply, pids_alive, write_fake_kubectl

MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # Settings' default model: what the deployment serves
NS = "llm-d-inference-scheduling"
SVC = "infra-inference-scheduling-inference-gateway-istio"


@pytest.fixture
def srv():
    s = FaultServer(MODEL)
    yield s
    s.close()


def test_sim_passes_and_prints_a_table(cli):
    r = cli("test", "--sim")
    assert r.exit_code == 0, r.stderr
    assert "smoke test" in r.stderr and "chat stream" in r.stderr and "smoke test passed" in r.stderr
    assert r.stdout == ""


def test_sim_json_on_stdout(cli):
    r = cli("test", "--sim", "--json", "--model", "org/tiny-model", "--max-tokens", "4")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["smoke"]["ok"] is True and doc["smoke"]["model"] == "org/tiny-model"
    assert doc["smoke"]["max_tokens"] == 4 and doc["perf"] is None
    assert [c["status"] for c in doc["smoke"]["checks"]] == ["ok"] * 5


def test_url_failure_exits_7_with_evidence_and_hint(cli, srv):
    srv.script("/v1/chat/completions", Reply(404, body=b"no route", content_type="text/plain"), repeat=True)
    r = cli("test", "--url", srv.url + "/v1/", "--json")
    assert r.exit_code == 7
    assert "smoke test failed: chat: HTTP 404" in r.stderr and "HTTPRoute missing or not attached" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["smoke"]["ok"] is False and doc["smoke"]["url"] == srv.url  # "/v1/" was normalised away
    assert doc["perf"] is None and doc["error"]["exit_code"] == 7
    assert doc["error"]["message"].startswith("smoke test failed: chat: HTTP 404")
    assert "HTTPRoute missing or not attached" in doc["error"]["hint"]


def test_url_uses_the_first_served_model_without_model_flag(cli, srv):
    r = cli("test", "--url", srv.url, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["smoke"]["model"] == MODEL


def test_api_key_is_sent_and_never_printed(cli, srv, monkeypatch):
    monkeypatch.setenv("LLMD_API_KEY", "sk-canary-4242")
    srv.script("/v1/chat/completions", Reply(401, body=b"bad key sk-canary-4242", content_type="text/plain"))
    r = cli("test", "--url", srv.url, "--json")
    assert r.exit_code == 7
    assert srv.hits("/v1/models")[0]["headers"]["authorization"] == "Bearer sk-canary-4242"
    assert "sk-canary-4242" not in r.stderr + r.stdout and "LLMD_API_KEY" in r.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (("--url", "http://x", "--sim"), "mutually exclusive"),
    (("--url", "ftp://x"), "http:// or https://"),
    (("--url", "http://user:pw@x"), "credentials"),
    (("--url", "http://x", "--local-port", "8000"), "--local-port applies only"),
    (("--local-port", "70000"), "out of range"),
    (("--sim", "--max-tokens", "0"), "--max-tokens 0"),
    (("--sim", "--prompt", " "), "--prompt is empty"),
    (("--sim", "--ready-timeout", "0"), "--ready-timeout"),
    (("--connect-timeout", "0"), "--connect-timeout 0 is out of range"),
    (("--connect-timeout", "601"), "--connect-timeout 601 is out of range"),
    (("--sim", "--connect-timeout", "5"), "--connect-timeout applies only to the port-forward"),
    (("--sim", "--perf", "--concurrency", "0"), "concurrency"),
])
def test_bad_input_exits_2_before_anything_runs(cli, fp, args, needle):
    r = cli("test", *args)
    assert r.exit_code == 2, r.stderr
    assert needle in r.stderr
    assert len(fp.calls) == 0


# ---- the cluster path with pytest-subprocess playing kubectl -------------------------------------------


CTX = "kind-llmd"


def _kubectl(*args):
    return ["kubectl", "--context", CTX, "--namespace", NS, "--request-timeout=10s", *args]


@pytest.fixture
def pinned(fp):
    """The current context read from the kubeconfig, then the one API-server probe, as every cluster verb does."""
    fp.register(["kubectl", "--request-timeout=10s", "config", "current-context"], stdout=CTX + "\n")
    base = ["kubectl", "--context", CTX, "--request-timeout=10s"]
    fp.register([*base, "config", "view", "--minify", "--output", "json"],
                stdout=json.dumps({"clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}]}))
    fp.register([*base, "version", "--output", "json"],
                stdout=json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}, "serverVersion": {"gitVersion": "v1"}}))


def _register_port_forward(fp, port: int):
    import threading

    done = threading.Event()

    def live(process):
        process.stdout.seek(0)
        done.wait(30)

    fp.register(_kubectl("port-forward", "--address", "127.0.0.1", f"svc/{SVC}", ":80"),
                stdout=[f"Forwarding from 127.0.0.1:{port} -> 80"], callback=live,
                signal_callback=lambda _p, _sig: done.set())


def test_default_path_port_forwards_to_the_gateway_service(cli, fp, fake_tools_on_path, pinned, srv):
    fp.register(_kubectl("get", "service", SVC, "--output", "json"), stdout=json.dumps({"metadata": {"name": SVC}}))
    _register_port_forward(fp, srv.port)
    r = cli("test", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)["smoke"]
    assert doc["endpoint"]["via_port_forward"] is True and "not a neutral path" in doc["endpoint"]["note"]
    assert doc["model"] == MODEL and doc["url"] == srv.url
    assert proc.live_children() == []


def test_f34_gateway_service_missing_lists_what_exists(cli, fp, fake_tools_on_path, pinned):
    fp.register(_kubectl("get", "service", SVC, "--output", "json"), returncode=1,
                stderr=f'Error from server (NotFound): services "{SVC}" not found')
    items = [{"metadata": {"name": n}} for n in ("infra-other-inference-gateway", "vllm", "gaie-x-epp")]
    fp.register(_kubectl("get", "services", "--output", "json"), stdout=json.dumps({"items": items}))
    r = cli("test")
    assert r.exit_code == 7
    assert f"gateway Service {SVC} not found" in r.stderr
    assert "*-inference-gateway*: infra-other-inference-gateway" in r.stderr
    assert "--environment" in r.stderr  # the hint names the knob that picks the Service name


def test_json_service_missing_still_prints_one_document(cli, fp, fake_tools_on_path, pinned):
    fp.register(_kubectl("get", "service", SVC, "--output", "json"), returncode=1,
                stderr=f'Error from server (NotFound): services "{SVC}" not found')
    fp.register(_kubectl("get", "services", "--output", "json"), stdout=json.dumps({"items": []}))
    r = cli("test", "--json")
    assert r.exit_code == 7
    doc = json.loads(r.stdout)  # exactly one document: json.loads rejects trailing data
    assert doc["smoke"] is None and doc["perf"] is None
    err = doc["error"]
    assert err["exit_code"] == 7 and f"gateway Service {SVC} not found" in err["message"]
    assert "--environment" in err["hint"] and err["details"] == "all Services in " + NS + ": (none)"
    assert f"gateway Service {SVC} not found" in r.stderr  # humans still get it on stderr


def test_json_port_forward_that_dies_at_once_prints_the_error_document(cli, fp, fake_tools_on_path, pinned):
    fp.register(_kubectl("get", "service", SVC, "--output", "json"), stdout=json.dumps({"metadata": {"name": SVC}}))
    fp.register(_kubectl("port-forward", "--address", "127.0.0.1", f"svc/{SVC}", ":80"), returncode=1,
                stderr=["error: unable to forward port because pod is not running. Current status=Pending"])
    r = cli("test", "--json")
    assert r.exit_code == 7
    doc = json.loads(r.stdout)
    assert doc["smoke"] is None and doc["perf"] is None
    assert "exited (code 1) before forwarding" in doc["error"]["message"]
    assert "pod is not running" in doc["error"]["details"] and doc["error"]["hint"]
    assert proc.live_children() == []


def test_connect_timeout_bounds_a_port_forward_that_never_forwards(cli, fp, fake_tools_on_path, pinned):
    import threading

    fp.register(_kubectl("get", "service", SVC, "--output", "json"), stdout=json.dumps({"metadata": {"name": SVC}}))
    done = threading.Event()
    fp.register(_kubectl("port-forward", "--address", "127.0.0.1", f"svc/{SVC}", ":80"),
                callback=lambda _p: done.wait(30), signal_callback=lambda _p, _sig: done.set())
    started = time.monotonic()
    r = cli("test", "--json", "--connect-timeout", "0.5")
    took = time.monotonic() - started
    assert r.exit_code == 7
    assert took < 5, f"--connect-timeout 0.5 took {took:.1f}s"
    doc = json.loads(r.stdout)
    assert "printed no 'Forwarding from' line within 0.5s" in doc["error"]["message"]
    assert done.is_set()  # the child was signalled, not left behind
    assert proc.live_children() == []


def test_json_bad_input_is_a_document_too_but_parse_errors_are_not(cli, fp):
    r = cli("test", "--sim", "--json", "--max-tokens", "0")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc == {"smoke": None, "perf": None, "error": {
        "message": "--max-tokens 0 is out of range", "hint": doc["error"]["hint"], "details": None, "exit_code": 2}}
    assert "1-65536" in doc["error"]["hint"]
    r = cli("test", "--json", "-n", "Bad_NS")  # settings validation: the Ui did not exist yet
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["exit_code"] == 2
    r = cli("test", "--sim", "--json", "--max-tokens", "many")  # click rejects it before the command runs
    assert r.exit_code == 2 and r.stdout == "" and "--max-tokens" in r.stderr
    assert len(fp.calls) == 0


def test_json_threshold_breach_prints_smoke_perf_and_the_error(cli, srv):
    from smoke_faults import chat_reply, stream_reply

    # The smoke test gets its two good chat answers; every perf request then fails with 500.
    srv.script("/v1/chat/completions", chat_reply(MODEL), stream_reply(MODEL, True),
               Reply(500, body=b"boom", content_type="text/plain"), repeat=True)
    r = cli("test", "--url", srv.url, "--json", "--perf", "--requests", "3", "--concurrency", "1",
            "--output-tokens", "4", "--input-tokens", "8", "--report-file", "perf.json")
    assert r.exit_code == 8, r.stderr
    doc = json.loads(r.stdout)
    assert doc["smoke"]["ok"] is True and doc["perf"]["breaches"]
    assert doc["error"]["exit_code"] == 8


def test_missing_kubectl_exits_3(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = cli("test")
    assert r.exit_code == 3 and "kubectl" in r.stderr


def test_perf_runs_after_the_smoke_test(cli, tmp_path):
    out = tmp_path / "perf.json"
    r = cli("test", "--sim", "--perf", "--requests", "6", "--concurrency", "2", "--output-tokens", "4",
            "--input-tokens", "8", "--report-file", str(out), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["smoke"]["ok"] and doc["perf"]["complete"] and doc["perf"]["breaches"] == []
    assert doc["error"] is None
    assert json.loads(out.read_text())["stages"][0]["requests"]["ok"] == 6


# ---- real processes: a fake kubectl binary; no child may survive ----------------------------------------


def _fake_cluster(tmp_path, srv, *, route=True, epp_ready=1):
    """A fake cluster: the gateway Service, an accepted HTTPRoute (unless route=False), the pool and the EPP."""
    from llmd.settings import load_settings

    s = load_settings({})
    objects = {f"service-{SVC}": {"metadata": {"name": SVC}}, "pods": {"items": []},
               f"inferencepools.inference.networking.k8s.io-{s.pool_name}": {
                   "kind": "InferencePool", "metadata": {"name": s.pool_name}},
               f"deployments.apps-{s.epp_name}": {"kind": "Deployment", "metadata": {"name": s.epp_name},
                                                 "spec": {"replicas": 1}, "status": {"readyReplicas": epp_ready}}}
    if route:
        objects[f"httproutes.gateway.networking.k8s.io-{s.httproute_name}"] = {
            "kind": "HTTPRoute", "metadata": {"name": s.httproute_name},
            "spec": {"parentRefs": [{"name": s.gateway_name}]},
            "status": {"parents": [{"parentRef": {"name": s.gateway_name}, "conditions": [
                {"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}]}]}}
    state = tmp_path / "kube"
    exe = write_fake_kubectl(state, srv.port, objects)
    return state, exe


def test_missing_httproute_behind_the_gateway_fails_fast_with_the_fix(cli, srv, tmp_path, monkeypatch):
    # The gateway answers 404 (as it does with no route): the smoke test must not wait out --ready-timeout.
    srv.script("/v1/models", Reply(404, body=b"", content_type="text/plain"), repeat=True)
    state, exe = _fake_cluster(tmp_path, srv, route=False, epp_ready=0)
    monkeypatch.setenv("LLMD_KUBECTL", str(exe))
    started = time.monotonic()
    r = cli("test", "--json", "--ready-timeout", "120")
    took = time.monotonic() - started
    assert r.exit_code == 7, r.stderr
    assert took < 15, f"took {took:.1f}s"
    err = json.loads(r.stdout)["error"]
    assert "HTTPRoute" in err["message"] and "not found" in err["message"]
    assert "`llmd deploy`" in err["hint"] and "httproute.yaml" in err["hint"]
    assert "EPP not ready" in err["details"]
    calls = [json.loads(line) for line in (state / "calls.log").read_text().splitlines()]
    probes = [c for c in calls if "--ignore-not-found" in c]
    assert 2 <= len(probes) <= 4 and all(c[c.index("get") + 1].startswith("httproutes.") for c in probes)
    assert pids_alive(state) == []


def test_real_port_forward_child_and_its_group_are_gone_after_the_run(cli, srv, tmp_path, monkeypatch):
    state, exe = _fake_cluster(tmp_path, srv)
    monkeypatch.setenv("LLMD_KUBECTL", str(exe))
    r = cli("test")
    assert r.exit_code == 0, r.stderr
    assert "via port-forward" in r.stderr
    assert (state / "pids").exists() and pids_alive(state) == []


def test_ctrl_c_mid_test_exits_130_and_leaves_no_child(srv, tmp_path):
    # The gateway never becomes ready (503 forever), so `llmd test` sits in the warm-up loop when SIGINT lands.
    srv.script("/v1/models", Reply(503, body=b"no healthy upstream", content_type="text/plain"), repeat=True)
    state, exe = _fake_cluster(tmp_path, srv)
    env = {**os.environ, "LLMD_KUBECTL": str(exe), "LLMD_STATE_DIR": str(tmp_path / "st")}
    p = subprocess.Popen([sys.executable, "-m", "llmd", "test", "--ready-timeout", "60", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while len(srv.hits("/v1/models")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(srv.hits("/v1/models")) >= 2, "llmd never reached the warm-up loop"
        assert pids_alive(state, settle_s=0), "the port-forward child should be running now"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert json.loads(out) == {"smoke": None, "perf": None, "error": {
        "message": "interrupted", "hint": None, "details": None, "exit_code": 130}}
    assert pids_alive(state) == []


def test_f53_ctrl_c_during_perf_through_port_forward_exits_130_with_partial_report(srv, tmp_path):
    state, exe = _fake_cluster(tmp_path, srv)
    out = tmp_path / "perf.json"
    env = {**os.environ, "LLMD_KUBECTL": str(exe), "LLMD_STATE_DIR": str(tmp_path / "st")}
    p = subprocess.Popen([sys.executable, "-m", "llmd", "test", "--perf", "--duration", "30s", "--concurrency", "1",
                          "--output-tokens", "4", "--input-tokens", "8", "--report-file", str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while len(srv.hits("/v1/chat/completions")) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)  # smoke sends 2 chat requests; more means the load test is running
        assert len(srv.hits("/v1/chat/completions")) >= 8, "the perf stage never started"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, err
    assert pids_alive(state) == []
    report = json.loads(out.read_text())
    assert report["complete"] is False and report["environment"]["via_port_forward"] is True


def test_perf_prompt_longer_than_the_served_max_model_len_exits_2_before_any_load(cli):  # F10
    # /v1/models tells the served max_model_len (vLLM and llmd sim list it); a workload that cannot fit is a
    # usage error before the first perf request, not a run of HTTP 400s ending in exit 8
    r = cli("test", "--sim", "--perf", "--requests", "4", "--input-tokens", "5000", "--output-tokens", "4", "--json")
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["smoke"]["ok"] and doc["perf"] is None
    assert "exceed max_model_len 4096" in doc["error"]["message"]


def test_sim_perf_shared_prefix_cache_hits_cut_ttft(cli, tmp_path):
    # the embedded sim simulates the prefix KV cache; a hit must also show where it matters, in TTFT
    out = tmp_path / "sp.json"
    r = cli("test", "--sim", "--perf", "--workload", "shared-prefix", "--groups", "2", "--prompts-per-group", "4",
            "--system-prompt-len", "1024", "--question-len", "16", "--output-tokens", "2", "--requests", "8",
            "--report-file", str(out))
    assert r.exit_code == 0, r.stderr
    recs = json.loads(out.read_text())["records"]
    cold = [x["ttft_ms"] for x in recs if x["cached_tokens"] == 0]
    warm = [x["ttft_ms"] for x in recs if x["cached_tokens"] >= 1000]
    assert len(cold) == 2 and len(warm) == 6
    assert min(cold) > max(warm) + 20, (cold, warm)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_perf_requests_carry_the_api_key_too(cli, srv, monkeypatch, tmp_path, workers):
    # the smoke test sent $LLMD_API_KEY but the load engine did not: every perf request was a 401
    monkeypatch.setenv("LLMD_API_KEY", "sk-canary-4242")
    r = cli("test", "--url", srv.url, "--perf", "--requests", "4", "--concurrency", "2", "--workers", workers,
            "--output-tokens", "2", "--input-tokens", "4", "--report-file", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.stderr
    perf = [h for h in srv.hits("/v1/chat/completions") if h["body"].get("ignore_eos")]  # the smoke's have none
    assert len(perf) == 4
    assert all({k.lower(): v for k, v in h["headers"].items()}.get("authorization") == "Bearer sk-canary-4242"
               for h in perf)
    assert "sk-canary-4242" not in r.stderr + r.stdout + (tmp_path / "r.json").read_text()
