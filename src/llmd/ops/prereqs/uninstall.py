"""`llmd prereqs uninstall`: remove only what `llmd prereqs install` installed (as recorded on the cluster).

What llmd installed: CRDs labelled `app.kubernetes.io/managed-by=llmd` + `llmd.ai/prereq`, and the Helm
releases named by the `llmd-prereqs` ConfigMap in a component's namespace (the namespace too, when llmd
created it). Everything is checked before anything is removed: while an llm-d stack uses a prerequisite
(objects of its CRDs, Gateways of its GatewayClass) it refuses (exit 10) and names them; `--force` removes
anyway and still names every object that goes with its CRD. GatewayClasses are control-plane configuration,
not stack objects: they never block, and are named when their CRD goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmd.errors import ExitCode, Refused
from llmd.kube.helm import Helm
from llmd.kube.kubectl import Kubectl, classify_failure, raise_cluster_error
from llmd.ops.preflight import json_objects
from llmd.ops.prereqs.catalog import COMPONENT_LABEL, MANAGED_BY, RECORD, catalog
from llmd.ops.prereqs.inspect import connect, scoped
from llmd.ops.target import Target
from llmd.proc import Runner

OURS = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items()) + f",{COMPONENT_LABEL}"
NOT_BLOCKING = {"GatewayClass"}
SHOWN = 20  # objects named in a message before "... and N more"


@dataclass
class Row:
    what: str
    name: str
    status: str  # removed | failed | planned
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Installed:
    """What llmd installed, as found on the cluster."""

    crds: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # llmd-prereqs ConfigMaps

    @property
    def empty(self) -> bool:
        return not self.crds and not self.records


@dataclass
class UninstallReport:
    target: Target
    rows: list[Row] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # objects removed under --force
    nothing_to_do: bool = False

    @property
    def complete(self) -> bool:
        return all(r.status != "failed" for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"status": "nothing" if self.nothing_to_do else ("removed" if self.complete else "incomplete"),
                "exit_code": 0 if self.complete else int(ExitCode.CLEANUP_INCOMPLETE),
                "target": self.target.to_dict(), "rows": [r.to_dict() for r in self.rows],
                "deleted_objects": self.in_use}


def _list(kubectl: Kubectl, *args: str) -> list[dict[str, Any]]:
    res = kubectl.run("get", *args, "--output", "json", namespaced=False, check=False, fail_code=ExitCode.CLUSTER)
    if not res.ok:
        kind = classify_failure(res)
        if kind == "not_found":
            return []
        raise_cluster_error(res, kind, kubectl.scope)
    return json_objects(res.stdout)


def find_installed(kubectl: Kubectl) -> Installed:
    crds = _list(kubectl, "customresourcedefinitions", "--selector", OURS)
    records = [cm for cm in _list(kubectl, "configmaps", "--all-namespaces", "--selector", OURS)
               if cm.get("metadata", {}).get("name") == RECORD]
    return Installed(crds, records)


def resource_of(crd: dict[str, Any]) -> str:
    spec = crd.get("spec") or {}
    return f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def objects_of(kubectl: Kubectl, crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every object of these CRDs, cluster-wide, in one call."""
    if not crds:
        return []
    return _list(kubectl, ",".join(resource_of(c) for c in crds), "--all-namespaces")


def gateways_of(kubectl: Kubectl, classes: set[str]) -> list[dict[str, Any]]:
    if not classes:
        return []
    return [g for g in _list(kubectl, "gateways.gateway.networking.k8s.io", "--all-namespaces")
            if (g.get("spec") or {}).get("gatewayClassName") in classes]


