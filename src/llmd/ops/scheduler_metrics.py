"""`llmd scheduler metrics`: what the guide does by hand with `curl :9090/metrics | grep`, as one table.

A session port-forwards the EPP Service's metrics port (9090; the EPP requires the bearer token of the
metrics-reader Secret the chart creates) and each model-server pod's port, then every `snapshot()` reads all
/metrics endpoints once: per replica queue depth, running requests, KV-cache use and prefix-cache hit rate
(cumulative and over the last interval), and the EPP's request and scheduling counters and scheduling
latency. Metric names: docs/epp-plugins.md ("Metrics").
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from llmd import prom
from llmd.kube.kubectl import Kubectl
from llmd.proc import Runner

EPP_METRICS_PORT = 9090
HTTP_TIMEOUT_S = 5.0
# vLLM's Python client adds _total to counters; llm-d-inference-sim v0.8 (Go client) does not.
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits")
PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries")


@dataclass
class Replica:
    pod: str
    waiting: float | None = None
    running: float | None = None
    kv_usage: float | None = None  # 0..1
    prefix_hits: float | None = None  # tokens
    prefix_queries: float | None = None
    hit_rate: float | None = None  # cumulative
    hit_rate_interval: float | None = None  # since the previous snapshot
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Epp:
    requests: float | None = None
    request_errors: float | None = None
    scheduled: float | None = None
    schedule_failures: float | None = None
    scheduling_mean_ms: float | None = None
    scheduling_p99_ms: float | None = None
    ready_pods: float | None = None
    pool_avg_queue: float | None = None
    pool_avg_kv: float | None = None
    prefix_indexer_hit_ratio: float | None = None  # mean, approximate prefix scorer
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Snapshot:
    at: float
    epp: Epp
    replicas: list[Replica] = field(default_factory=list)
    picker: str | None = None  # what picks (default: the settings' EPP; the local platform: its gateway)

    def to_dict(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "epp": self.epp.to_dict(), "replicas": [r.to_dict() for r in self.replicas]}


def replica_metrics(pod: str, text: str, previous: Replica | None = None) -> Replica:
    m = prom.Metrics(text)
    r = Replica(pod, m.total("vllm:num_requests_waiting"), m.total("vllm:num_requests_running"),
                m.total("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
                m.total(*PREFIX_HITS), m.total(*PREFIX_QUERIES))
    if r.prefix_hits is not None and r.prefix_queries:
        r.hit_rate = r.prefix_hits / r.prefix_queries
    if previous is not None and None not in (r.prefix_hits, r.prefix_queries, previous.prefix_hits,
                                             previous.prefix_queries):
        dq = r.prefix_queries - previous.prefix_queries  # type: ignore[operator]
        if dq > 0:
            r.hit_rate_interval = (r.prefix_hits - previous.prefix_hits) / dq  # type: ignore[operator]
    return r


def epp_metrics(text: str) -> Epp:
    m = prom.Metrics(text)
    e2e = m.histogram("inference_extension_scheduler_e2e_duration_seconds")
    mean, p99 = prom.mean(e2e), prom.quantile(0.99, e2e)
    return Epp(
        requests=m.total("inference_objective_request_total"),
        request_errors=m.total("inference_objective_request_error_total"),
        scheduled=m.total("inference_extension_scheduler_attempts_total", status="success"),
        schedule_failures=m.total("inference_extension_scheduler_attempts_total", status="failure"),
        scheduling_mean_ms=None if mean is None else mean * 1000,
        scheduling_p99_ms=None if p99 is None else p99 * 1000,
        ready_pods=m.total("inference_pool_ready_pods"),
        pool_avg_queue=m.total("inference_pool_average_queue_size"),
        pool_avg_kv=m.total("inference_pool_average_kv_cache_utilization"),
        prefix_indexer_hit_ratio=prom.mean(m.histogram("inference_extension_prefix_indexer_hit_ratio")),
    )


def metrics_token(settings: Any, kubectl: Kubectl) -> str | None:
    """The bearer token of the metrics-reader Secret (None when the Secret does not exist). Registered with the
    redactor at once; the command's output never reaches the transcript."""
    from llmd import redact

    name = f"{settings.gaie_release}-sa-metrics-reader-secret"  # render/values.py gaie monitoring.auth.secretName
    cmd = dataclasses.replace(kubectl.cmd("get", "secret", name, "--ignore-not-found", "--output",
                                          "jsonpath={.data.token}", timeout=30), secret_output=True)
    res = kubectl.runner.run(cmd, check=False)
    if not res.ok or not res.stdout.strip():
        return None
    token = base64.b64decode(res.stdout.strip()).decode("utf-8", "replace").strip()
    redact.register(token)
    return token or None


