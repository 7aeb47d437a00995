"""Why does the gateway keep answering 404/503? Ask the cluster, cheaply, while the smoke test waits.

Behind a gateway a missing or unattached HTTPRoute looks exactly like warm-up (404), so without this the
user would wait the whole --ready-timeout for the hint. `RouteProbe.poll()` runs at most every
`interval` seconds while /v1/models answers 404/502/503/504: ONE read-only `kubectl get` of the HTTPRoute,
the InferencePool and the EPP Deployment (--ignore-not-found, a short request timeout and a wall-clock
timeout). A route that is absent, names another Gateway, or reports Accepted=False / ResolvedRefs=False
on `confirm` probes in a row (a controller may report False for a moment while objects appear) is fatal:
the smoke test stops with the condition message and the fix (exit 7). An EPP with 0 ready replicas or a
missing InferencePool is evidence, not a verdict. When the cluster cannot be read (RBAC, timeout), the
probe says so once and stops probing: the HTTP deadline still applies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmd.errors import LlmdError
from llmd.kube.kubectl import Kubectl, classify_failure
from llmd.ops.wait import route_conditions

ROUTE_KIND = "httproutes.gateway.networking.k8s.io"
POOL_KIND = "inferencepools.inference.networking.k8s.io"
EPP_KIND = "deployments.apps"
INTERVAL_S = 3.0
CONFIRM = 2
KUBECTL_TIMEOUT_S = 8.0  # wall clock of one probe; kubectl's own API timeout is shorter
REQUEST_TIMEOUT = "5s"


@dataclass
class Finding:
    fatal: bool = False
    message: str = ""  # the verdict when fatal
    hint: str | None = None
    evidence: list[str] = field(default_factory=list)  # one line per object looked at
    problems: list[str] = field(default_factory=list)  # the evidence lines worth telling while still waiting

    def text(self) -> str:
        return "cluster: " + "; ".join(self.evidence) if self.evidence else ""


class RouteProbe:
    def __init__(self, kubectl, settings, *, route_manifest: Path | None = None, interval: float = INTERVAL_S,
                 confirm: int = CONFIRM, echo: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kubectl = Kubectl(kubectl.runner, kubectl.scope, request_timeout=REQUEST_TIMEOUT)  # same pinned scope
        self.s = settings
        self.route_manifest = route_manifest  # where `llmd deploy` left the rendered HTTPRoute, if known
        self.interval = interval
        self.confirm = confirm
        self.echo = echo  # polls every few seconds: their `$ kubectl get` lines only with -v
        self.clock = clock
        self.last: Finding | None = None
        self.probes = 0
        self.disabled = False
        self._next = 0.0
        self._fatal_streak = 0

    def poll(self) -> Finding | None:
        """Probe when due. Returns the finding, fatal only once it was seen `confirm` times in a row."""
        if self.disabled or self.clock() < self._next:
            return None
        self._next = self.clock() + self.interval
        finding = self.check()
        self._fatal_streak = self._fatal_streak + 1 if finding.fatal else 0
        if finding.fatal and self._fatal_streak < self.confirm:
            return Finding(False, evidence=finding.evidence, problems=[*finding.problems, "re-checking the HTTPRoute"])
        return finding

    def evidence(self, fresh: bool = False) -> str | None:
        """The cluster lines for a failure report (a fresh probe when asked, e.g. after a 500/503)."""
        if fresh and not self.disabled:
            self.check()
        return self.last.text() if self.last is not None else None

    # ---- one probe -----------------------------------------------------------------------------------

    def check(self) -> Finding:
        self.probes += 1
        try:
            objs = self._read()
        except LlmdError as exc:
            self.disabled = True  # no point asking again every few seconds
            line = f"cluster status unavailable ({exc.message})"
            self.last = Finding(False, evidence=[line], problems=[line])
            return self.last
        s = self.s
        route = objs.get(("HTTPRoute", s.httproute_name))
        pool = objs.get(("InferencePool", s.pool_name))
        epp = objs.get(("Deployment", s.epp_name))
        finding = self._judge_route(route)
        if finding.fatal:
            finding.problems.append(finding.evidence[0])
        finding.evidence.append(f"InferencePool {s.pool_name} " + ("present" if pool else "not found"))
        if pool is None:
            finding.problems.append(finding.evidence[-1])
        if epp is None:
            line = f"EPP not ready: Deployment {s.epp_name} not found"
        else:
            ready = int((epp.get("status") or {}).get("readyReplicas") or 0)
            desired = (epp.get("spec") or {}).get("replicas")
            line = f"EPP {'ready' if ready else 'not ready'}: Deployment {s.epp_name} {ready}/" \
                   f"{1 if desired is None else int(desired)} ready"
        finding.evidence.append(line)
        if line.startswith("EPP not ready"):
            finding.problems.append(line)
        self.last = finding
        return finding

    def _read(self) -> dict[tuple[str, str], dict]:
        s = self.s
        runner = self.kubectl.runner
        echo, runner.echo = runner.echo, self.echo
        try:
            res = self.kubectl.run("get", f"{ROUTE_KIND}/{s.httproute_name}", f"{POOL_KIND}/{s.pool_name}",
                                   f"{EPP_KIND}/{s.epp_name}", "--ignore-not-found", "--output", "json",
                                   check=False, timeout=KUBECTL_TIMEOUT_S)
        finally:
            runner.echo = echo
        if not res.ok:
            raise LlmdError(f"kubectl get: {classify_failure(res)}: {res.tail(2).strip()}")
        text = (res.stdout or "").strip()
        try:
            doc = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise LlmdError(f"kubectl printed invalid JSON: {exc}") from None
        items = doc.get("items", []) if doc.get("kind") == "List" else ([doc] if doc else [])
        return {(i.get("kind", ""), (i.get("metadata") or {}).get("name", "")): i for i in items}

    def _fix(self) -> str:
        s = self.s
        if self.route_manifest is not None and self.route_manifest.is_file():
            apply = f"kubectl apply -n {s.namespace} -f {self.route_manifest}"
        else:
            apply = (f"`llmd render --out rendered` with the same flags, then kubectl apply -n {s.namespace} "
                     f"-f rendered/manifests/httproute.yaml")
        return f"re-run `llmd deploy` with the same flags (it applies the HTTPRoute), or {apply}"

    def _judge_route(self, route: dict | None) -> Finding:
        s = self.s
        name = f"HTTPRoute {s.httproute_name}"
        if route is None:
            return Finding(True, f"{name} not found in namespace {s.namespace}: the gateway has no route to the "
                                 "model servers", self._fix(),
                           [f"{name} not found"])
        parents = [(p.get("name"), p.get("kind", "Gateway")) for p in (route.get("spec") or {}).get("parentRefs") or []]
        if parents and not any(n == s.gateway_name and k == "Gateway" for n, k in parents):
            named = ", ".join(f"{k} {n}" for n, k in parents)
            return Finding(True, f"{name} is attached to {named}, not to Gateway {s.gateway_name}",
                           f"its parentRef must name Gateway {s.gateway_name}: {self._fix()}",
                           [f"{name} parentRefs: {named}"])
        conds = route_conditions(route)
        rejected = [c for c in conds if c.get("status") == "False"]
        if rejected:
            text = "; ".join(f"{c.get('type')}=False ({c.get('reason', '')}): {c.get('message', '')}".rstrip(": ")
                             for c in rejected)
            types = {c.get("type") for c in rejected}
            what = (f"its backendRef must name InferencePool {s.pool_name} with group inference.networking.k8s.io"
                    if "ResolvedRefs" in types else f"its parentRef must name Gateway {s.gateway_name} and the "
                    "Gateway must allow routes from this namespace")
            return Finding(True, f"{name} is not attached: {text}", f"{what}; {self._fix()}", [f"{name}: {text}"])
        accepted = {c.get("type") for c in conds if c.get("status") == "True"}
        if {"Accepted", "ResolvedRefs"} <= accepted:
            return Finding(False, evidence=[f"{name} Accepted, ResolvedRefs"])
        line = f"{name} has no status from the gateway controller yet"
        return Finding(False, evidence=[line], problems=[line])
