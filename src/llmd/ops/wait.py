"""Our own two-phase readiness wait (rule 15: never trust `helm --wait` for vLLM).

One `kubectl get <kinds> -o json` per poll lists every object we watch. Components become ready
(ready/desired), terminal pod states fail fast with a hint (exit 6), a rejected HTTPRoute fails with
its condition (exit 5), and the deadline ends in exit 6 with diagnostics. Time comes from `CLOCK`, so
tests swap in a fake clock instead of sleeping. Progress goes to a ReadinessView: the CLI's live table
(`Ui.readiness_view`, llmd.cli.readiness_view), else plain lines; this module draws nothing itself.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Protocol

from llmd.errors import ClusterError, DeployError, NotReadyError
from llmd.kube.kubectl import Kubectl, classify_failure, raise_cluster_error
from llmd.ops import diagnose
from llmd.ops.target import llmd_command

POLL_S = 5.0
UNSCHEDULABLE_GRACE_S = 120.0  # a pod the scheduler cannot place for this long fails the deploy
# ...unless preflight found no schedulable node with the accelerator at all: then only a node autoscaler could
# help, and the verdict (with the hint) comes after a short wait instead of two minutes.
NO_ACCELERATOR_GRACE_S = 15.0
ROUTE_REJECT_POLLS = 2  # a route condition False on this many polls in a row is a real rejection


class Clock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


CLOCK = Clock()

KINDS = {
    "download": ("jobs.batch", "pods"),
    "epp": ("deployments.apps", "pods"),
    "gateway": ("deployments.apps", "pods", "gateways.gateway.networking.k8s.io"),
    "decode": ("deployments.apps", "pods"),
    "route": ("httproutes.gateway.networking.k8s.io",),
}
PHASES = {"download": "downloading model", "epp": "starting the endpoint picker", "gateway": "starting the gateway",
          "decode": "starting model servers", "route": "waiting for the HTTPRoute"}


@dataclass
class Component:
    key: str
    name: str  # object name shown to the user
    ready: int = 0
    desired: int = 1
    note: str = ""
    rolled_out: bool = True  # False while a Deployment still rolls out a new pod template (deployment_rollout)

    @property
    def done(self) -> bool:
        return (self.rolled_out and self.ready >= self.desired
                and (self.desired > 0 or self.note == "scaled to 0"))

    def to_dict(self) -> dict:
        return {"component": self.key, "name": self.name, "ready": self.ready, "desired": self.desired,
                "rolled_out": self.rolled_out, "note": self.note}


@dataclass
class Readiness:
    components: list[Component] = field(default_factory=list)
    elapsed_s: float = 0.0
    phase: str = ""

    def to_dict(self) -> dict:
        return {"components": [c.to_dict() for c in self.components], "elapsed_s": round(self.elapsed_s, 1)}

    def line(self) -> str:
        """One plain progress line (without the elapsed time, so it changes only when the state does)."""
        parts = [f"{c.key} {c.ready}/{c.desired}" + (f" ({c.note})" if c.note and not c.done else "")
                 for c in self.components]
        return " · ".join(parts) + f" — {self.phase}"


def _condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


@dataclass(frozen=True)
class Rollout:
    """A Deployment as the readiness table shows it: Ready pods over spec.replicas, and whether the rollout of
    its current pod template is complete."""

    ready: int
    desired: int
    rolled_out: bool
    note: str = ""  # why it is not rolled out yet


def deployment_rollout(dep: dict | None) -> Rollout:
    """`kubectl rollout status deployment/X`'s verdict (rule 15, F71): complete only when the controller has
    observed the current spec, every desired replica runs the new template, no old-ReplicaSet replica is left and
    the updated ones are available. Right after a sync that changed the pod template the OLD pods are still Ready:
    readyReplicas alone would call the stack ready while the old EPP (the old scheduler) still serves.
    A ProgressDeadlineExceeded condition is only noted (kubectl gives up on it): a vLLM replica may load its model
    for longer than the default 600 s deadline and still come up; --timeout and the fail-fast findings decide."""
    if dep is None:
        return Rollout(0, 1, False, "not created yet")
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    desired = 1 if spec.get("replicas") is None else int(spec["replicas"])
    ready = int(status.get("readyReplicas") or 0)
    generation = int((dep.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return Rollout(ready, desired, False, "rolling out (new spec not observed yet)")
    updated = int(status.get("updatedReplicas") or 0)
    old = int(status.get("replicas") or 0) - updated
    available = int(status.get("availableReplicas") or 0)
    if updated >= desired and old <= 0 and available >= updated:
        return Rollout(ready, desired, True, "scaled to 0" if desired == 0 else "")
    note = f"rolling out ({updated}/{desired} updated"
    note += f", {old} old pod{'s' if old > 1 else ''} left" if old > 0 else ""
    note += f", {available} available" if updated >= desired and old <= 0 else ""
    progressing = _condition(dep, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        note += ", progress deadline exceeded"
    return Rollout(ready, desired, False, note + ")")


def route_conditions(route: dict) -> list[dict]:
    """Accepted / ResolvedRefs conditions over every parent that reported status."""
    out = []
    for parent in (route.get("status") or {}).get("parents") or []:
        out += [c for c in parent.get("conditions") or [] if c.get("type") in ("Accepted", "ResolvedRefs")]
    return out


class Watcher:
    """Evaluates one snapshot of the namespace against the components being waited for."""

    def __init__(self, settings, kubectl: Kubectl, keys: tuple[str, ...], *,
                 unschedulable_grace_s: float = UNSCHEDULABLE_GRACE_S) -> None:
        self.s = settings
        self.kubectl = kubectl
        self.keys = keys
        self.unschedulable_grace_s = unschedulable_grace_s
        self.unschedulable_since: dict[str, float] = {}
        self.route_rejections = 0
        self.prefixes = {"download": f"{settings.download_job_name}-", "epp": f"{settings.epp_name}-",
                         "decode": f"{settings.decode_deployment}-"}
        if settings.gateway_service:
            self.prefixes["gateway"] = f"{settings.gateway_service}-"

    def kinds(self) -> tuple[str, ...]:
        seen: list[str] = []
        for k in self.keys:
            seen += [kind for kind in KINDS[k] if kind not in seen]
        return tuple(seen)

    def fetch(self) -> dict[str, list[dict]]:
        res = self.kubectl.run("get", ",".join(self.kinds()), "--output", "json", check=False, timeout=30)
        if not res.ok:
            raise_cluster_error(res, classify_failure(res), self.kubectl.scope)
        try:
            items = json.loads(res.stdout or "{}").get("items") or []
        except json.JSONDecodeError as exc:
            raise ClusterError(f"kubectl returned invalid JSON while waiting: {exc}") from None
        by_kind: dict[str, list[dict]] = {}
        for item in items:
            by_kind.setdefault(item.get("kind", ""), []).append(item)
        return by_kind

    def pods_of(self, key: str, pods: list[dict]) -> list[dict]:
        prefix = self.prefixes.get(key)
        return [p for p in pods if prefix and p["metadata"]["name"].startswith(prefix)] if prefix else []

    def evaluate(self, snap: dict[str, list[dict]], now: float) -> list[Component]:
        named = {(kind, o["metadata"]["name"]): o for kind, objs in snap.items() for o in objs}
        pods = snap.get("Pod", [])
        out: list[Component] = []
        for key in self.keys:
            comp = self.component(key, named)
            out.append(comp)
            for pod in self.pods_of(key, pods):
                self._fail_fast(key, pod, now, comp)
        return out

    def component(self, key: str, named: dict) -> Component:
        s = self.s
        if key == "download":
            job = named.get(("Job", s.download_job_name))
            comp = Component(key, s.download_job_name)
            if job is None:
                comp.note = "job not found"
                return comp
            finding = diagnose.job_failure(self.kubectl, job, s)
            if finding:
                raise NotReadyError(f"model download job {s.download_job_name} failed: {finding.reason}",
                                    hint=finding.hint, details=finding.message)
            complete = _condition(job, "Complete")
            comp.ready = 1 if complete and complete.get("status") == "True" else 0
            comp.note = "" if comp.ready else "downloading"
            return comp
        if key in ("epp", "decode"):
            name = s.epp_name if key == "epp" else s.decode_deployment
            r = deployment_rollout(named.get(("Deployment", name)))
            return Component(key, name, r.ready, r.desired, r.note, r.rolled_out)
        if key == "gateway":
            gw = named.get(("Gateway", s.gateway_name))
            programmed = _condition(gw, "Programmed") if gw else None
            is_programmed = bool(programmed and programmed.get("status") == "True")
            dep = named.get(("Deployment", s.gateway_service)) if s.gateway_service else None
            rolled_out, note = True, ""
            if dep is not None:
                r = deployment_rollout(dep)
                ready, desired, rolled_out, note = r.ready, r.desired, r.rolled_out, r.note
                ready = ready if is_programmed else min(ready, desired - 1)
            else:
                ready, desired = (1 if is_programmed else 0), 1
            if not is_programmed:
                note = ("Gateway not created yet" if gw is None else
                        f"not Programmed: {(programmed or {}).get('message', 'no status yet')}")
            return Component(key, s.gateway_name, max(ready, 0), desired, note, rolled_out)
        # route
        route = named.get(("HTTPRoute", s.httproute_name))
        comp = Component(key, s.httproute_name)
        if route is None:
            comp.note = "not found"
            return comp
        conds = route_conditions(route)
        rejected = [c for c in conds if c.get("status") == "False"]
        if rejected:
            self.route_rejections += 1
            if self.route_rejections >= ROUTE_REJECT_POLLS:
                msg = "; ".join(f"{c['type']}=False ({c.get('reason', '')}): {c.get('message', '')}" for c in rejected)
                raise DeployError(f"HTTPRoute {s.httproute_name} was not accepted by the gateway",
                                  hint=f"check that the route's parent is Gateway {s.gateway_name} and its backend "
                                       f"is InferencePool {s.pool_name} (group inference.networking.k8s.io)",
                                  details=msg)
            comp.note = "rejected (re-checking)"
            return comp
        self.route_rejections = 0
        ok = {c["type"] for c in conds if c.get("status") == "True"}
        comp.ready = 1 if {"Accepted", "ResolvedRefs"} <= ok else 0
        comp.note = "" if comp.ready else "no status from the gateway controller yet"
        return comp

    def _fail_fast(self, key: str, pod: dict, now: float, comp: Component) -> None:
        name = pod["metadata"]["name"]
        finding = diagnose.terminal_finding(self.kubectl, pod, self.s)
        if finding:
            raise NotReadyError(f"{key} pod {name}: {finding.reason}", hint=finding.hint, details=finding.message)
        msg = diagnose.unschedulable_message(pod)
        if msg is None:
            self.unschedulable_since.pop(name, None)
            return
        first = self.unschedulable_since.setdefault(name, now)
        comp.note = f"Pending: {msg}"
        if now - first >= self.unschedulable_grace_s:
            hint = "free or add capacity, or lower --replicas / --tensor-parallel"
            if "nvidia.com/gpu" in msg or "amd.com/gpu" in msg or "google.com/tpu" in msg:
                hint = ("not enough free accelerators: lower --replicas or --tensor-parallel, or add GPU nodes "
                        "(`kubectl describe nodes` shows what is allocated)")
            elif "persistentvolumeclaim" in msg.lower() or "persistent volume" in msg.lower():
                # The cache PVC asks for ReadWriteMany (replicas on several nodes mount it): block storage
                # (EBS, PD, local-path) never binds it.
                hint = (f"the model-cache PVC {self.s.pvc_name} is not bound; it needs a StorageClass with "
                        "ReadWriteMany (NFS, EFS, Filestore, CephFS): pass --storage-class <that class>, or use "
                        f"--model-cache emptydir (`kubectl describe pvc {self.s.pvc_name} -n {self.s.namespace}` "
                        "shows why)")
            raise NotReadyError(f"{key} pod {name} cannot be scheduled for {now - first:.0f}s",
                                hint=hint, details=f"scheduler: {msg}")


class ReadinessView(Protocol):
    """How a readiness wait shows its progress: a context manager told every polled state (the CLI's is a live
    table on a terminal, llmd.cli.readiness_view.ReadinessTable; `Ui.readiness_view` names it)."""

    def __enter__(self) -> ReadinessView: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, state: Readiness) -> None: ...


class PlainProgress:
    """One plain line whenever the state changes (no terminal, or no view given)."""

    def __init__(self, ui) -> None:
        self.ui = ui
        self.last = ""

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, state: Readiness) -> None:
        text = state.line()
        if text != self.last:
            self.last = text
            self.ui.info(f"  [{state.elapsed_s:4.0f}s] {text}")


@contextlib.contextmanager
def _quiet_polls(runner, ui):
    """A poll every few seconds would flood the terminal with `$ kubectl get …` echoes: show them only
    with -v (the transcript still records every one)."""
    echo = runner.echo
    if ui.verbose <= 0:
        runner.echo = None
    try:
        yield
    finally:
        runner.echo = echo


def wait_ready(settings, kubectl: Kubectl, ui, keys: tuple[str, ...], *, timeout_s: float,
               started: float | None = None, unschedulable_grace_s: float = UNSCHEDULABLE_GRACE_S) -> Readiness:
    """Poll until every component in `keys` is ready; raise NotReadyError/DeployError otherwise."""
    watcher = Watcher(settings, kubectl, keys, unschedulable_grace_s=unschedulable_grace_s)
    t0 = CLOCK.now() if started is None else started
    state = Readiness()
    view = ui.readiness_view
    with (view(ui) if view is not None else PlainProgress(ui)) as display, _quiet_polls(kubectl.runner, ui):
        while True:
            now = CLOCK.now()
            state.components = watcher.evaluate(watcher.fetch(), now)
            state.elapsed_s = now - t0
            pending = [c for c in state.components if not c.done]
            state.phase = PHASES[pending[0].key] if pending else "ready"
            display.update(state)
            if not pending:
                return state
            if now - t0 >= timeout_s:
                raise NotReadyError(
                    f"not ready after {now - t0:.0f}s: " + ", ".join(f"{c.key} {c.ready}/{c.desired}" for c in pending),
                    hint="raise --timeout if the model is still loading; "
                         f"`{llmd_command(settings, kubectl.scope.context, 'status')}` shows the current state",
                    details=diagnostics(watcher, pending))
            CLOCK.sleep(min(POLL_S, timeout_s - (now - t0)))  # the last poll lands on the deadline, not after it


def diagnostics(watcher: Watcher, pending: list[Component]) -> str:
    """Per pending component: its note, its non-ready pods with their state, the download's last output line,
    and recent warning events."""
    lines = [f"  {c.key} {c.name}: {c.ready}/{c.desired} {c.note}".rstrip() for c in pending]
    if any(c.key == "download" for c in pending):  # F30: how far the download got
        progress = diagnose.pod_logs(watcher.kubectl, f"job/{watcher.s.download_job_name}", None, previous=False)
        last = [ln.strip() for ln in progress.splitlines() if ln.strip()]
        lines.append(f"    last download output: {last[-1][:300] if last else '(none)'}")
    try:
        snap = watcher.fetch()
    except ClusterError:
        return "\n".join(lines)
    ours = set()
    for c in pending:
        for pod in watcher.pods_of(c.key, snap.get("Pod", [])):
            ours.add(pod["metadata"]["name"])
            phase = (pod.get("status") or {}).get("phase", "?")
            waiting = [((cs.get("state") or {}).get("waiting") or {}).get("reason") for cs in
                       diagnose.container_states(pod)]
            reasons = ", ".join(r for r in waiting if r) or "containers not ready"
            lines.append(f"    pod {pod['metadata']['name']}: {phase}, {reasons}")
    events = watcher.kubectl.get_json("events", selector=None) or {}
    warn = [e for e in events.get("items", []) if e.get("type") == "Warning"
            and (e.get("involvedObject") or {}).get("name") in ours | {c.name for c in pending}]
    warn.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    lines += [f"    event {e['involvedObject'].get('name')}: {e.get('reason')}: {e.get('message', '').strip()}"
              for e in warn[-8:]]
    return "\n".join(lines)
