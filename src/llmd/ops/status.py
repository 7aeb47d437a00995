"""`llmd status`: what is deployed and whether it can serve, read from helm and kubectl JSON.

Verdict and exit code: `healthy` (0) when all three releases are `deployed`, the EPP, the gateway and
every decode replica are ready, the HTTPRoute is Accepted with ResolvedRefs and the InferencePool
exists; `degraded` (6) when something is deployed but one of those is not true; `not deployed` (6)
when nothing of the stack is there. An unreachable cluster is 4, like every other command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from llmd.kube.helm import Helm
from llmd.kube.kubectl import Kubectl, classify_failure, raise_cluster_error
from llmd.ops import wait
from llmd.ops.reach import reach_target
from llmd.ops.target import Target, llmd_command
from llmd.proc import Runner


@dataclass
class StatusReport:
    target: Target
    namespace_exists: bool = False
    releases: dict[str, str] = field(default_factory=dict)  # release -> helm status or "not installed"
    components: list[wait.Component] = field(default_factory=list)
    pvc: dict | None = None
    gateway_service: dict | None = None
    httproute: dict | None = None
    inference_pool: dict | None = None
    verdict: str = "not deployed"
    problems: list[str] = field(default_factory=list)
    hint: str | None = None  # set by platforms whose fix is not a kubectl command (the local platform)

    @property
    def healthy(self) -> bool:
        return self.verdict == "healthy"

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "healthy": self.healthy,
            "exit_code": 0 if self.healthy else 6,
            "problems": self.problems,
            "hint": self.hint,
            "target": self.target.to_dict(),
            "namespace_exists": self.namespace_exists,
            "releases": self.releases,
            "components": [c.to_dict() for c in self.components],
            "pvc": self.pvc,
            "gateway_service": self.gateway_service,
            "httproute": self.httproute,
            "inference_pool": self.inference_pool,
        }


def items_by_kind(kubectl: Kubectl, kinds: str) -> dict[str, list[dict]]:
    """One `kubectl get <kinds> -o json` in the namespace, its items grouped by kind."""
    res = kubectl.run("get", kinds, "--output", "json", check=False, timeout=30)
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    by_kind: dict[str, list[dict]] = {}
    for item in json.loads(res.stdout or "{}").get("items") or []:
        by_kind.setdefault(item.get("kind", ""), []).append(item)
    return by_kind


def _conditions(obj: dict | None) -> dict[str, str]:
    """type -> "True"/"False (reason: message)" across route/pool parents."""
    out: dict[str, str] = {}
    for parent in ((obj or {}).get("status") or {}).get("parents") or []:
        for c in parent.get("conditions") or []:
            text = c.get("status", "Unknown")
            if text != "True":
                text += f" ({c.get('reason', '')}: {c.get('message', '')})"
            out[c.get("type", "?")] = text
    return out


def collect_status(settings, runner: Runner, say=None) -> StatusReport:
    scope, target = reach_target(settings, runner, say)
    kubectl = Kubectl(runner, scope)
    report = StatusReport(target)
    ns = kubectl.get_json("namespace", settings.namespace, namespaced=False)
    if ns is None:
        report.problems.append(f"namespace {settings.namespace} does not exist")
        report.releases = dict.fromkeys(settings.releases, "not installed")
        return report
    report.namespace_exists = True
    found = Helm(runner, scope).releases()
    report.releases = {r: (found[r].status if r in found else "not installed") for r in settings.releases}

    snap = items_by_kind(kubectl, "deployments.apps,pods,persistentvolumeclaims,services")
    snap["Gateway"] = [g for g in [kubectl.get_json("gateways.gateway.networking.k8s.io", settings.gateway_name)] if g]
    route = kubectl.get_json("httproutes.gateway.networking.k8s.io", settings.httproute_name)
    snap["HTTPRoute"] = [route] if route else []
    watcher = wait.Watcher(settings, kubectl, ("epp", "gateway", "decode"))
    named = {(k, o["metadata"]["name"]): o for k, objs in snap.items() for o in objs}
    report.components = [watcher.component(key, named) for key in watcher.keys]

    pvc = named.get(("PersistentVolumeClaim", settings.pvc_name))
    if pvc is not None:
        report.pvc = {"name": settings.pvc_name, "phase": (pvc.get("status") or {}).get("phase"),
                      "capacity": ((pvc.get("status") or {}).get("capacity") or {}).get("storage")}
    if settings.gateway_service:
        svc = named.get(("Service", settings.gateway_service))
        report.gateway_service = None if svc is None else {
            "name": settings.gateway_service, "type": svc["spec"].get("type"),
            "cluster_ip": svc["spec"].get("clusterIP"),
            "ports": [p.get("port") for p in svc["spec"].get("ports") or []]}
    if route is not None:
        report.httproute = {"name": settings.httproute_name, "conditions": _conditions(route)}
    pool = kubectl.get_json("inferencepools.inference.networking.k8s.io", settings.pool_name)
    if pool is not None:
        report.inference_pool = {"name": settings.pool_name, "conditions": _conditions(pool)}
    _verdict(settings, report)
    return report


def _verdict(settings, report: StatusReport) -> None:
    p = report.problems
    installed = [r for r, st in report.releases.items() if st != "not installed"]
    if not installed and report.httproute is None:
        p.append("no release of the stack is installed")
        report.verdict = "not deployed"
        return
    p += [f"release {r} is {st}" for r, st in report.releases.items() if st != "deployed"]
    p += [f"{c.key} {c.name} {c.ready}/{c.desired} ready" + (f" ({c.note})" if c.note else "")
          for c in report.components if not c.done]
    if report.httproute is None:
        p.append(f"HTTPRoute {settings.httproute_name} not found")
    else:
        conds = report.httproute["conditions"]
        p += [f"HTTPRoute {t}={conds.get(t, 'missing')}" for t in ("Accepted", "ResolvedRefs")
              if conds.get(t) != "True"]
    if report.inference_pool is None:
        p.append(f"InferencePool {settings.pool_name} not found")
    if settings.gateway_service and report.gateway_service is None:
        p.append(f"gateway Service {settings.gateway_service} not found")
    report.verdict = "degraded" if p else "healthy"
    gone = ([f"{c.key} {c.name}" for c in report.components if c.note.endswith("not created yet")]
            + ([f"InferencePool {settings.pool_name}"] if report.inference_pool is None else []))
    if gone and all(st == "deployed" for st in report.releases.values()):
        # deleted behind helm's back (the route then reports ResolvedRefs=False/BackendNotFound): `deploy` sees it
        # too and re-syncs the charts, which re-creates it
        report.hint = (f"{', '.join(gone)} missing although every release is deployed (deleted by hand?): "
                       f"`{llmd_command(settings, report.target.context, 'deploy')}` with the rest of your deploy "
                       "flags re-creates it")

