"""What `llmd test` talks to: a URL given with --url, an embedded simulator (--sim), or the gateway of
the deployment the settings describe (port-forward to its Service; GKE: the Gateway's address).

`open_endpoint(...)` is a context manager yielding an `Endpoint`; leaving it stops the tunnel or the
simulator, Ctrl-C included. The Endpoint is what the smoke test and the perf engine use: `.url` may
change after a tunnel restart and `.generation` bumps when it does.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmd.errors import ConfigError, LlmdError, TestFailed
from llmd.presets import facts
from llmd.redact import redact

if TYPE_CHECKING:
    from llmd.kube.portforward import PortForward
    from llmd.ops.route_probe import RouteProbe
    from llmd.proc import Drain

GATEWAY_PATTERN = "inference-gateway"
GKE_PORT = 80
API_KEY_ENV = "LLMD_API_KEY"  # bearer token for endpoints that want one (--url); never a flag value
PF_READY_TIMEOUT_S = 20.0  # default --connect-timeout: `Forwarding from` + a probe answered (F35)


@dataclass(frozen=True)
class ServedModel:
    """What the smoke test found served, and what perf then loads: the model id and (vLLM lists it) its context
    length, against which perf checks its prompt + output lengths (F10)."""

    id: str
    max_model_len: int | None = None


@dataclass(frozen=True)
class Endpoint:
    """The real llmd.loadgen.endpoint.Endpoint, plus what the smoke test reads for its hints and evidence."""

    kind: str  # "url" | "sim" | "gateway" | "gke"
    description: str
    base_url: str | None = None  # fixed URL (url, sim, gke); a port-forward supplies its own
    tunnel: PortForward | None = None  # when via port-forward
    names: dict[str, str] = field(default_factory=dict)  # cluster object names for hints
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    diagnose: Callable[[], str] | None = field(default=None, repr=False)  # pod status etc. for failure evidence
    route_probe: RouteProbe | None = field(default=None, repr=False)  # cluster endpoints: why 404/503

    @property
    def url(self) -> str:
        url = self.tunnel.url if self.tunnel is not None else self.base_url
        assert url is not None, "a port-forward has a URL once open; other endpoints are built with one"
        return url

    @property
    def via_port_forward(self) -> bool:
        return self.tunnel is not None

    @property
    def generation(self) -> int:
        return self.tunnel.generation if self.tunnel is not None else 1

    @property
    def restarts(self) -> int:
        return self.tunnel.restarts if self.tunnel is not None else 0

    def lost_during(self, sent_ns: int | None, end_ns: int | None) -> bool:
        """True when the port-forward died under a request (perf_counter_ns stamps); see PortForward.lost_during."""
        return self.tunnel is not None and self.tunnel.lost_during(sent_ns, end_ns)

    def ensure_alive(self) -> None:
        """Between phases: re-probe a port-forward and restart it transparently if it went idle/dead (F39)."""
        if self.tunnel is not None:
            self.tunnel.ensure_alive()

    def evidence(self) -> str | None:
        """Extra evidence for a failure (pod status); best effort, says so when it cannot be collected."""
        if self.diagnose is None:
            return None
        try:
            return self.diagnose()
        except LlmdError as exc:
            return f"(could not collect pod status: {exc.message})"

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "url": self.url, "description": self.description,
               "via_port_forward": self.via_port_forward, "generation": self.generation}
        if self.tunnel is not None:
            out["port_forward"] = self.tunnel.to_dict()
            out["note"] = PORT_FORWARD_NOTE
        return out


PORT_FORWARD_NOTE = ("measured through kubectl port-forward: one API-server/kubelet stream to a single gateway pod, "
                     "not a neutral path for throughput")


def normalize_url(url: str) -> str:
    """Validate --url and return the base (scheme://host[:port][/prefix], without a trailing /v1)."""
    import httpx

    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"--url {url!r} is not a valid URL: {exc}", hint="e.g. --url http://127.0.0.1:8000") from None
    if u.scheme not in ("http", "https") or not u.host:
        raise ConfigError(f"--url {url!r} must be an http:// or https:// URL with a host",
                          hint="e.g. --url http://127.0.0.1:8000 or https://gateway.example.com")
    if u.userinfo:
        raise ConfigError("--url must not carry credentials (user:password@)",
                          hint=f"put a bearer token in ${API_KEY_ENV} instead (sent as Authorization, redacted)")
    if u.query or u.fragment:
        raise ConfigError(f"--url {url!r} must not have a query or fragment", hint="pass the base URL only")
    path = u.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    port = f":{u.port}" if u.port else ""
    host = f"[{u.host}]" if ":" in u.host else u.host
    return f"{u.scheme}://{host}{port}{path}"


def _auth_headers() -> dict[str, str]:
    from llmd.redact import register

    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        return {}
    register(key)
    return {"authorization": f"Bearer {key}"}