def named(items: list[str]) -> str:
    more = f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def uninstall(settings, runner: Runner, ui, *, force: bool = False,
              confirm: Callable[[str], bool] | None = None) -> UninstallReport:
    cat = catalog()
    kubectl, target = connect(settings, runner, ui.info)
    report = UninstallReport(target)
    found = find_installed(kubectl)
    if found.empty:
        report.nothing_to_do = True
        return report
    comps = []
    for cm in found.records:
        key = (cm.get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL, "")
        if key in cat.charts:
            comps.append((cat.charts[key], cm))
    classes = {c.gateway_class for c, _ in comps if c.gateway_class}
    objects = objects_of(kubectl, found.crds)
    blocking = [o for o in objects if o.get("kind") not in NOT_BLOCKING]
    gw_names = {describe(o) for o in blocking}
    blocking += [g for g in gateways_of(kubectl, classes) if describe(g) not in gw_names]
    for comp, _ in comps:  # a chart's own CRD (LWS): its objects stop working when the controller goes
        if comp.crd:
            blocking += _list(kubectl, comp.crd, "--all-namespaces")
    lws = [o for o in blocking if o.get("kind") == "LeaderWorkerSet"]
    if blocking and not force:
        namespaces = sorted({(o.get("metadata") or {}).get("namespace", "") for o in blocking} - {""})
        raise Refused(f"refusing to uninstall: {len(blocking)} object(s) still use the prerequisites llmd installed: "
                      f"{named([describe(o) for o in blocking])}; nothing was removed",
                      hint="remove the llm-d stacks first (`llmd cleanup -n <namespace>` for "
                           f"{', '.join(namespaces) or 'each stack'}), or pass --force to delete these objects "
                           "with their CRDs" + (" (LeaderWorkerSets stop their pods)" if lws else ""))
    doomed = [describe(o) for o in objects]
    question = ("uninstall " + ", ".join([f"{c.title} ({cm['metadata']['namespace']})" for c, cm in comps]
                                         + [f"{len(found.crds)} CRDs"] * bool(found.crds))
                + f" from {target.describe().split(' on ', 1)[-1]}"
                + (f", deleting {len(doomed)} object(s): {named(doomed)}" if doomed else "") + "?")
    if confirm is not None and not confirm(question):
        raise Refused("not confirmed; nothing was removed")
    report.in_use = doomed
    for comp, cm in comps:
        data = cm.get("data") or {}
        ns = cm["metadata"]["namespace"]
        helm = Helm(runner, scoped(kubectl, ns).scope)
        ui.step(f"uninstalling {comp.title} from {ns}")
        for release in reversed([r for r in str(data.get("releases", "")).split(",") if r]):
            res = helm.uninstall(release, check=False)
            gone = res.ok or classify_failure(res) == "not_found"
            report.rows.append(Row("helm release", f"{ns}/{release}", "removed" if gone else "failed",
                                   "" if res.ok else ("already gone" if gone else res.tail(3))))
        k = scoped(kubectl, ns)
        if data.get("namespace-created") == "true":
            res = k.run("delete", "namespace", ns, "--ignore-not-found", "--wait=false", namespaced=False,
                        mutates=True, check=False, timeout=60)
            report.rows.append(Row("namespace", ns, "removed" if res.ok else "failed",
                                   "created by llmd prereqs install" if res.ok else res.tail(3)))
        else:
            res = k.run("delete", "configmap", RECORD, "--ignore-not-found", mutates=True, check=False, timeout=60)
            report.rows.append(Row("record", f"{ns}/{RECORD}", "removed" if res.ok else "failed",
                                   f"namespace {ns} kept: llmd did not create it" if res.ok else res.tail(3)))
    if found.crds:
        names = [c["metadata"]["name"] for c in found.crds]
        ui.step(f"deleting {len(names)} CRDs llmd installed")
        res = kubectl.run("delete", "customresourcedefinitions", *names, "--ignore-not-found", "--wait=true",
                          "--timeout=120s", namespaced=False, mutates=True, check=False, timeout=150)
        for c in found.crds:
            key = (c["metadata"].get("labels") or {}).get(COMPONENT_LABEL, "")
            report.rows.append(Row("crd", c["metadata"]["name"], "removed" if res.ok else "failed",
                                   key if res.ok else res.tail(3)))
    return report
