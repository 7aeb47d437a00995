"""`llmd cleanup`: remove what llmd created, and nothing else. Best-effort and complete.

Guards come first and make no calls: protected namespaces are refused (exit 10), whatever --force
says. Then only the three helm releases and the objects labelled managed-by=llmd + instance=<postfix>
are removed; the namespace only with --remove-namespace and only when llmd created it (its label).
Every step runs even after one fails; each is reported as removed / absent / failed / kept, and a
PVC or namespace that stays Terminating past a bounded wait is named with what holds it (exit 9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmd import proc
from llmd.errors import Interrupted, Refused
from llmd.kube.helm import Helm
from llmd.kube.kubectl import Kubectl, classify_failure
from llmd.ops import wait
from llmd.ops.reach import reach_target
from llmd.ops.target import Target, llmd_command
from llmd.presets import facts
from llmd.proc import Runner
from llmd.render.manifests import MANAGED_BY, is_managed, label_selector, owner_labels

PVC_WAIT_S = 60.0
NAMESPACE_WAIT_S = 120.0
# Kinds llmd applies itself, removed by label. Order: users of the PVC before the PVC.
OWNED_KINDS = (
    ("httproute", "httproutes.gateway.networking.k8s.io"),
    ("job", "jobs.batch"),
    ("configmap", "configmaps"),
    ("secret", "secrets"),
    ("pvc", "persistentvolumeclaims"),
)


def is_protected(namespace: str) -> bool:
    return namespace in facts.protected_namespaces() or namespace.startswith("kube-")


def guard(settings) -> None:
    """Refuse protected namespaces before any call (exit 10); --force never bypasses this."""
    if is_protected(settings.namespace):
        raise Refused(f"refusing to clean up protected namespace {settings.namespace!r}",
                      hint="llmd only cleans up namespaces it deploys to; pass the stack's -n/--namespace")


def selector(settings) -> str:
    return label_selector(owner_labels(settings))


@dataclass
class Row:
    what: str
    name: str
    status: str  # removed | absent | failed | kept | planned
    detail: str = ""

    def to_dict(self) -> dict:
        return {"what": self.what, "name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Inventory:
    namespace: dict | None
    releases: list[str] = field(default_factory=list)
    owned: dict[str, list[str]] = field(default_factory=dict)  # kind key -> names
    others: list[str] = field(default_factory=list)  # Helm releases in the namespace that are not this stack's

    @property
    def namespace_owned(self) -> bool:
        return is_managed(self.namespace)

    def empty(self, remove_namespace: bool) -> bool:
        if self.namespace is None:
            return True
        return not self.releases and not any(self.owned.values()) and not (remove_namespace and self.namespace_owned)


@dataclass
class CleanupReport:
    target: Target
    rows: list[Row] = field(default_factory=list)
    nothing_to_do: bool = False
    dry_run: bool = False
    planned: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not any(r.status == "failed" for r in self.rows)

    def add(self, what: str, name: str, status: str, detail: str = "") -> None:
        self.rows.append(Row(what, name, status, detail))

    def to_dict(self) -> dict:
        status = ("planned" if self.dry_run else "nothing to do" if self.nothing_to_do
                  else "complete" if self.complete else "incomplete")
        return {"status": status, "exit_code": 0 if self.complete else 9, "target": self.target.to_dict(),
                "steps": [r.to_dict() for r in self.rows], "plan": self.planned}


def take_inventory(settings, kubectl: Kubectl, helm: Helm) -> Inventory:
    ns = kubectl.get_json("namespace", settings.namespace, namespaced=False)
    inv = Inventory(ns)
    if ns is None:
        return inv
    found = helm.releases()
    inv.releases = [r for r in reversed(settings.releases) if r in found]  # ms, gaie, infra: dependents first
    inv.others = sorted(r for r in found if r not in settings.releases)
    for key, kind in OWNED_KINDS:
        data = kubectl.get_json(kind, selector=selector(settings)) or {}
        inv.owned[key] = [i["metadata"]["name"] for i in data.get("items", [])]
    return inv


def describe_plan(settings, inv: Inventory, *, keep_pvc: bool, remove_namespace: bool) -> list[tuple[str, str]]:
    items = [("helm release", r) for r in inv.releases]
    for key, _ in OWNED_KINDS:
        if key == "pvc" and keep_pvc:
            continue
        items += [(key, n) for n in inv.owned.get(key, [])]
    if remove_namespace and inv.namespace_owned and not inv.others:
        items.append(("namespace", settings.namespace))
    return items


class Cleaner:
    def __init__(self, settings, kubectl: Kubectl, helm: Helm, report: CleanupReport) -> None:
        self.s = settings
        self.runner = kubectl.runner
        self.kubectl = kubectl
        self.helm = helm
        self.report = report

    def uninstall(self, release: str) -> None:
        res = self.helm.uninstall(release, check=False)
        if res.dry_run:
            self.report.add("helm release", release, "planned")
        elif res.ok:
            self.report.add("helm release", release, "removed")
        elif "not found" in (res.stderr + res.stdout):
            self.report.add("helm release", release, "absent")
        else:
            self.report.add("helm release", release, "failed", res.tail(3))

    def delete_kind(self, key: str, kind: str, names: list[str]) -> None:
        if not names:
            self.report.add(key, "-", "absent", "none labelled for this release")
            return
        extra = ("--cascade=background",) if key == "job" else ()
        # By selector, not by name: the same command removes exactly what the inventory listed (and dry-run
        # can plan it without having listed anything).
        res = self.kubectl.run("delete", kind, "--selector", selector(self.s), "--ignore-not-found", "--wait=false",
                               *extra, mutates=True, check=False, timeout=60)
        if res.dry_run:
            self.report.add(key, ", ".join(names), "planned")
        elif res.ok:
            self.report.add(key, ", ".join(names), "removed")
        else:
            self.report.add(key, ", ".join(names), "failed", f"{classify_failure(res)}: {res.tail(3)}")

    def wait_gone(self, kind: str, name: str, limit_s: float, *, namespaced: bool = True) -> dict | None:
        """Poll until the object is gone; return its last state if it is still there at the deadline."""
        deadline = wait.CLOCK.now() + limit_s
        while True:
            obj = self.kubectl.get_json(kind, name, namespaced=namespaced)
            if obj is None or wait.CLOCK.now() >= deadline:
                return obj
            wait.CLOCK.sleep(wait.POLL_S)

    def settle_pvcs(self, names: list[str]) -> None:
        """A PVC stays Terminating while a pod mounts it (pvc-protection): wait, then name the holders."""
        for name in names:
            left = self.wait_gone("persistentvolumeclaims", name, PVC_WAIT_S)
            if left is None:
                continue
            pods = (self.kubectl.get_json("pods") or {}).get("items", [])
            holders = [p["metadata"]["name"] for p in pods
                       if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                              for v in (p.get("spec") or {}).get("volumes") or [])]
            self._mark_failed("pvc", name, f"still Terminating after {PVC_WAIT_S:.0f}s; held by pods: "
                                           f"{', '.join(holders) or 'none found (check finalizers)'}")

    def remove_namespace(self, inv: Inventory) -> None:
        ns = self.s.namespace
        if not inv.namespace_owned:
            self.report.add("namespace", ns, "kept",
                            "not created by llmd (no app.kubernetes.io/managed-by=llmd label): left in place")
            return
        if inv.others:  # e.g. a second stack (another --release-postfix): deleting the namespace would take it too
            self.report.add("namespace", ns, "kept", f"other Helm releases still live in it ({', '.join(inv.others)}); "
                                                     "remove them first, then re-run with --remove-namespace")
            return
        res = self.kubectl.run("delete", "namespace", ns, "--ignore-not-found", "--wait=false", namespaced=False,
                               mutates=True, check=False, timeout=60)
        if res.dry_run:
            self.report.add("namespace", ns, "planned", "only if it carries app.kubernetes.io/managed-by=llmd")
            return
        if not res.ok:
            self.report.add("namespace", ns, "failed", res.tail(3))
            return
        left = self.wait_gone("namespace", ns, NAMESPACE_WAIT_S, namespaced=False)
        if left is None:
            self.report.add("namespace", ns, "removed")
            return
        conds = [f"{c.get('type')}: {c.get('message')}" for c in (left.get("status") or {}).get("conditions") or []
                 if c.get("status") == "True"]
        self.report.add("namespace", ns, "failed", f"still Terminating after {NAMESPACE_WAIT_S:.0f}s; "
                                                   + ("; ".join(conds) or "no conditions reported")
                                                   + " (finalizers are never stripped automatically)")

    def _mark_failed(self, what: str, name: str, detail: str) -> None:
        for row in self.report.rows:
            if row.what == what and name in row.name.split(", "):
                row.status, row.detail = "failed", detail
                return
        self.report.add(what, name, "failed", detail)

    def run(self, inv: Inventory, *, keep_pvc: bool, remove_namespace: bool) -> None:
        for release in reversed(self.s.releases):
            if release in inv.releases:
                self.uninstall(release)
            else:
                self.report.add("helm release", release, "absent")
        for key, kind in OWNED_KINDS:
            names = inv.owned.get(key, [])
            if key == "pvc" and keep_pvc:
                self.report.add("pvc", ", ".join(names) or "-", "kept" if names else "absent",
                                "--keep-pvc: the model cache stays for the next deploy" if names else "")
                continue
            self.delete_kind(key, kind, names)
        pvc_deleted = any(r.what == "pvc" and r.status == "removed" for r in self.report.rows)
        if pvc_deleted:
            self.settle_pvcs(inv.owned["pvc"])
        if remove_namespace:
            self.remove_namespace(inv)


def plan_dry_run(settings) -> Inventory:
    """Without calls nothing is known: plan the removal of everything llmd could have created (the
    namespace delete is planned as if it carried the llmd label; a real run checks that first)."""
    inv = Inventory({"metadata": {"labels": dict(MANAGED_BY)}},
                    releases=list(reversed(settings.releases)))
    inv.owned = {key: ["(all labelled)"] for key, _ in OWNED_KINDS}
    return inv


def cleanup(settings, runner: Runner, ui, *, keep_pvc: bool = False, remove_namespace: bool = False,
            confirm: Callable[[str], bool] | None = None) -> CleanupReport:
    """`confirm` is asked once with the question naming context, server and namespace; None skips it (--force)."""
    guard(settings)
    scope, target = reach_target(settings, runner, ui.step)
    kubectl, helm = Kubectl(runner, scope), Helm(runner, scope)
    report = CleanupReport(target, dry_run=runner.dry_run)
    if runner.dry_run:
        inv = plan_dry_run(settings)
        Cleaner(settings, kubectl, helm, report).run(inv, keep_pvc=keep_pvc, remove_namespace=remove_namespace)
        report.planned = [c.display() for c in runner.planned]
        return report
    inv = take_inventory(settings, kubectl, helm)
    if inv.empty(remove_namespace):
        report.nothing_to_do = True
        return report
    items = describe_plan(settings, inv, keep_pvc=keep_pvc, remove_namespace=remove_namespace)
    ui.result(f"will remove from {target.describe()}:")  # the confirmation question needs the list, -q or not
    for what, name in items:
        ui.result(f"  - {what} {name}")
    if keep_pvc and inv.owned.get("pvc"):
        ui.result(f"  (keeping pvc {', '.join(inv.owned['pvc'])}: --keep-pvc)")
    if confirm is not None and not confirm(f"Remove these from namespace {settings.namespace} on context "
                                           f"{target.context} ({target.server or 'server unknown'})?"):
        raise Refused("cleanup cancelled; nothing was removed")
    try:
        Cleaner(settings, kubectl, helm, report).run(inv, keep_pvc=keep_pvc, remove_namespace=remove_namespace)
    except KeyboardInterrupt:
        done = [f"{r.what} {r.name}" for r in report.rows if r.status == "removed"]
        raise Interrupted("interrupted during cleanup; removed so far: " + (", ".join(done) or "nothing"),
                          hint=f"re-run `{llmd_command(settings, target.context, 'cleanup')}` to remove the rest "
                               "(safe to repeat)", signum=proc.last_signal) from None
    return report