@contextlib.contextmanager
def open_endpoint(*, settings, runner=None, ui=None, url: str | None = None, sim: bool = False,
                  sim_model: str | None = None, local_port: int | None = None,
                  pf_ready_timeout: float = PF_READY_TIMEOUT_S, pf_options: dict | None = None,
                  route_manifest=None) -> Iterator[Endpoint]:
    """Resolve and open what to test; everything opened here is closed on exit."""
    if url and sim:
        raise ConfigError("--url and --sim are mutually exclusive", hint="pick one endpoint to test")
    if local_port is not None and (url or sim):
        raise ConfigError("--local-port applies only to the port-forward to a cluster gateway",
                          hint="drop --local-port when testing --url or --sim")
    if local_port is not None and not 1 <= local_port <= 65535:
        raise ConfigError(f"--local-port {local_port} is out of range", hint="use 1-65535, or omit it (kernel picks)")
    if url:
        base = normalize_url(url)
        yield Endpoint("url", f"{base} (direct)", base_url=base, headers=_auth_headers())
        return
    if sim:
        with _sim(sim_model or settings.served_model_name, settings.max_model_len, runner) as ep:
            yield ep
        return
    from llmd.platform import select

    with select(settings).open_endpoint(settings, runner, ui, local_port=local_port,
                                        pf_ready_timeout=pf_ready_timeout, pf_options=pf_options or {},
                                        route_manifest=route_manifest) as ep:
        yield ep


@contextlib.contextmanager
def cluster_endpoint(settings, runner, ui, *, local_port=None, pf_ready_timeout: float = PF_READY_TIMEOUT_S,
                     pf_options: dict | None = None, route_manifest=None) -> Iterator[Endpoint]:
    """The deployment's gateway on Kubernetes (the KubernetesPlatform's endpoint)."""
    yield from _cluster(settings, runner, ui, local_port=local_port, pf_ready_timeout=pf_ready_timeout,
                        pf_options=pf_options or {}, route_manifest=route_manifest)


# The embedded default: an 8B-class model on one GPU, roughly (prefill + decode latency, a batch of 32
# sequences, slowdown under load). Served under the deployment's model name, like the cluster sim profile.
# TTFT comes from the prefill model (about 30 ms for a 256-token prompt), not a fixed --ttft, so prefix-cache
# hits shorten it as they do on vLLM.
EMBEDDED_SIM_ARGS = ("--prefill-overhead", "15ms", "--prefill-per-token", "0.06ms", "--itl", "6ms",
                     "--max-num-seqs", "32", "--time-factor-under-load", "1.5",
                     "--enable-kvcache", "--kv-cache-size", "4096", "--seed", "1")
SIM_START_TIMEOUT_S = 15.0


@contextlib.contextmanager
def _sim(model: str, max_model_len: int, runner=None) -> Iterator[Endpoint]:
    """`llmd sim` as a child process in its own group: the load generator and the server then use
    separate cores, as they would against a cluster. Always stopped on exit, Ctrl-C included."""
    import sys

    from llmd.proc import Cmd, Drain, Runner, stop_process

    runner = runner or Runner()
    argv = (sys.executable, "-m", "llmd", "sim", "--port", "0", "--model", model,
            "--max-model-len", str(max_model_len), *EMBEDDED_SIM_ARGS)
    child = runner.spawn(Cmd(argv, title="embedded simulator"))
    stderr = Drain(child.stderr)  # read from the start: a full pipe would block the simulator
    try:
        url = _read_sim_url(child, stderr)
        Drain(child.stdout)  # past its URL line, whatever else it prints must not fill the pipe either
        yield Endpoint("sim", f"embedded llmd sim at {url}", base_url=url.rstrip("/"))
    finally:
        stop_process(child, grace_int=3.0, grace_term=2.0)