class MetricsSession:
    """`with MetricsSession(settings, runner, ui) as s: s.snapshot()`: port-forwards, always closed on exit."""

    def __init__(self, settings: Any, runner: Runner, ui: Any, *, ready_timeout: float = 20.0) -> None:
        self.s = settings
        self.runner = runner
        self.ui = ui
        self.ready_timeout = ready_timeout
        self.stack = contextlib.ExitStack()
        self.epp_url: str | None = None
        self.epp_error: str | None = None
        self.token: str | None = None
        self.pods: dict[str, str | None] = {}  # pod -> local URL (None when its tunnel failed)
        self.pod_errors: dict[str, str] = {}
        self.previous: dict[str, Replica] = {}

    def __enter__(self) -> MetricsSession:
        try:
            self._open()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _open(self) -> None:
        from llmd import presets
        from llmd.errors import LlmdError, NotReadyError
        from llmd.kube.portforward import PortForward
        from llmd.ops.target import pin_target
        from llmd.render.values import pool_match_labels

        scope, _ = pin_target(self.s, self.runner)
        kubectl = Kubectl(self.runner, scope)
        selector = ",".join(f"{k}={v}" for k, v in sorted(pool_match_labels(self.s).items()))
        pods = [p["metadata"]["name"] for p in (kubectl.get_json("pods", selector=selector) or {}).get("items") or []
                if (p.get("status") or {}).get("phase") == "Running"]
        if not pods:
            raise NotReadyError(f"no running model-server pod matches {selector} in {self.s.namespace}",
                                hint="`llmd status` shows the stack; `llmd deploy` starts it")
        self.token = metrics_token(self.s, kubectl)
        if self.token is None:
            self.epp_error = (f"Secret {self.s.gaie_release}-sa-metrics-reader-secret not found: the EPP's metrics "
                              "need its bearer token (the chart creates it with --monitoring)")
        else:
            try:
                pf = self.stack.enter_context(PortForward(kubectl, f"svc/{self.s.epp_name}", EPP_METRICS_PORT,
                                                          ready_timeout=self.ready_timeout))
                self.epp_url = pf.url
            except LlmdError as exc:  # reported in the table; the replicas are still worth showing
                self.epp_error = exc.message
        port = presets.load("defaults")["model_server"]["port"]
        for pod in sorted(pods):
            try:
                pf = self.stack.enter_context(PortForward(kubectl, f"pod/{pod}", port,
                                                          ready_timeout=self.ready_timeout))
                self.pods[pod] = pf.url
            except LlmdError as exc:
                self.pods[pod] = None
                self.pod_errors[pod] = exc.message

    def snapshot(self) -> Snapshot:
        import httpx

        snap = Snapshot(time.time(), Epp(error=self.epp_error))
        with httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False) as client:
            if self.epp_url:
                try:
                    r = client.get(self.epp_url + "/metrics", headers={"authorization": f"Bearer {self.token}"})
                    if r.status_code in (401, 403):
                        snap.epp = Epp(error=f"HTTP {r.status_code}: the metrics-reader token was refused")
                    elif r.status_code != 200:
                        snap.epp = Epp(error=f"HTTP {r.status_code} from the EPP's /metrics")
                    else:
                        snap.epp = epp_metrics(r.text)
                except httpx.HTTPError as exc:
                    snap.epp = Epp(error=f"{type(exc).__name__}: {exc}")
            for pod, url in self.pods.items():
                if url is None:
                    snap.replicas.append(Replica(pod, error=self.pod_errors.get(pod, "no tunnel")))
                    continue
                try:
                    r = client.get(url + "/metrics")
                    r.raise_for_status()
                    rep = replica_metrics(pod, r.text, self.previous.get(pod))
                except httpx.HTTPError as exc:
                    rep = Replica(pod, error=f"{type(exc).__name__}: {exc}")
                snap.replicas.append(rep)
                if rep.error is None:
                    self.previous[pod] = rep
        return snap
