"""`llmd scheduler metrics`: what the guide does by hand with `curl :9090/metrics | grep`, as one table.

A session port-forwards the EPP Service's metrics port (9090; the EPP requires a bearer token, see `epp_auth`)
and each model-server pod's port, then every `snapshot()` reads all /metrics endpoints once: per replica queue
depth, running requests, KV-cache use and prefix-cache hit rate (cumulative and over the last interval), and the
EPP's request and scheduling counters and scheduling latency. Metric names: docs/epp-plugins.md ("Metrics");
the EPP's metrics auth: docs/epp-plugins.md ("Reading the EPP's metrics").
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
TOKEN_DURATION = "10m"  # the shortest the TokenRequest API grants
TOKEN_RENEW_S = 8 * 60.0  # a --watch mints a new token before the old one expires
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
    auth: str | None = None  # the bearer token's source: "secret" (metrics-reader Secret) | "minted"

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


def metrics_secret_name(settings: Any) -> str:
    """The SA-token Secret the chart creates with monitoring: `monitoring.prometheus.auth.secretName` (llmd sets it
    in render/values.py), except on GKE, where the chart makes its own metrics-reader ServiceAccount and Secret for
    Managed Prometheus instead (docs/epp-plugins.md, "Reading the EPP's metrics")."""
    if settings.environment == "gke":
        return f"{settings.gaie_release}-metrics-reader-secret"
    return f"{settings.gaie_release}-sa-metrics-reader-secret"


def metrics_rbac_name(settings: Any) -> str:
    """The chart's ClusterRole/ClusterRoleBinding for the EPP's metrics auth (epplib `cluster-rbac-name`:
    `<release trunc 40>-<namespace trunc 40>-epp`, truncated to 84 characters with its quotes)."""
    return f"{settings.gaie_release[:40]}-{settings.namespace[:40]}-epp"[:82]


def _secret_stdout(kubectl: Kubectl, *args: str, namespaced: bool = True) -> tuple[bool, str, str]:
    """Run a kubectl whose stdout holds a token: kept out of the transcript and the -v echo (the Runner)."""
    cmd = dataclasses.replace(kubectl.cmd(*args, namespaced=namespaced, timeout=30), secret_output=True)
    res = kubectl.runner.run(cmd, check=False)
    return res.ok, res.stdout.strip(), (res.stderr or "").strip()


def _remember(token: str) -> str:
    from llmd import redact

    redact.register(token)
    return token


def metrics_token(settings: Any, kubectl: Kubectl) -> str | None:
    """The bearer token of the metrics-reader Secret (None when the Secret does not exist). Registered with the
    redactor at once; the command's output never reaches the transcript."""
    ok, out, _ = _secret_stdout(kubectl, "get", "secret", metrics_secret_name(settings), "--ignore-not-found",
                                "--output", "jsonpath={.data.token}")
    if not ok or not out:
        return None
    token = base64.b64decode(out).decode("utf-8", "replace").strip()
    return _remember(token) if token else None


def minted_token(settings: Any, kubectl: Kubectl) -> tuple[str | None, str]:
    """A short-lived token of the EPP's own ServiceAccount (`kubectl create token`, TokenRequest API): the chart
    binds its metrics ClusterRole to that account. (token, "") or (None, why it failed)."""
    ok, out, err = _secret_stdout(kubectl, "create", "token", settings.epp_name, "--duration", TOKEN_DURATION)
    if not ok or not out:
        return None, (err.splitlines() or ["no token printed"])[-1][:300]
    return _remember(out), ""


@dataclass
class EppAuth:
    """How the EPP's /metrics is read: the Secret's token, a minted one, or why none can work."""

    token: str | None = None
    source: str | None = None  # "secret" | "minted"
    problem: str | None = None
    minted_at: float = 0.0


def epp_auth(settings: Any, kubectl: Kubectl) -> EppAuth:
    """The EPP checks a bearer token with a TokenReview and a SubjectAccessReview (GET /metrics). The inferencepool
    chart grants the EPP's ServiceAccount those (ClusterRole `metrics_rbac_name`) and creates the metrics-reader
    Secret only with monitoring. So: the Secret's token; else, when that ClusterRoleBinding exists (or cannot be
    read), a 10-minute token of the EPP's ServiceAccount (the Secret was removed, or its token never filled in);
    else no token can work, and the problem names the fix (--monitoring)."""
    from llmd.ops import wait

    token = metrics_token(settings, kubectl)
    if token:
        return EppAuth(token, "secret")
    rbac = metrics_rbac_name(settings)
    res = kubectl.run("get", "clusterrolebindings.rbac.authorization.k8s.io", rbac, "--ignore-not-found",
                      "--output", "name", namespaced=False, check=False, timeout=30)
    if res.ok and not res.stdout.strip():
        return EppAuth(problem=no_metrics_rbac(settings))
    minted, why = minted_token(settings, kubectl)
    if minted is None:
        return EppAuth(problem=f"Secret {metrics_secret_name(settings)} not found and `kubectl create token "
                               f"{settings.epp_name}` failed: {why}")
    return EppAuth(minted, "minted", minted_at=wait.CLOCK.now())


def no_metrics_rbac(settings: Any) -> str:
    return (f"the EPP's /metrics accepts no token here: the chart creates the metrics-reader Secret and the "
            f"ClusterRole {metrics_rbac_name(settings)} (TokenReview, SubjectAccessReview, GET /metrics) only with "
            "monitoring. Redeploy with --monitoring (it needs the Prometheus Operator CRDs; on GKE "
            "`-e gke --monitoring`, which uses Managed Prometheus)")


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
        self.auth = EppAuth()
        self.kubectl: Kubectl | None = None
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
        self.kubectl = kubectl
        self.auth = epp_auth(self.s, kubectl)
        if self.auth.token is None:
            self.epp_error = self.auth.problem
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
                self._renew_token()
                try:
                    r = client.get(self.epp_url + "/metrics", headers={"authorization": f"Bearer {self.auth.token}"})
                    if r.status_code in (401, 403):
                        snap.epp = Epp(error=self._refused(r.status_code))
                    elif r.status_code != 200:
                        snap.epp = Epp(error=f"HTTP {r.status_code} from the EPP's /metrics")
                    else:
                        snap.epp = epp_metrics(r.text)
                except httpx.HTTPError as exc:
                    snap.epp = Epp(error=f"{type(exc).__name__}: {exc}")
                snap.epp.auth = self.auth.source
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

    def _renew_token(self) -> None:
        from llmd.ops import wait

        if self.auth.source == "minted" and self.kubectl is not None and \
                wait.CLOCK.now() - self.auth.minted_at >= TOKEN_RENEW_S:
            token, _ = minted_token(self.s, self.kubectl)
            if token:  # else the old one is tried: a refusal then says so
                self.auth = EppAuth(token, "minted", minted_at=wait.CLOCK.now())

    def _refused(self, status: int) -> str:
        if self.auth.source == "secret":
            return f"HTTP {status}: the metrics-reader token was refused"
        return (f"HTTP {status}: the EPP refused a token of its ServiceAccount {self.s.epp_name}: its metrics auth "
                f"needs the chart's ClusterRole {metrics_rbac_name(self.s)} (created with --monitoring)")
