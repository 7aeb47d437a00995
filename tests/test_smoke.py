"""Smoke test over real sockets on 127.0.0.1 against a scripted fault server (rows F40-F45, F50, F51)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import socket
import time

import pytest

from llmd.ops.endpoint import Endpoint
from llmd.ops.smoke import RETRY_AFTER_CAP_S, RetryPolicy, backoff, retry_after, run_smoke
from smoke_faults import FaultServer, Reply, chat_reply, stream_reply

MODEL = "test-model"


@pytest.fixture
def srv():
    s = FaultServer(MODEL)
    yield s
    s.close()


def ep(url: str, kind: str = "url", **kw) -> Endpoint:
    return Endpoint(kind, f"{url} (test)", base_url=url, **kw)


FAST = RetryPolicy(base=0.02)  # the same retry logic with short backoff steps (Retry-After is still honoured)


def smoke(server_or_url, *, model=MODEL, max_tokens=8, deadline=5.0, kind="url", **kw):
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
    kw.setdefault("policy", FAST)
    return run_smoke(ep(url, kind), model, "Say hi", max_tokens, deadline, None, **kw)


def check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_healthy_server_passes_all_checks_and_sends_what_vllm_expects(srv):
    report = smoke(srv, model=None)  # no --model with --url: the first served model is used
    assert report.ok, report.to_dict()
    assert [c.name for c in report.checks] == ["models", "chat", "chat stream", "completion", "completion stream"]
    assert report.model == MODEL
    stream_body = srv.hits("/v1/chat/completions")[1]["body"]
    assert stream_body["stream"] is True and stream_body["stream_options"] == {"include_usage": True}
    assert stream_body["model"] == MODEL and stream_body["max_tokens"] == 8
    assert srv.hits("/v1/completions")[0]["body"]["prompt"] == "Say hi"
    doc = report.to_dict()
    assert json.loads(json.dumps(doc))["checks"][1]["status"] == "ok"
    assert doc["endpoint"]["via_port_forward"] is False


def test_against_the_llmd_simulator():
    sim = pytest.importorskip("llmd.sim.server")
    from llmd.sim.config import SimConfig

    handle = sim.run_in_thread(SimConfig(port=0, model="sim-model"))
    try:
        report = smoke(handle.url.rstrip("/"), model=None, max_tokens=4)
    finally:
        handle.stop()
    assert report.ok, report.to_dict()
    assert report.model == "sim-model"


def test_f40_warmup_503_then_ready(srv):
    srv.script("/v1/models", *[Reply(503, body=b"no healthy upstream", content_type="text/plain")] * 3,
               Reply(json={"data": [{"id": MODEL}]}))
    report = smoke(srv)
    models = check(report, "models")
    assert report.ok and models.attempts == 4
    assert "warm-up" in models.detail and "3x HTTP 503" in models.detail


def test_f40_gateway_warmup_tolerates_404_but_a_direct_url_does_not(srv):
    srv.script("/v1/models", Reply(404, body=b"", content_type="text/plain"), Reply(json={"data": [{"id": MODEL}]}))
    assert smoke(srv, kind="gateway").ok
    srv.script("/v1/models", Reply(404, body=b"", content_type="text/plain"), repeat=True)
    started = time.monotonic()
    report = smoke(srv, deadline=30)
    assert not report.ok and time.monotonic() - started < 3  # no waiting out the deadline on a wrong URL
    assert "HTTPRoute missing or not attached" in check(report, "models").hint


def test_f40_persistent_503_fails_at_the_deadline_with_pod_evidence(srv):
    srv.script("/v1/models", Reply(503, body=b"no healthy upstream", content_type="text/plain"), repeat=True)
    endpoint = ep(srv.url, "gateway", names={"namespace": "ns", "httproute": "r", "gateway": "g", "pool": "p",
                                            "epp": "p-epp"},
                  diagnose=lambda: "pods:\n  ms-decode-0  Pending  ready 0/1")
    started = time.monotonic()
    report = run_smoke(endpoint, MODEL, "hi", 4, 1.0, None, policy=FAST)
    took = time.monotonic() - started
    models = check(report, "models")
    assert not report.ok and 0.5 < took < 4
    assert models.attempts >= 2 and "no healthy upstream" in models.detail
    assert "ms-decode-0  Pending" in models.evidence
    assert "kubectl logs deploy/p-epp -n ns" in models.hint
    assert all(c.skipped for c in report.checks[1:])


def test_f42_429_retry_after_is_honoured(srv):
    srv.script("/v1/chat/completions", Reply(429, json={"error": "slow down"}, headers={"retry-after": "2"}),
               chat_reply(MODEL))
    report = smoke(srv)
    hits = srv.hits("/v1/chat/completions")
    assert report.ok
    assert hits[1]["t"] - hits[0]["t"] >= 1.9
    chat = check(report, "chat")
    assert chat.attempts == 2 and "Retry-After" in chat.detail


def test_retry_after_is_capped_and_parses_http_dates():
    assert retry_after("2") == 2.0
    assert retry_after("3600") == RETRY_AFTER_CAP_S
    assert retry_after("garbage") is None and retry_after(None) is None
    from email.utils import formatdate

    assert 0 < retry_after(formatdate(time.time() + 5, usegmt=True)) <= 5
    for attempt in range(1, 8):
        assert 0 < backoff(attempt) <= 4.0


def test_f43_404_is_not_retried_and_names_the_route(srv):
    srv.script("/v1/chat/completions", Reply(404, body=b"route not found", content_type="text/plain"), repeat=True)
    endpoint = ep(srv.url, names={"namespace": "llm-d", "httproute": "llm-d-x", "gateway": "infra-x-inference-gateway",
                                  "pool": "gaie-x", "epp": "gaie-x-epp"})
    report = run_smoke(endpoint, MODEL, "hi", 4, 5.0, None)
    chat = check(report, "chat")
    assert not report.ok and chat.attempts == 1 and len(srv.hits("/v1/chat/completions")) == 1
    assert "HTTPRoute missing or not attached" in chat.hint and "kubectl get httproute llm-d-x -n llm-d" in chat.hint
    assert all(c.skipped for c in report.checks[2:])  # the same route would fail every later call


def test_f44_fault_filter_abort_retried_once_with_pool_hint(srv):
    srv.script("/v1/chat/completions", Reply(500, body=b"fault filter abort", content_type="text/plain"), repeat=True)
    report = smoke(srv)
    chat = check(report, "chat")
    assert len(srv.hits("/v1/chat/completions")) == 2 and chat.attempts == 2
    assert "fault filter abort" in chat.detail
    assert "InferencePool" in chat.hint and "inference.networking.k8s.io" in chat.hint


def test_f45_context_length_400_reports_sizes_without_retry(srv):
    msg = {"error": {"message": "This model's maximum context length is 1024 tokens. However, you requested 5000",
                     "type": "BadRequestError", "code": 400}}
    srv.script("/v1/chat/completions", Reply(400, json=msg))
    report = run_smoke(ep(srv.url), MODEL, "x" * 400, 4600, 5.0, None)
    chat = check(report, "chat")
    assert len(srv.hits("/v1/chat/completions")) == 1
    assert "prompt is 400 characters" in chat.detail and "max_tokens=4600" in chat.detail
    assert "--max-tokens" in chat.hint and "maximum context length" in chat.evidence


def test_f50_html_200_shows_content_type_and_first_200_bytes_redacted(srv):
    from llmd import redact

    redact.register("sekrit-token-123")
    page = b"<html><body>502 Bad Gateway sekrit-token-123 " + b"x" * 500 + b"</body></html>"
    srv.script("/v1/chat/completions", Reply(200, body=page, content_type="text/html"))
    report = smoke(srv)
    chat = check(report, "chat")
    assert not chat.ok and "not JSON" in chat.detail
    assert "content-type text/html" in chat.evidence and "<html><body>502 Bad Gateway" in chat.evidence
    assert "sekrit-token-123" not in chat.evidence and "x" * 300 not in chat.evidence
    assert check(report, "chat stream").ok  # a content failure does not stop the other checks


def test_f50_json_without_choices(srv):
    srv.script("/v1/completions", Reply(json={"id": "x", "object": "text_completion", "model": MODEL}))
    report = smoke(srv)
    assert not report.ok and "without choices" in check(report, "completion").detail


def test_f51_model_mismatch_is_a_warning(srv):
    srv.script("/v1/chat/completions", chat_reply("other-model"))
    report = smoke(srv)
    chat = check(report, "chat")
    assert report.ok and chat.status == "warn" and "other-model" in chat.warning
    assert report.warnings == [f"chat: {chat.warning}"]


def test_f51_empty_content_is_accepted_only_with_finish_reason_length(srv):
    srv.script("/v1/chat/completions", chat_reply(MODEL, content="", finish="length"))
    srv.script("/v1/completions", Reply(json={"model": MODEL, "choices": [{"text": "", "finish_reason": "stop"}],
                                              "usage": {"completion_tokens": 0}}))
    report = smoke(srv, max_tokens=1)
    assert check(report, "chat").ok and "accepted" in check(report, "chat").detail
    assert not check(report, "completion").ok and "finish_reason=stop" in check(report, "completion").detail


def test_missing_usage_fails(srv):
    srv.script("/v1/chat/completions", chat_reply(MODEL, usage=False))
    srv.script("/v1/completions", stream_reply(MODEL, False, usage=False))  # only read by the stream check
    report = smoke(srv)
    assert "no usage" in check(report, "chat").detail


def test_error_frame_inside_a_200_stream_fails_without_retry(srv):
    bad = stream_reply(MODEL, True)
    bad.frames = [bad.frames[0], json.dumps({"error": {"message": "engine dead", "code": 500}}), "[DONE]"]
    srv.script("/v1/chat/completions", chat_reply(MODEL), bad)
    report = smoke(srv)
    s = check(report, "chat stream")
    assert not s.ok and "stream_error" in s.detail and "engine dead" in s.evidence
    assert len(srv.hits("/v1/chat/completions")) == 2  # the non-stream call, then ONE stream attempt


def test_stream_cut_midway_is_truncated(srv):
    cut = stream_reply(MODEL, True, done=False, usage=False, finish=None)
    cut.close_early = True
    srv.script("/v1/chat/completions", chat_reply(MODEL), cut)
    s = check(smoke(srv), "chat stream")
    assert not s.ok and "truncated" in s.detail


def test_persistent_503_retries_are_capped(srv):
    srv.script("/v1/chat/completions", Reply(503, body=b"no healthy upstream", content_type="text/plain"), repeat=True)
    report = smoke(srv, policy=RetryPolicy(max_attempts=3, window_s=5, base=0.02))
    chat = check(report, "chat")
    assert len(srv.hits("/v1/chat/completions")) == 3 and chat.attempts == 3
    assert "2 retries" in chat.detail


def test_model_not_served_fails_fast_with_the_served_list(srv):
    started = time.monotonic()
    report = smoke(srv, model="meta-llama/Llama-3.1-8B-Instruct", deadline=30)
    models = check(report, "models")
    assert not report.ok and time.monotonic() - started < 3
    assert MODEL in models.detail and f"--model {MODEL}" in models.hint


def test_nothing_listening_fails_within_the_deadline():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    started = time.monotonic()
    report = smoke(f"http://127.0.0.1:{port}", deadline=1.0)
    assert not report.ok and time.monotonic() - started < 4
    assert "cannot connect" in check(report, "models").detail


def test_stalled_response_is_bounded_by_the_read_timeout(srv):
    srv.script("/v1/chat/completions", Reply(delay=3, json={}))
    started = time.monotonic()
    report = smoke(srv, read_timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert "no response" in check(report, "chat").detail


def test_a_trickling_stream_is_cut_at_the_request_deadline(srv):
    slow = stream_reply(MODEL, True, pieces=tuple("abcdefghij"))
    slow.frame_delay = 0.25
    srv.script("/v1/chat/completions", chat_reply(MODEL), slow)
    started = time.monotonic()
    report = smoke(srv, request_timeout=0.8)
    s = check(report, "chat stream")
    assert not s.ok and "timeout" in s.detail and "0.8s deadline" in s.evidence
    assert time.monotonic() - started < 2.5


@pytest.fixture
def sim_factory():
    sim = pytest.importorskip("llmd.sim.server")
    from llmd.sim.config import FaultSpec, SimConfig

    handles = []

    def start(**kw):
        faults = tuple(FaultSpec.parse(f) for f in kw.pop("faults", ()))
        h = sim.run_in_thread(SimConfig(port=0, model=MODEL, faults=faults, **kw))
        handles.append(h)
        return h.url.rstrip("/")

    yield start
    for h in handles:
        h.stop()


def test_f40_against_the_simulator_warmup_404_then_503(sim_factory):
    url = sim_factory(warmup_404=1, warmup_503=2)
    report = run_smoke(ep(url, "gateway"), MODEL, "hi", 4, 10.0, None, policy=FAST)
    assert report.ok, report.to_dict()
    assert check(report, "models").attempts == 4


@pytest.mark.parametrize(("fault", "check_name", "needle"), [
    ("status=404", "chat", "HTTPRoute missing"),
    ("status=500", "chat", None),
    ("html_200", "chat", "proxy"),
    ("no_choices", "chat", "proxy"),
    ("context_length", "chat", "--max-tokens"),
])
def test_simulator_faults_fail_the_smoke_test_with_a_hint(sim_factory, fault, check_name, needle):
    url = sim_factory(faults=[fault])
    report = smoke(url, policy=RetryPolicy(max_attempts=2, window_s=3, base=0.02))
    c = check(report, check_name)
    assert not report.ok and not c.ok
    if needle:
        assert needle in c.hint


@pytest.mark.parametrize(("fault", "failure"), [
    ("error_frame", "stream_error"), ("early_close", "truncated"), ("malformed_frame", "malformed_stream"),
    ("stall", "stalled"),
])
def test_simulator_stream_faults_fail_the_stream_checks(sim_factory, fault, failure):
    from llmd.ops.smoke import Smoke

    url = sim_factory(faults=[fault], output_len=6)
    s = Smoke(ep(url), model=MODEL, prompt="hi", max_tokens=6, ready_timeout=5, read_timeout=0.5)
    try:
        c = s.check_completion("chat", stream=True)
    finally:
        s.http.close()
    assert not c.ok and failure in c.detail, c
    assert c.attempts == 1  # a stream that started is never retried


def test_a_passing_smoke_test_describes_the_served_model_for_perf_immutably():
    import dataclasses

    from llmd.ops.endpoint import ServedModel
    from llmd.sim.config import SimConfig
    from llmd.sim.server import run_in_thread

    handle = run_in_thread(SimConfig(port=0, model="sim-model", max_model_len=2048))
    try:
        report = smoke(handle.url.rstrip("/"), model=None, max_tokens=4)
    finally:
        handle.stop()
    assert report.served == ServedModel("sim-model", 2048)  # from /v1/models, which perf then needs not ask
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.served.id = "other"  # type: ignore[misc]


def test_a_failed_smoke_test_describes_no_served_model(srv):
    srv.script("/v1/models", Reply(404, body=b"not found", content_type="text/plain"), repeat=True)
    report = smoke(srv, deadline=0.5)
    assert not report.ok and report.served is None
