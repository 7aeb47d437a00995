"""The smoke test: is the endpoint serving the model, and does it answer correctly?

1. Poll `/v1/models` until the served model appears, tolerating a fresh stack's warm-up answers
   (503 `no healthy upstream`, 502/504, connection errors; 404 too behind a just-created gateway) up
   to the ready deadline (F40).
2. A chat completion and a completion, each non-streamed and streamed; each checked for HTTP status,
   JSON shape, model name (a mismatch is a warning, F51), non-empty content or finish_reason=length
   (an empty answer at a tiny max_tokens is fine, F51) and usage.

The HTTP exchange and its retries live in ops/smoke_http.py (rule 11): only 408/425/429/502/503/504 and
connection errors, 500 at most once, never after a stream has started; jittered exponential backoff
(llmd.retry); Retry-After honoured up to a cap (F42); a cap on attempts and on the time spent; connect/read
timeouts and an overall deadline checked between chunks (rule 10). This module judges the answers and
writes the hints: failures carry the evidence and a hint (F43-F45, F50).
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from llmd.ops.endpoint import Endpoint, ServedModel
from llmd.ops.smoke_defaults import DEFAULT_MAX_TOKENS, DEFAULT_PROMPT, DEFAULT_READY_TIMEOUT_S
from llmd.ops.smoke_http import (  # noqa: F401  # RETRY_AFTER_CAP_S, retry_after: re-exported
    BODY_CAP,
    EXCERPT,
    RETRY_AFTER_CAP_S,
    SmokeClient,
    _Reply,
    _Transport,
    retry_after,
    send_with_retry,
)
from llmd.redact import redact
from llmd.retry import RetryPolicy, backoff  # backoff: re-exported (tests, older imports)

WARMUP_STATUSES = frozenset({502, 503, 504, 429, 408, 425})  # while polling /v1/models
ROUTE_SUSPECT_STATUSES = frozenset({404, 502, 503, 504})  # warm-up or a broken route: ask the cluster (route_probe)
ACCEPTED_FINISH = frozenset({"stop", "length", "eos", "end_turn", "stop_sequence"})
CONTEXT_MARKERS = ("context length", "maximum context", "max_model_len", "context_length", "too long",
                   "max_tokens must be", "maximum model length")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    evidence: str | None = None
    hint: str | None = None
    warning: str | None = None
    attempts: int = 1
    duration_s: float = 0.0
    skipped: bool = False
    blocking: bool = False  # no usable HTTP answer (route/server/connection): later checks would fail the same way

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if not self.ok:
            return "fail"
        return "warn" if self.warning else "ok"


@dataclass
class SmokeReport:
    url: str
    endpoint: dict
    model: str | None
    prompt_chars: int
    max_tokens: int
    checks: list[Check] = field(default_factory=list)
    duration_s: float = 0.0
    max_model_len: int | None = None  # of the tested model, when /v1/models lists it (vLLM does): for F10

    @property
    def ok(self) -> bool:
        ran = [c for c in self.checks if not c.skipped]
        return bool(ran) and all(c.ok for c in ran)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.skipped]

    @property
    def warnings(self) -> list[str]:
        return [f"{c.name}: {c.warning}" for c in self.checks if c.warning]

    @property
    def via_port_forward(self) -> bool:
        return bool(self.endpoint.get("via_port_forward"))

    @property
    def served(self) -> ServedModel | None:
        """The model the test found served (perf loads it); None unless every check passed."""
        return ServedModel(self.model, self.max_model_len) if self.ok and self.model else None

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "url": self.url, "endpoint": self.endpoint, "model": self.model,
            "prompt_chars": self.prompt_chars, "max_tokens": self.max_tokens,
            "duration_s": round(self.duration_s, 3), "warnings": self.warnings,
            "checks": [{**{k: v for k, v in asdict(c).items() if k != "blocking"}, "status": c.status,
                        "duration_s": round(c.duration_s, 3)} for c in self.checks],
        }


# ---- the smoke test -------------------------------------------------------------------------------


class Smoke:
    def __init__(self, endpoint: Endpoint, *, model: str | None, prompt: str, max_tokens: int, ready_timeout: float,
                 request_timeout: float = 60.0, read_timeout: float = 30.0, policy: RetryPolicy | None = None,
                 ui=None, tolerate_404: bool | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        self.max_model_len: int | None = None
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.ready_timeout = ready_timeout
        self.policy = policy or RetryPolicy()
        self.ui = ui
        self.names: dict[str, str] = endpoint.names
        # A just-created gateway answers 404 until its HTTPRoute is programmed; a direct URL that 404s is wrong.
        self.tolerate_404 = endpoint.kind == "gateway" if tolerate_404 is None else tolerate_404
        self.http = SmokeClient(endpoint, request_timeout=request_timeout, read_timeout=read_timeout)
        self._route_note = ""  # the last cluster problem told while waiting (told again only when it changes)

    # -- hints

    def _hint_404(self) -> str:
        n = self.names
        if n:
            return (f"HTTPRoute missing or not attached: kubectl get httproute {n['httproute']} -n {n['namespace']} "
                    f"-o yaml (status.parents must show Accepted and ResolvedRefs for Gateway {n['gateway']})")
        return "HTTPRoute missing or not attached (or wrong path): the endpoint has no route for /v1/*"

    def _hint_pool(self) -> str:
        n = self.names
        pool = f"InferencePool {n['pool']}" if n else "the InferencePool"
        epp = f"; EPP {n['epp']} must run with --pool-name {n['pool']} --pool-group inference.networking.k8s.io" \
            if n else ""
        return (f"the gateway aborted the request (no endpoint picked): the HTTPRoute backendRef must name {pool} "
                f"with group inference.networking.k8s.io (v1, not inference.networking.x-k8s.io){epp}")

    def _hint_unavailable(self) -> str:
        n = self.names
        if n:
            return (f"no ready model server behind the pool, or the EPP is not ready: kubectl get pods -n "
                    f"{n['namespace']}; kubectl logs deploy/{n['epp']} -n {n['namespace']}; `llmd status`")
        return "the server is not ready (503/502/504): wait for it, or raise --ready-timeout"

    def _describe_failure(self, result: _Reply | _Transport) -> tuple[str, str | None, str | None]:
        """(detail, evidence, hint) for a failed HTTP exchange."""
        if isinstance(result, _Transport):
            hint = ("the port-forward or the server dropped the connection" if self.endpoint.via_port_forward
                    else "check that the server listens at this URL")
            return result.message, None, hint
        body = result.excerpt()
        text = body.lower()
        evidence = f"HTTP {result.status}, content-type {result.content_type or '(none)'}: {body}"
        if result.status == 404:
            return "HTTP 404: no route to the model server", evidence, self._hint_404()
        if result.status == 500 and "fault filter abort" in text:
            return "HTTP 500 fault filter abort", evidence, self._hint_pool()
        if result.status == 400 and any(m in text for m in CONTEXT_MARKERS):
            return (f"HTTP 400 context length: prompt is {len(self.prompt)} characters (~{len(self.prompt) // 4 + 1}"
                    f" tokens), max_tokens={self.max_tokens}", evidence,
                    "lower --max-tokens or shorten --prompt (prompt + max_tokens must fit the server's "
                    "max-model-len)")
        if result.status in (401, 403):
            return f"HTTP {result.status}: not authorised", evidence, \
                "the endpoint wants credentials: export LLMD_API_KEY=<token> (sent as a bearer token)"
        if result.status == 429:
            return "HTTP 429: rate limited on every attempt", evidence, \
                "the server sheds load: retry later or lower the load on it"
        if result.status in (502, 503, 504):
            return f"HTTP {result.status}" + (": no healthy upstream" if "no healthy upstream" in text else ""), \
                evidence, self._hint_unavailable()
        return f"HTTP {result.status}", evidence, None

    def _evidence_with_pods(self, evidence: str | None, *, fresh_route: bool = True) -> str | None:
        probe = getattr(self.endpoint, "route_probe", None)
        route = probe.evidence(fresh=fresh_route) if probe is not None else None
        extra = self.endpoint.evidence() if hasattr(self.endpoint, "evidence") else None
        return "\n".join(x for x in (evidence, route, extra) if x) or None

    def _route_verdict(self, reply: _Reply | _Transport, attempts: int, started: float) -> Check | None:
        """While /v1/models answers 404/5xx behind a cluster gateway: a failed Check when the cluster shows a
        missing or rejected HTTPRoute (no point waiting out the deadline), else None."""
        probe = getattr(self.endpoint, "route_probe", None)
        if probe is None or isinstance(reply, _Transport) or reply.status not in ROUTE_SUSPECT_STATUSES:
            return None
        finding = probe.poll()
        if finding is None:
            return None
        if not finding.fatal:
            note = "; ".join(finding.problems)
            if note and note != self._route_note and self.ui is not None:
                self.ui.step(f"still waiting: {note}")
            self._route_note = note
            return None
        _, evidence, _ = self._describe_failure(reply)
        took = time.monotonic() - started
        return Check("models", False, f"{finding.message} (/v1/models answered HTTP {reply.status} for {took:.1f}s)",
                     self._evidence_with_pods(evidence, fresh_route=False), finding.hint, attempts=attempts,
                     duration_s=took)

    # -- /v1/models

    def check_models(self) -> Check:
        started = time.monotonic()
        deadline = started + self.ready_timeout
        attempts = 0
        warmups: dict[str, int] = {}
        last: _Reply | _Transport | None = None
        while True:
            attempts += 1
            try:
                last = self.http.exchange("GET", "/v1/models")
            except _Transport as exc:
                last = exc
            transient = isinstance(last, _Transport) or last.status in WARMUP_STATUSES or (
                last.status == 404 and self.tolerate_404)
            if not transient:
                break
            label = last.kind if isinstance(last, _Transport) else f"HTTP {last.status}"
            warmups[label] = warmups.get(label, 0) + 1
            wait = None if isinstance(last, _Transport) else retry_after(last.headers.get("retry-after"))
            delay = wait if wait is not None else backoff(attempts, self.policy.base, min(2.0, self.policy.cap))
            # the last attempt lands on the deadline: giving up when the next (jittered) step would overrun it
            # failed up to one backoff step early, at about half of a short --ready-timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            delay = min(delay, remaining)
            if attempts == 1 and self.ui is not None:
                self.ui.step(f"waiting for {self.endpoint.url}/v1/models (warm-up: {label}; up to "
                             f"{self.ready_timeout:g}s)")
            verdict = self._route_verdict(last, attempts, started)
            if verdict is not None:
                return verdict
            self.policy.sleep(delay)
        took = time.monotonic() - started
        warm = ", ".join(f"{n}x {k}" for k, n in warmups.items())
        if isinstance(last, _Transport) or last.status != 200:
            detail, evidence, hint = self._describe_failure(last)
            if warmups:
                detail += f" (still failing after {took:.1f}s; warm-up answers: {warm})"
            return Check("models", False, detail, self._evidence_with_pods(evidence), hint, attempts=attempts,
                         duration_s=took)
        try:
            doc = json.loads(last.body)
            served = [m["id"] for m in doc["data"] if isinstance(m, dict) and m.get("id")]
        except (ValueError, KeyError, TypeError):
            return Check("models", False, "/v1/models answered 200 but not with an OpenAI model list",
                         f"content-type {last.content_type or '(none)'}: {last.excerpt()}",
                         "a proxy or a non-OpenAI server answered: check the URL/route", attempts=attempts,
                         duration_s=took)
        if not served:
            return Check("models", False, "/v1/models lists no model", last.excerpt(), self._hint_unavailable(),
                         attempts=attempts, duration_s=took)
        if self.model is None:
            self.model = served[0]
        elif self.model not in served:
            return Check("models", False, f"model {self.model!r} is not served; the server lists: {', '.join(served)}",
                         None, f"pass --model {served[0]}, or deploy {self.model}", attempts=attempts, duration_s=took)
        for m in doc["data"]:
            if isinstance(m, dict) and m.get("id") == self.model and isinstance(m.get("max_model_len"), int):
                self.max_model_len = m["max_model_len"]
        detail = f"serves {', '.join(served)}" + (f" (after warm-up: {warm}, {took:.1f}s)" if warmups else "")
        return Check("models", True, detail, attempts=attempts, duration_s=took)

    # -- completions

    def _payload(self, api: str, stream: bool) -> tuple[str, dict]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "stream": stream,
                                "temperature": 0}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if api == "chat":
            body["messages"] = [{"role": "user", "content": self.prompt}]
            return "/v1/chat/completions", body
        body["prompt"] = self.prompt
        return "/v1/completions", body

    def check_completion(self, api: str, stream: bool) -> Check:
        name = f"{'chat' if api == 'chat' else 'completion'}{' stream' if stream else ''}"
        path, body = self._payload(api, stream)
        started = time.monotonic()
        result, attempts, notes = send_with_retry(lambda: self.http.exchange("POST", path, body, stream=stream),
                                                  self.policy)
        took = time.monotonic() - started
        retried = f" after {len(notes)} retr{'y' if len(notes) == 1 else 'ies'} ({'; '.join(notes)})" if notes else ""
        if isinstance(result, _Transport) or result.status != 200:
            detail, evidence, hint = self._describe_failure(result)
            if not isinstance(result, _Transport) and result.status in (404, 500, 502, 503, 504):
                evidence = self._evidence_with_pods(evidence)
            return Check(name, False, detail + retried, evidence, hint, attempts=attempts, duration_s=took,
                         blocking=True)
        if stream:
            verdict = self._judge_stream(result)
        else:
            verdict = self._judge_json(result, api)
        ok, detail, evidence, hint, warning = verdict
        return Check(name, ok, detail + (retried if ok else ""), evidence, hint, warning, attempts=attempts,
                     duration_s=took)

    def _not_json_evidence(self, reply: _Reply) -> str:
        return f"content-type {reply.content_type or '(none)'}; first {EXCERPT} bytes: {reply.excerpt()}"

    _PROXY_HINT = "a proxy or error page answered instead of the model server: check the gateway/ingress in front"

    def _judge_json(self, reply: _Reply, api: str):
        if "json" not in reply.content_type:
            return False, "200 but not JSON", self._not_json_evidence(reply), self._PROXY_HINT, None
        try:
            doc = json.loads(reply.body)
        except ValueError:
            return False, "200 with a body that does not parse as JSON", self._not_json_evidence(reply), \
                self._PROXY_HINT, None
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return False, "200 JSON without choices", self._not_json_evidence(reply), self._PROXY_HINT, None
        first = choices[0]
        if api == "chat":
            msg = first.get("message") or {}
            content = (msg.get("content") or msg.get("reasoning_content") or "") if isinstance(msg, dict) else ""
        else:
            content = first.get("text") or ""
        return self._judge_answer(content, first.get("finish_reason"), doc.get("usage"), doc.get("model"))

    def _judge_stream(self, reply: _Reply):
        if reply.outcome is None:  # 200 but not an event stream
            return False, "200 but not an event stream (stream=true was asked)", self._not_json_evidence(reply), \
                self._PROXY_HINT, None
        out = reply.outcome
        if not out.ok:
            hint = {"stream_error": "the server reported an error inside the 200 stream (see evidence)",
                    "truncated": "the stream was cut: a proxy timeout or a dying pod/tunnel",
                    "stalled": "the server stopped sending mid-stream",
                    "malformed_stream": "the stream is not valid SSE/JSON: a proxy may be rewriting it"}.get(
                        out.failure or "")
            return False, f"stream failed: {out.failure}", redact(out.error or ""), hint, None
        ok, detail, evidence, hint, warning = self._judge_answer(out.content, out.finish_reason, out.usage, out.model)
        if ok:
            detail += f", {out.content_events} content events, [DONE]"
        return ok, detail, evidence, hint, warning

    def _judge_answer(self, content: str, finish: str | None, usage: Any, model: str | None):
        warning = None
        if model and self.model and model != self.model:
            warning = f"response model {model!r} differs from the requested {self.model!r}"
        if not isinstance(usage, dict) or not isinstance(usage.get("completion_tokens"), int):
            return False, "no usage in the response", f"usage = {json.dumps(usage)[:EXCERPT]}", \
                "the server must report usage (vLLM does; streams need stream_options.include_usage)", warning
        if not finish:
            return False, "no finish_reason", None, None, warning
        if not content.strip():
            if finish != "length":
                return False, f"empty content with finish_reason={finish}", None, \
                    "the model produced nothing: try another --prompt", warning
            note = f"empty content, finish_reason=length at max_tokens={self.max_tokens} (accepted)"
        else:
            if finish not in ACCEPTED_FINISH:
                warning = (warning + "; " if warning else "") + f"unusual finish_reason {finish!r}"
            note = f"{len(content)} chars, finish_reason={finish}"
        return True, f"{note}, {usage.get('completion_tokens')} completion tokens", None, None, warning

    # -- run

    def run(self) -> SmokeReport:
        started = time.monotonic()
        report = SmokeReport(url=self.endpoint.url, endpoint=self.endpoint.to_dict(), model=self.model,
                             prompt_chars=len(self.prompt), max_tokens=self.max_tokens)
        try:
            models = self.check_models()
            report.checks.append(models)
            report.model = self.model
            report.max_model_len = self.max_model_len
            plan = [("chat", False), ("chat", True), ("completions", False), ("completions", True)]
            stop = not models.ok
            for api, stream in plan:
                if stop:
                    name = f"{'chat' if api == 'chat' else 'completion'}{' stream' if stream else ''}"
                    report.checks.append(Check(name, False, "not run (an earlier check failed)", skipped=True))
                    continue
                if self.ui is not None:
                    self.ui.step(f"{api}{' (stream)' if stream else ''} -> {self.model}")
                check = self.check_completion(api, stream)
                report.checks.append(check)
                stop = check.blocking
        finally:
            self.http.close()
            report.duration_s = time.monotonic() - started
            report.url = self.endpoint.url
        return report


def run_smoke(endpoint: Endpoint, model: str | None, prompt: str = DEFAULT_PROMPT,  # noqa: PLR0917 (shared contract)
              max_tokens: int = DEFAULT_MAX_TOKENS, deadline: float = DEFAULT_READY_TIMEOUT_S, ui=None,
              **kw) -> SmokeReport:
    """Run the smoke test against `endpoint`. `deadline`: seconds allowed for warm-up."""
    return Smoke(endpoint, model=model, prompt=prompt, max_tokens=max_tokens, ready_timeout=deadline, ui=ui,
                 **kw).run()