def _read_sim_url(child, stderr: Drain) -> str:
    """The first stdout line of `llmd sim` is its URL; wait for it with a deadline."""
    import select

    deadline = time.monotonic() + SIM_START_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        ready, _, _ = select.select([child.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(child.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
        elif child.poll() is not None:
            break
    url = line.decode(errors="replace").strip().splitlines()[0] if line.strip() else ""
    if not url.startswith("http://127.0.0.1:"):
        err = stderr.text() if child.poll() is not None else ""
        raise TestFailed("the embedded simulator did not start", hint="run `llmd sim --port 0` to see why",
                         details=err.strip() or None)
    return url


def _names(settings) -> dict[str, str]:
    return {"namespace": settings.namespace, "gateway": settings.gateway_name, "httproute": settings.httproute_name,
            "pool": settings.pool_name, "epp": settings.epp_name, "decode": settings.decode_deployment,
            "guide_label": settings.guide_label}


def _cluster(settings, runner, ui, *, local_port, pf_ready_timeout, pf_options, route_manifest) -> Iterator[Endpoint]:
    from llmd.kube.kubectl import Kubectl
    from llmd.ops.route_probe import RouteProbe

    runner.require_tools(["kubectl"])
    scope = _reach(settings, runner, ui)
    kubectl = Kubectl(runner, scope)
    names = _names(settings)
    # While the gateway answers 404/503, the smoke test asks the cluster why (missing/rejected HTTPRoute, EPP).
    route_probe = RouteProbe(kubectl, settings, route_manifest=route_manifest,
                             echo=ui.detail if ui is not None else None)

    def diagnose() -> str:
        return pod_summary(kubectl)

    if settings.gateway_service is None:  # GKE: the Gateway's own address, no Service to forward to
        base = gke_address(kubectl, settings)
        yield Endpoint("gke", f"Gateway {settings.gateway_name} at {base}", base_url=base, names=names,
                       diagnose=diagnose, route_probe=route_probe)
        return

    from llmd.kube.portforward import PortForward

    service = settings.gateway_service
    require_service(kubectl, settings, service)
    warn = ui.warn if ui is not None else None
    with PortForward(kubectl, f"svc/{service}", 80, local_port, ready_timeout=pf_ready_timeout, on_event=warn,
                     **pf_options) as pf:
        yield Endpoint("gateway", f"svc/{service} in {settings.namespace} via port-forward", tunnel=pf,
                       names=names, diagnose=diagnose, route_probe=route_probe)


NO_CLUSTER_HINT = "or test without a cluster: --sim (an embedded simulator) or --url URL (any OpenAI-compatible server)"


def _reach(settings, runner, ui):
    """The context resolved and the API server probed as every other verb does (one budget, under 15 s);
    the hint adds what `llmd test` can do without a cluster."""
    from llmd.errors import ClusterError
    from llmd.ops.reach import reach_target

    try:
        scope, _ = reach_target(settings, runner, ui.step if ui is not None else None)
    except ClusterError as err:
        err.hint = f"{err.hint}; {NO_CLUSTER_HINT}" if err.hint else NO_CLUSTER_HINT
        raise
    return scope


def require_service(kubectl, settings, service: str) -> None:
    """F34: the gateway Service must exist; otherwise list what does and what was expected."""
    if kubectl.get_json("service", service) is not None:
        return
    listing = kubectl.get_json("services") or {}
    found = sorted(item.get("metadata", {}).get("name", "") for item in listing.get("items", []))
    gateways = [n for n in found if GATEWAY_PATTERN in n]
    seen = ", ".join(gateways) if gateways else "none"
    raise TestFailed(
        f"gateway Service {service} not found in namespace {settings.namespace} "
        f"(environment {settings.environment}); Services matching *-{GATEWAY_PATTERN}*: {seen}",
        hint=(f"{facts.service_naming()}: check -e/--environment and --release-postfix match the deployment, "
              "or run `llmd status`"),
        details=f"all Services in {settings.namespace}: {', '.join(found) or '(none)'}")


def gke_address(kubectl, settings) -> str:
    gw = kubectl.get_json("gateway", settings.gateway_name)
    if gw is None:
        raise TestFailed(f"Gateway {settings.gateway_name} not found in namespace {settings.namespace}",
                         hint="deploy first (`llmd deploy -e gke`), or check --release-postfix / -n")
    addresses = (gw.get("status") or {}).get("addresses") or []
    value = addresses[0].get("value") if addresses and isinstance(addresses[0], dict) else None
    if not value:
        conditions = (gw.get("status") or {}).get("conditions") or []
        detail = "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}".strip() for c in conditions)
        raise TestFailed(f"Gateway {settings.gateway_name} has no address yet",
                         hint=f"the GKE load balancer takes minutes to program: kubectl describe gateway "
                              f"{settings.gateway_name} -n {settings.namespace}",
                         details=detail or None)
    host = f"[{value}]" if ":" in value else value
    return f"http://{host}:{GKE_PORT}"


def pod_summary(kubectl, limit: int = 12) -> str:
    """`name phase ready restarts reason` for the pods of the namespace: evidence for a failed smoke test."""
    data = kubectl.get_json("pods") or {}
    lines = []
    for item in (data.get("items") or [])[:limit]:
        name = item.get("metadata", {}).get("name", "?")
        status = item.get("status") or {}
        statuses = status.get("containerStatuses") or []
        ready = sum(1 for c in statuses if c.get("ready"))
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        reasons = [((c.get("state") or {}).get("waiting") or {}).get("reason") for c in statuses]
        reason = ",".join(r for r in reasons if r)
        lines.append(f"{name}  {status.get('phase', '?')}  ready {ready}/{len(statuses)}  restarts {restarts}"
                     + (f"  {reason}" if reason else ""))
    if not lines:
        return f"no pods in namespace {kubectl.scope.namespace}"
    return redact("pods:\n  " + "\n  ".join(lines))
