"""What the cluster has of each prerequisite: installed or not, which release, whether llmd installed it,
and whether it is what the stack needs. Read-only; `status`, `install`, `uninstall` and doctor share it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from llmd.errors import ExitCode, PrereqError
from llmd.kube.kubectl import Kubectl, classify_failure, raise_cluster_error
from llmd.ops.preflight import GKE_MONITORING_CRD, INSTALL_GMP, check_reachable, crd_problems, json_objects
from llmd.ops.prereqs.catalog import (
    COMPONENT_LABEL,
    MANAGED_BY,
    RECORD,
    Catalog,
    ChartComponent,
    CrdBundle,
    version_key,
)
from llmd.ops.target import Target, pin_target
from llmd.proc import Runner


@dataclass
class State:
    key: str
    title: str
    kind: str  # crds | chart
    pinned: str
    installed: bool = False
    version: str = ""  # what is installed; "" when unknown or absent
    by_llmd: bool = False
    ok: bool = False  # present and what the stack needs
    ready: bool = False  # chart components: the controller runs
    problem: str = ""  # why an installed component is not ok
    detail: str = ""
    names: tuple[str, ...] = ()  # CRDs of the bundle present on the cluster
    record: dict[str, str] = field(default_factory=dict)  # chart components: the llmd-prereqs ConfigMap data

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.key, "title": self.title, "kind": self.kind, "installed": self.installed,
                "version": self.version or None, "pinned": self.pinned, "installed_by_llmd": self.by_llmd,
                "ok": self.ok, "ready": self.ready if self.kind == "chart" else None,
                "problem": self.problem or None, "detail": self.detail}


def connect(settings, runner: Runner, say: Callable[[str], None] | None = None) -> tuple[Kubectl, Target]:
    """Pin the context and (unless dry-run) prove, within the one reachability budget, that the API server
    answers; `say` gets the line naming what is awaited."""
    scope, target = pin_target(settings, runner)
    kubectl = Kubectl(runner, scope)
    if not runner.dry_run:
        reach = check_reachable(kubectl, target, say)
        if reach.failed:  # an old kubectl: nothing is read or changed with it
            raise PrereqError(reach.message, hint=reach.hint)
    return kubectl, target


def scoped(kubectl: Kubectl, namespace: str) -> Kubectl:
    return Kubectl(kubectl.runner, dataclasses.replace(kubectl.scope, namespace=namespace),
                   request_timeout=kubectl.request_timeout)


def _ours(meta: dict[str, Any], key: str) -> bool:
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items()) and labels.get(COMPONENT_LABEL) == key


def get_crds(kubectl: Kubectl, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The named CRDs that exist, by name (one call)."""
    wanted = list(dict.fromkeys(names))
    res = kubectl.run("get", "customresourcedefinitions", *wanted, "--ignore-not-found", "--output", "json",
                      namespaced=False, check=False, fail_code=ExitCode.CLUSTER)
    if res.dry_run:
        return {}
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    return {o["metadata"]["name"]: o for o in json_objects(res.stdout) if o.get("metadata")}


def crd_state(bundle: CrdBundle, crds: dict[str, dict[str, Any]]) -> State:
    st = State(bundle.key, bundle.title, "crds", bundle.version)
    present = {n: crds[n] for n in bundle.markers if n in crds}
    st.names = tuple(present)
    st.installed = bool(present)
    if not present:
        return st
    metas = [c.get("metadata") or {} for c in present.values()]
    versions = [str((m.get("annotations") or {}).get(bundle.version_annotation, "")) for m in metas]
    known = [v for v in versions if version_key(v)]
    st.version = max(known, key=lambda v: version_key(v) or ()) if known else ""
    st.by_llmd = any(_ours(m, bundle.key) for m in metas)
    problems = [why for _, why in crd_problems(present, dict(bundle.markers))]
    st.ok = not problems
    st.problem = "; ".join(problems)
    st.detail = f"{len(present)}/{len(bundle.markers)} key CRDs"
    return st


def crd_states(kubectl: Kubectl, bundles: Iterable[CrdBundle]) -> dict[str, State]:
    bundles = list(bundles)
    crds = get_crds(kubectl, [n for b in bundles for n in b.markers])
    return {b.key: crd_state(b, crds) for b in bundles}


