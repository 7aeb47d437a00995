"""`llmd prereqs install`: install what the stack needs and the cluster lacks, at the pinned releases.

Order: read the local CRD files (bad input is exit 2 before any call) and render the helmfile; pin the
context and reach the cluster; inspect every wanted component; decide per component (install, upgrade,
unchanged, or refuse); refuse everything at once before any change when one would downgrade or take over
someone else's install (exit 10); download the CRDs not given locally; apply the CRDs server-side and wait
until Established; sync the helmfile for the components that need it; record what llmd installed; wait
until the controllers run; end with doctor's verdict. A second run finds everything present and changes
nothing. Dry-run runs nothing and opens no socket: it writes the helmfile and lists the plan.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd import __version__, proc
from llmd.errors import ExitCode, Interrupted, NotReadyError, Refused
from llmd.kube.helm import Helmfile
from llmd.kube.kubectl import Kubectl
from llmd.ops import wait
from llmd.ops.preflight import GKE_MONITORING_CRD, INSTALL_GMP
from llmd.ops.prereqs import crds as C
from llmd.ops.prereqs.catalog import (
    COMPONENT_LABEL,
    MANAGED_BY,
    RECORD,
    Catalog,
    ChartComponent,
    CrdBundle,
    catalog,
    newer,
)
from llmd.ops.prereqs.inspect import State, chart_state, connect, crd_states, get_crds, scoped
from llmd.ops.target import Target
from llmd.proc import Runner
from llmd.render.prereqs import HELMFILE, ChartSources, mirror_notes, render_helmfile

# doctor checks that are about what `prereqs install` installs; the rest (HF token, GPUs...) are the deploy's
PREREQ_CHECKS = ("cluster", "kubernetes", "crds", "gateway class", "control plane", "monitoring", "lws")


@dataclass(frozen=True)
class Request:
    environment: str
    lws: bool = False
    monitoring: bool = False
    crd_dirs: tuple[Path, ...] = ()
    sources: ChartSources = field(default_factory=ChartSources)
    image_mirror: tuple[tuple[str, str], ...] = ()  # the stack's image_mirror rules, applied to the releases' images
    out_dir: Path = Path("prereqs")
    dry_run: bool = False
    wait_timeout_s: float = 600.0


@dataclass
class Step:
    name: str  # the component
    action: str  # install | upgrade | unchanged | refuse | planned
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"component": self.name, "action": self.action, "detail": self.detail}


@dataclass
class InstallReport:
    target: Target
    helmfile: str
    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    doctor: Any = None  # DoctorReport, run after a real install

    @property
    def changed(self) -> bool:
        return any(s.action in ("install", "upgrade") for s in self.steps)

    @property
    def prereq_failures(self) -> list[str]:
        if self.doctor is None:
            return []
        return [c.name for c in self.doctor.checks if c.failed and c.name in PREREQ_CHECKS]

    @property
    def exit_code(self) -> int:
        if not self.prereq_failures:
            return 0
        return int(self.doctor.exit_code) if self.doctor.exit_code else int(ExitCode.PREREQ)

    def to_dict(self) -> dict[str, Any]:
        return {"status": "planned" if self.dry_run else ("installed" if self.changed else "unchanged"),
                "exit_code": self.exit_code, "target": self.target.to_dict(), "helmfile": self.helmfile,
                "changed": self.changed, "steps": [s.to_dict() for s in self.steps], "plan": self.planned,
                "notes": self.notes, "doctor": self.doctor.to_dict() if self.doctor else None}


def wanted(cat: Catalog, req: Request) -> tuple[list[CrdBundle], list[ChartComponent]]:
    bundles = [cat.crds["gateway-api"], cat.crds["inference-extension"]]
    monitoring = cat.monitoring_bundle(req.environment) if req.monitoring else None
    if monitoring is not None:
        bundles.append(monitoring)
    charts = [c for c in (cat.control_plane(req.environment),) if c is not None]
    if req.lws:
        charts.append(cat.charts["lws"])
    return bundles, charts


def write_helmfile(out_dir: Path, text: str) -> Path:
    out_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = out_dir / HELMFILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


# ---- decisions ----------------------------------------------------------------------------------------------

def decide_crds(st: State, source_version: str, origin: str) -> Step:
    b = st.title
    if st.ok:
        return Step(st.key, "unchanged", f"present ({st.version or 'version unknown'})")
    if newer(st.version, source_version):
        return Step(st.key, "refuse", f"{b} {st.version} are installed ({st.problem}); {origin} holds "
                                      f"{source_version}, an older release: refusing to downgrade. Install the "
                                      f"missing CRDs of {st.version} yourself, or pass them with --crd-dir")
    what = "upgrade" if st.installed else "install"
    found = f" (found {st.version or 'an unknown release'}: {st.problem})" if st.installed else ""
    return Step(st.key, what, f"{source_version or 'unknown release'} from {origin}{found}")


def decide_chart(st: State, comp: ChartComponent, fix: str) -> Step:
    if st.ok:
        return Step(comp.key, "unchanged", f"present ({st.version or 'version unknown'}; {st.detail})")
    if not st.installed:
        return Step(comp.key, "install", f"{comp.version} into {comp.namespace}")
    if newer(st.version, comp.version):
        return Step(comp.key, "refuse", f"found {comp.title} {st.version} ({st.problem}); llmd pins "
                                        f"{comp.version} and will not downgrade it: {fix}")
    if st.by_llmd:
        return Step(comp.key, "upgrade", f"{st.version or '?'} -> {comp.version} ({st.problem})")
    return Step(comp.key, "refuse", f"found {comp.title} {st.version or '(version unknown)'} not installed by "
                                    f"llmd ({st.problem}); llmd will not take it over: {fix}")


def manual_fix(comp: ChartComponent, version: str = "") -> str:
    """The `helm upgrade` that turns the inference extension on in an install llmd did not make, at the release
    it runs (`version`, else the pin): llmd never takes such an install over."""
    if comp.extension_release and comp.extension_sets:
        chart = comp.release(comp.extension_release).chart
        sets = " ".join(f"--set {item}" for item in comp.extension_sets)
        return (f"set it on your install, e.g. `helm upgrade {comp.extension_release} {chart} -n {comp.namespace} "
                f"--version {version or comp.version} --reuse-values {sets}`")
    return f"fix or remove the install in {comp.namespace}"


# ---- the run ------------------------------------------------------------------------------------------------

class Installer:
    def __init__(self, settings, runner: Runner, ui, req: Request) -> None:
        self.s = settings
        self.runner = runner
        self.ui = ui
        self.req = req
        self.cat = catalog()

    def run(self) -> InstallReport:
        bundles, charts = wanted(self.cat, self.req)
        local = C.from_dirs(self.req.crd_dirs, self.cat)
        path = write_helmfile(self.req.out_dir, render_helmfile(charts, self.req.sources, self.req.image_mirror))
        kubectl, target = connect(self.s, self.runner, self.ui.info)
        report = InstallReport(target, str(path), dry_run=self.runner.dry_run)
        report.notes += mirror_notes(charts, self.req.image_mirror)
        if self.s.environment in self.cat.managed_environments:
            report.notes.append(f"environment {self.s.environment}: the platform runs the gateway control plane; "
                                "nothing to install for it (GKE >= 1.34.0-gke.1626000 also ships the CRDs)")
        if self.req.monitoring and self.cat.monitoring_bundle(self.s.environment) is None:
            report.notes.append(f"--monitoring on {self.s.environment}: the stack uses GKE Managed Prometheus' "
                                f"{GKE_MONITORING_CRD} CRD, not the Prometheus Operator's; llmd does not install it "
                                f"(doctor checks it): {INSTALL_GMP}")
        if self.runner.dry_run:
            return self.plan(report, bundles, charts, local, path)
        self.ui.step(f"inspecting the prerequisites on {target.describe()}")
        crd_st = crd_states(kubectl, bundles)
        chart_st = {c.key: chart_state(kubectl, c) for c in charts}
        sources = {b.key: local.get(b.key) for b in bundles}
        for b in bundles:
            src = sources[b.key]
            report.steps.append(decide_crds(crd_st[b.key], src.version if src else b.version,
                                            src.origin if src else b.url))
        for c in charts:
            report.steps.append(decide_chart(chart_st[c.key], c, manual_fix(c, chart_st[c.key].version)))
        refused = [s for s in report.steps if s.action == "refuse"]
        if refused:
            raise Refused("refusing to install prerequisites; nothing was changed:\n"
                          + "\n".join(f"  {s.name}: {s.detail}" for s in refused),
                          hint="the other components were not touched either; resolve these, then re-run")
        todo = {s.name for s in report.steps if s.action in ("install", "upgrade")}
        for b in bundles:  # every download before the first change: a failed one leaves the cluster as it was
            if b.key in todo and sources[b.key] is None:
                self.ui.step(f"downloading the {b.title} {b.version}")
                sources[b.key] = C.fetch(b)
        sync = [c for c in charts if c.key in todo]
        if sync and len(sync) < len(charts):
            # the file holds what is synced: helmfile adds every repository of the file, even unused ones
            path = write_helmfile(self.req.out_dir, render_helmfile(sync, self.req.sources, self.req.image_mirror))
            report.helmfile = str(path)
        done: list[str] = []
        try:
            for b in bundles:
                if b.key in todo:
                    self.apply_crds(kubectl, b, sources[b.key])
                    done.append(b.key)
            if sync:
                self.sync_charts(kubectl, path, sync=sync, before=chart_st)
                done += [c.key for c in sync]
            if charts:
                self.wait_ready(kubectl, charts)
        except KeyboardInterrupt:
            proc.kill_all_children()
            raise Interrupted(f"interrupted; installed so far: {', '.join(done) or 'nothing'}",
                              hint="re-run the same `llmd prereqs install` to finish (what is present is left "
                                   "alone); `llmd prereqs status` shows what is there",
                              signum=proc.last_signal) from None
        if not todo:
            self.ui.ok("nothing to install: every prerequisite is present (no change)")
        from llmd.ops.doctor import run_checks

        self.ui.step("checking with llmd doctor")
        report.doctor = run_checks(self.s, self.runner)
        return report

    def plan(self, report: InstallReport, bundles: list[CrdBundle], charts: list[ChartComponent],
             local: dict[str, C.CrdSource], path: Path) -> InstallReport:
        for b in bundles:
            src = local.get(b.key)
            report.steps.append(Step(b.key, "planned", f"{src.version if src else b.version} from "
                                                       f"{src.origin if src else b.url} (if missing)"))
            report.planned.append(f"kubectl apply --server-side --field-manager=llmd -f "
                                  f"{src.origin if src else b.url}")
        for c in charts:
            report.steps.append(Step(c.key, "planned", f"{c.version} into {c.namespace} (if missing)"))
        if charts:
            report.planned.append(f"helmfile --file {path} sync")
        report.notes.append("dry-run: the cluster was not inspected; a real run skips what is already installed")
        return report

    def apply_crds(self, kubectl: Kubectl, bundle: CrdBundle, source: C.CrdSource | None) -> None:
        assert source is not None  # resolved (read or downloaded) before the first change
        existing = get_crds(kubectl, source.names)
        ours = [n for n in source.names if n not in existing
                or (existing[n].get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL) == bundle.key]
        self.ui.step(f"applying {len(source.names)} CRDs: {bundle.title} {source.version or ''}".rstrip())
        C.apply(kubectl, source, C.prepared(source, ours))
        C.wait_established(kubectl, source.names)
        self.ui.ok(f"{bundle.title}: {len(source.names)} CRDs Established")

    def sync_charts(self, kubectl: Kubectl, path: Path, *, sync: list[ChartComponent],
                    before: dict[str, State]) -> None:
        created: dict[str, bool] = {}
        for c in sync:
            k = scoped(kubectl, c.namespace)
            ns = k.get_json("namespace", c.namespace, namespaced=False)
            created[c.key] = ns is None
            if ns is None:
                self.ssa(k, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": c.namespace, "labels": {**MANAGED_BY, COMPONENT_LABEL: c.key}}}, f"namespace {c.namespace}")
        self.ui.step("helmfile sync: " + ", ".join(f"{c.title} {c.version} into {c.namespace}" for c in sync))
        # no --namespace: the releases live in several namespaces, each its own (helmfile's flag would override all)
        Helmfile(self.runner, scoped(kubectl, "").scope).sync(path, on_line=self._helm_line)
        for c in sync:
            k = scoped(kubectl, c.namespace)
            was_ours = before[c.key].record.get("namespace-created") == "true"
            self.ssa(k, record(c, created[c.key] or was_ours),
                     f"record {RECORD} in {c.namespace}")

    def _helm_line(self, line: str) -> None:
        if line.strip():
            self.ui.detail(line)

    def ssa(self, kubectl: Kubectl, doc: dict[str, Any], what: str) -> None:
        kubectl.run(*C.SSA, "--filename", "-", namespaced=False, mutates=True, stdin=json.dumps(doc).encode(),
                    timeout=60, fail_code=ExitCode.DEPLOY_FAILED, title=f"apply {what}")

    def wait_ready(self, kubectl: Kubectl, charts: list[ChartComponent],
                   on_poll: Callable[[str], None] | None = None) -> None:
        deadline = wait.CLOCK.now() + self.req.wait_timeout_s
        last = ""
        while True:
            pending = []
            for c in charts:
                st = chart_state(kubectl, c)
                gc_ok = True
                if c.gateway_class and st.ready:
                    gc = kubectl.get_json("gatewayclasses.gateway.networking.k8s.io", c.gateway_class,
                                          namespaced=False)
                    gc_ok = gc is not None
                    if not gc_ok:
                        st.detail += f"; GatewayClass {c.gateway_class} not created yet"
                if not (st.installed and st.ready and gc_ok):
                    pending.append(f"{c.title}: {st.detail}")
            if not pending:
                self.ui.ok("control plane ready: " + ", ".join(f"{c.title} {c.version}" for c in charts))
                return
            line = "; ".join(pending)
            if line != last:
                self.ui.info(f"  waiting: {line}")
                last = line
            if wait.CLOCK.now() >= deadline:
                raise NotReadyError(f"not ready after {self.req.wait_timeout_s:.0f}s: {line}",
                                    hint="look at the pods: `kubectl get pods -n "
                                         f"{charts[0].namespace}` (events: `kubectl get events -n "
                                         f"{charts[0].namespace}`); re-run when they run (safe to repeat)")
            wait.CLOCK.sleep(wait.POLL_S)


def record(comp: ChartComponent, namespace_created: bool) -> dict[str, Any]:
    """What llmd installed in this namespace (read by status and uninstall)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RECORD, "namespace": comp.namespace,
                         "labels": {**MANAGED_BY, COMPONENT_LABEL: comp.key}},
            "data": {"component": comp.key, "version": comp.version,
                     "releases": ",".join(r.name for r in comp.releases),
                     "namespace-created": "true" if namespace_created else "false", "llmd-version": __version__}}


def install(settings, runner: Runner, ui, req: Request) -> InstallReport:
    return Installer(settings, runner, ui, req).run()