GMP = "gke-managed-prometheus"  # --monitoring on a managed platform: its own monitoring API, not llmd's to install


def gmp_state(kubectl: Kubectl) -> State:
    """GKE Managed Prometheus' PodMonitoring CRD, which --monitoring renders on GKE instead of a PodMonitor: the
    platform provides it (INSTALL_GMP), `llmd prereqs install` cannot."""
    st = State(GMP, f"GKE Managed Prometheus ({GKE_MONITORING_CRD})", "crds", "managed by GKE")
    present = get_crds(kubectl, [GKE_MONITORING_CRD])
    st.installed = st.ok = GKE_MONITORING_CRD in present
    st.names = tuple(present)
    st.detail = "present" if st.ok else f"missing; llmd does not install it: {INSTALL_GMP}"
    return st


def image_tag(image: str) -> str:
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    return tag if name and "/" not in tag else ""


def _env_of(dep: dict[str, Any]) -> dict[str, str]:
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return {e.get("name", ""): str(e.get("value", "")) for c in containers for e in c.get("env") or []
            if "value" in e}


def _available(dep: dict[str, Any]) -> tuple[int, int]:
    desired = int((dep.get("spec") or {}).get("replicas", 1) or 0)
    return int((dep.get("status") or {}).get("availableReplicas") or 0), max(desired, 1)


def recorded(kubectl: Kubectl, comp: ChartComponent) -> dict[str, str] | None:
    """llmd's record of what it installed in the component's namespace; None when llmd installed nothing there."""
    cm = scoped(kubectl, comp.namespace).get_json("configmaps", RECORD)
    if cm is None or not _ours(cm.get("metadata") or {}, comp.key):
        return None
    return {str(a): str(b) for a, b in (cm.get("data") or {}).items()}


def chart_state(kubectl: Kubectl, comp: ChartComponent, *, with_record: bool = True) -> State:
    """The controller Deployment(s) in the component's namespace, and llmd's record there (one call fewer
    without it: doctor reads the record only when the component needs fixing)."""
    k = scoped(kubectl, comp.namespace)
    st = State(comp.key, comp.title, "chart", comp.version)
    if comp.deployment:
        one = k.get_json("deployments.apps", comp.deployment)
        deps = [one] if one else []
    else:
        deps = list((k.get_json("deployments.apps") or {}).get("items") or [])
    rec = recorded(kubectl, comp) if with_record else None
    if rec is not None:
        st.record, st.by_llmd = rec, True
    where = f"{comp.namespace}/{comp.deployment}" if comp.deployment else comp.namespace
    if not deps:
        st.detail = f"no {'Deployment ' + where if comp.deployment else 'Deployment in ' + where}"
        return st
    st.installed = True
    first = deps[0]
    containers = ((first.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    st.version = (image_tag(str(containers[0].get("image", "")))
                  or str(((first.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version", ""))
                  or st.record.get("version", ""))
    counts = [_available(d) for d in deps]
    st.ready = all(a >= d for a, d in counts)
    st.detail = f"{where}: " + ", ".join(f"{(d.get('metadata') or {}).get('name')} {a}/{n} available"
                                         for d, (a, n) in zip(deps, counts, strict=True))
    env = _env_of(first)
    wrong = [f"{name}={env[name] if name in env else '(unset)'}" for name, value in comp.env.items()
             if env.get(name) != value]
    st.problem = (f"{where} runs without " + ", ".join(f"{n}={v}" for n, v in comp.env.items())
                  + f" (found {', '.join(wrong)})") if wrong else ""
    st.ok = not wrong
    return st


def states(kubectl: Kubectl, cat: Catalog, environment: str) -> list[State]:
    """Every prerequisite, in install order: the CRD bundles, the environment's control plane (or, on a managed
    platform, its monitoring API), LWS."""
    out = list(crd_states(kubectl, cat.crds.values()).values())
    cp = cat.control_plane(environment)
    if cp is not None:
        out.append(chart_state(kubectl, cp))
    if cat.monitoring_bundle(environment) is None:
        out.append(gmp_state(kubectl))
    out.append(chart_state(kubectl, cat.charts["lws"]))
    return out
