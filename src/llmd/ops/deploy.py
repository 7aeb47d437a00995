"""`llmd deploy`: render, preflight, apply, wait — idempotent, recoverable, and dry-run on the same path.

Order: render the bundle (pure) and write it; pin the context; preflight; refuse (or `--recover`)
releases left pending by an interrupted run; namespace (labelled only when we create it); HF token
Secret over stdin; model-cache PVC and the download Job, waited for so N replicas never each download
the model; `helmfile sync`, skipped when the recorded bundle digest matches and every release is
`deployed`; the HTTPRoute; then our own readiness wait. Dry-run runs this same code with a Runner that
records commands instead of starting them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from llmd import proc
from llmd.errors import ClusterError, CommandFailed, DeployError, ExitCode, Interrupted, Refused
from llmd.kube.helm import Helm, Helmfile, Release
from llmd.kube.kubectl import Kubectl, classify_failure
from llmd.ops import state, wait
from llmd.ops.cleanup import is_protected
from llmd.ops.deploy_preflight import preflight
from llmd.ops.deploy_steps import DEPLOY_STEPS
from llmd.ops.preflight import PreflightReport, check_tools, recover_hint
from llmd.ops.target import Target, llmd_command, pin_target
from llmd.proc import Runner
from llmd.render import bundle as B
from llmd.settings import Settings

SSA = ("apply", "--server-side", "--field-manager=llmd", "--force-conflicts")


@dataclass
class StepResult:
    name: str
    status: str  # done | unchanged | skipped | planned
    detail: str = ""

    def to_dict(self) -> dict:
        return {"step": self.name, "status": self.status, "detail": self.detail}


@dataclass
class DeployReport:
    target: Target
    rendered_dir: str
    digest: str
    dry_run: bool = False
    changed: bool = False  # helmfile sync ran
    steps: list[StepResult] = field(default_factory=list)
    preflight: PreflightReport | None = None
    readiness: wait.Readiness | None = None
    releases: dict[str, Release] = field(default_factory=dict)
    planned: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    what: str = ""  # what was deployed, when not the three Helm releases (the local platform)

    def step(self, name: str, status: str, detail: str = "") -> None:
        if self.dry_run and status == "done":
            status = "planned"
        self.steps.append(StepResult(name, status, detail))

    def next_commands(self, settings) -> list[str]:
        return [llmd_command(settings, self.target.context, verb) for verb in ("test", "status", "cleanup")]

    def to_dict(self) -> dict:
        return {
            "status": "planned" if self.dry_run else "deployed",
            "exit_code": 0,
            "target": self.target.to_dict(),
            "rendered_dir": self.rendered_dir,
            "digest": self.digest,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "steps": [s.to_dict() for s in self.steps],
            "preflight": self.preflight.to_dict() if self.preflight else None,
            "readiness": self.readiness.to_dict() if self.readiness else None,
            "releases": {k: v.to_dict() for k, v in self.releases.items()},
            "plan": self.planned,
            "elapsed_s": round(self.elapsed_s, 1),
        }


def secret_manifest(settings) -> bytes:
    """The HF token Secret as JSON for stdin. Server-side apply keeps it out of last-applied annotations."""
    from llmd.render.manifests import owner_labels

    token = settings.hf_token or ""
    doc = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": settings.hf_secret_name, "namespace": settings.namespace,
                        "labels": owner_labels(settings, "hf-token")},
           "data": {"HF_TOKEN": base64.b64encode(token.encode()).decode()}}
    return json.dumps(doc).encode()


def namespace_manifest(settings) -> bytes:
    from llmd.render.manifests import MANAGED_BY

    return json.dumps({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": settings.namespace, "labels": dict(MANAGED_BY)}}).encode()


class Deployer:
    def __init__(self, settings, runner: Runner, ui, *, out_dir: Path, recover: bool = False) -> None:
        self.s = settings
        self.runner = runner
        self.ui = ui
        self.out_dir = Path(out_dir)
        self.recover = recover

    # -- helpers

    def apply(self, what: str, *, stdin: bytes | None = None, path: Path | None = None) -> None:
        args = (*SSA, "--filename", str(path) if path else "-")
        self.kubectl.run(*args, mutates=True, stdin=stdin, check=True, fail_code=ExitCode.DEPLOY_FAILED,
                         timeout=60, title=f"apply {what}")

    def llmd(self, verb: str, *extra: str) -> str:
        """A follow-up command for this stack, for hints."""
        return llmd_command(self.s, self.kubectl.scope.context, verb, *extra)

    def remaining(self) -> float:
        return max(0.0, self.s.timeout - (wait.CLOCK.now() - self.t0))

    # -- the run

    def run(self) -> DeployReport:
        from llmd.render import render_bundle

        self.t0 = wait.CLOCK.now()
        if is_protected(self.s.namespace):  # cleanup refuses these namespaces, so nothing put there could go
            raise Refused(f"refusing to deploy into protected namespace {self.s.namespace!r}: `llmd cleanup` "
                          "never touches it, so the stack could not be removed",
                          hint=f"pass -n <a namespace of its own> (default {Settings().namespace})")
        bundle = render_bundle(self.s)
        for warning in bundle.warnings:
            self.ui.warn(warning)
        rendered = bundle.write(self.out_dir)
        checks = PreflightReport()
        check_tools(self.runner, checks)  # every missing tool at once, before the first subprocess
        scope, target = pin_target(self.s, self.runner)
        self.kubectl = Kubectl(self.runner, scope)
        self.helm = Helm(self.runner, scope)
        self.helmfile = Helmfile(self.runner, scope)
        report = DeployReport(target, str(rendered), bundle.digest(), dry_run=self.runner.dry_run)
        self.report = report
        self.ui.step(f"deploying to {target.describe()}")
        self.ui.info(f"  rendered files: {rendered}")
        from llmd.render.mirror import summary

        for line in summary(self.s):
            self.ui.info(f"  {line}")

        report.preflight = checked = preflight(self.s, self.runner, self.kubectl, target, checks,
                                               needs_pvc=B.PVC in bundle.files, say=self.ui.step)
        for c in report.preflight.checks:
            if c.status == "warn":
                self.ui.warn(f"{c.name}: {c.message}")
        self.ui.ok("preflight passed" if not self.runner.dry_run else "preflight planned")
        report.step("preflight", "planned" if self.runner.dry_run else "done",
                    "; ".join(f"{c.name} {c.status}" for c in report.preflight.checks))

        releases = self.check_pending()
        run_step = {  # the order and what applies: llmd.ops.deploy_steps (render's by-hand list reads it too)
            "namespace": lambda: self.ensure_namespace(checked),
            "secret": self.ensure_secret,
            "model_cache": lambda: self.ensure_model_cache(rendered),
            "charts": lambda: self.sync_charts(rendered, bundle, releases),
            "route": lambda: self.ensure_route(rendered),
        }
        for step in DEPLOY_STEPS:
            if step.applies(self.s, bundle.files):
                run_step[step.key]()
            elif step.skipped:
                name, why = step.skipped
                report.step(name, "skipped", why)

        if self.runner.dry_run:
            report.step("wait", "planned", "wait for the EPP, the gateway, every decode replica and the HTTPRoute")
        else:
            try:
                # no accelerator anywhere (preflight counted 0): Unschedulable is the verdict, not a phase
                grace = (wait.NO_ACCELERATOR_GRACE_S if report.preflight.accelerators == 0
                         else wait.UNSCHEDULABLE_GRACE_S)
                report.readiness = wait.wait_ready(self.s, self.kubectl, self.ui,
                                                   ("epp", "gateway", "decode", "route"), timeout_s=self.remaining(),
                                                   unschedulable_grace_s=grace)
            except KeyboardInterrupt:
                raise Interrupted("interrupted while waiting for readiness; everything is installed and keeps "
                                  "starting in the cluster",
                                  hint=f"`{self.llmd('status')}` shows progress; re-run `llmd deploy` "
                                       "to resume waiting (nothing is re-installed)",
                                  signum=proc.last_signal) from None
            report.step("wait", "done", f"ready in {report.readiness.elapsed_s:.0f}s")
            report.releases = {k: v for k, v in self.helm.releases().items() if k in self.s.releases}
        report.planned = [c.display() for c in self.runner.planned]
        report.elapsed_s = wait.CLOCK.now() - self.t0
        return report

    def check_pending(self) -> dict[str, Release]:
        """Rule 16: a release stuck pending-* from an interrupted run is reported, never silently repaired."""
        releases = {k: v for k, v in self.helm.releases().items() if k in self.s.releases}
        pending = [r for r in releases.values() if r.pending]
        if not pending:
            return releases
        if not self.recover:
            raise DeployError(
                "release(s) left pending by an interrupted run: "
                + ", ".join(f"{r.name} ({r.status}, revision {r.revision})" for r in pending),
                hint=recover_hint(self.s, self.kubectl.scope.context))
        for rel in pending:
            self.recover_release(rel)
        return {k: v for k, v in self.helm.releases().items() if k in self.s.releases}

    def recover_release(self, rel: Release) -> None:
        history = self.helm.history(rel.name)
        good = [int(h.get("revision", 0)) for h in history
                if h.get("status") in ("deployed", "superseded") and int(h.get("revision", 0)) < rel.revision]
        if rel.revision <= 1 or not good:
            self.ui.step(f"recover: uninstalling {rel.name} ({rel.status} at revision {rel.revision})")
            self.helm.uninstall(rel.name)
            self.report.step(f"recover {rel.name}", "done", "uninstalled (no earlier good revision)")
        else:
            self.ui.step(f"recover: rolling {rel.name} back to revision {max(good)}")
            self.helm.rollback(rel.name, max(good))
            self.report.step(f"recover {rel.name}", "done", f"rolled back to revision {max(good)}")

    def ensure_namespace(self, pf: PreflightReport) -> None:
        if pf.namespace_exists:
            detail = "exists" + ("" if pf.namespace_owned else " (not created by llmd: left unlabelled)")
            self.report.step("namespace", "unchanged", detail)
            return
        self.apply(f"namespace {self.s.namespace}", stdin=namespace_manifest(self.s))
        self.report.step("namespace", "done",
                         f"created {self.s.namespace} (labelled app.kubernetes.io/managed-by=llmd)")

    def ensure_secret(self) -> None:
        if not self.s.hf_token:
            self.report.step("hf token secret", "skipped", "no HF token (public model)")
            return
        self.apply(f"Secret {self.s.hf_secret_name}", stdin=secret_manifest(self.s))
        self.report.step("hf token secret", "done", f"{self.s.hf_secret_name} (key HF_TOKEN, sent on stdin)")

    def ensure_route(self, rendered: Path) -> None:
        self.apply("HTTPRoute", path=rendered / B.HTTPROUTE)
        self.report.step("httproute", "done", self.s.httproute_name)

    def ensure_model_cache(self, rendered: Path) -> None:
        self.apply(f"PVC {self.s.pvc_name}", path=rendered / B.PVC)
        self.report.step("model cache pvc", "done", self.s.pvc_name)
        job = self.kubectl.get_json("jobs.batch", self.s.download_job_name)
        kept = job is not None and not self._job_must_be_replaced(job)
        if job is not None and not kept:
            self._delete_job()
        try:
            self.apply(f"Job {self.s.download_job_name}", path=rendered / B.DOWNLOAD_JOB)
        except CommandFailed as exc:
            if exc.result is None or "field is immutable" not in exc.result.stderr:
                raise
            # Rendered by another llmd version: replace it. The cache's completion marker makes the new
            # Job finish at once when the model is already there.
            kept = False
            self._delete_job()
            self.apply(f"Job {self.s.download_job_name}", path=rendered / B.DOWNLOAD_JOB)
        if self.runner.dry_run:
            self.report.step("model download", "planned", f"wait for Job {self.s.download_job_name}")
            return
        conds = ((job or {}).get("status") or {}).get("conditions") or []
        if kept and any(c.get("type") == "Complete" and c.get("status") == "True" for c in conds):
            # A re-deploy: the model is in the cache; nothing to download or wait for.
            self.ui.ok(f"model cache: {self.s.model} already downloaded into {self.s.pvc_name}")
            self.report.step("model download", "unchanged", "already in the cache")
            return
        try:
            # printed inside the try: a Ctrl-C read off this very line must get this step's message
            self.ui.step(f"downloading {self.s.model} into {self.s.pvc_name} (once, shared by every replica)")
            done = wait.wait_ready(self.s, self.kubectl, self.ui, ("download",), timeout_s=self.remaining(),
                                   started=self.t0)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while the model downloads; Job {self.s.download_job_name} keeps "
                              f"filling PVC {self.s.pvc_name} in the cluster (no chart is installed yet)",
                              hint="re-run `llmd deploy` with the same flags to resume (the download is not "
                                   f"restarted), or remove what was created with `{self.llmd('cleanup')}`",
                              signum=proc.last_signal) from None
        self.report.step("model download", "done", f"complete after {done.elapsed_s:.0f}s")

    def _delete_job(self) -> None:
        """A Job's pod template is immutable: a failed or different download is replaced, not patched."""
        self.kubectl.run("delete", "jobs.batch", self.s.download_job_name, "--ignore-not-found",
                         "--cascade=foreground", "--wait=true", mutates=True, timeout=120,
                         fail_code=ExitCode.DEPLOY_FAILED)

    def _job_must_be_replaced(self, job: dict) -> bool:
        conds = (job.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Failed" and c.get("status") == "True" for c in conds):
            return True
        containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        env = {e.get("name"): e.get("value") for c in containers for e in c.get("env") or []}
        return env.get("MODEL") not in (None, self.s.model)

    def sync_charts(self, rendered: Path, bundle: B.Bundle, releases: dict[str, Release]) -> None:
        digest = bundle.digest()
        cm_name = state.configmap_name(self.s)
        cm = self.kubectl.get_json("configmap", cm_name)
        recorded = ((cm or {}).get("metadata") or {}).get("annotations", {}).get(state.DIGEST_ANNOTATION)
        all_deployed = all(releases.get(r) and releases[r].status == "deployed" for r in self.s.releases)
        gone = self.missing_chart_objects() if recorded == digest and all_deployed else []
        if recorded == digest and all_deployed and not gone:
            self.ui.ok(f"charts: no changes (bundle {digest[:12]} already deployed)")
            self.report.step("helmfile sync", "unchanged", "no changes")
            return
        if gone:
            self.ui.warn(f"charts: no setting changed, but {', '.join(gone)} is missing from the cluster (deleted by "
                         "hand?): syncing again re-creates it")
        if self.s.ms_release in releases:  # only an installed release has a decode Deployment to compare
            self.replace_decode_on_selector_change(bundle)
        tracker = SyncTracker(self.s.releases, echo=self.ui.detail)
        try:
            # printed inside the try: a Ctrl-C sent the moment this line shows (before helmfile starts) is still
            # an interrupted sync, with its --recover message (the e2e Ctrl-C test hit that window under load)
            self.ui.step("helmfile sync (infra → gaie → ms)")
            self.helmfile.sync(rendered / B.HELMFILE, on_line=tracker.feed)
        except KeyboardInterrupt:
            proc.kill_all_children()
            maybe = tracker.in_flight() or list(self.s.releases)
            raise Interrupted(
                f"interrupted during helmfile sync; release {', '.join(maybe)} may be pending; "
                f"run `{self.llmd('deploy', '--recover')}` with the rest of this deploy's flags",
                hint=f"`{self.llmd('status')}` shows what was installed",
                signum=proc.last_signal) from None
        except CommandFailed as exc:
            raise self._sync_failed(exc) from None
        self.report.changed = True
        self.report.step("helmfile sync", "done", ", ".join(self.s.releases))
        self.apply(f"state ConfigMap {cm_name}", stdin=state.configmap_manifest(self.s, digest))

    def missing_chart_objects(self) -> list[str]:
        """What the charts create and the stack needs that is not in the cluster. Deleted behind helm's back (an
        InferencePool removed by hand leaves the route ResolvedRefs=False/BackendNotFound), it leaves every release
        `deployed` and the bundle unchanged: only a sync re-creates it (helm upgrade creates what is missing)."""
        from llmd.ops.status import items_by_kind

        s = self.s
        have = items_by_kind(self.kubectl, "deployments.apps,gateways.gateway.networking.k8s.io,"
                                           "inferencepools.inference.networking.k8s.io")
        names = {(kind, o["metadata"]["name"]) for kind, objs in have.items() for o in objs}
        want = (("Gateway", s.gateway_name), ("InferencePool", s.pool_name), ("Deployment", s.epp_name),
                ("Deployment", s.decode_deployment))
        return [f"{kind} {name}" for kind, name in want if (kind, name) not in names]

    def replace_decode_on_selector_change(self, bundle: B.Bundle) -> None:
        """Defect 5: the modelservice chart derives the decode Deployment's selector from the model and accelerator
        labels, and a selector is immutable: `helm upgrade` would fail half-way through the sync. Detected here,
        before the sync; the Deployment is deleted (its pods go with it) and the sync creates it again. The model
        cache PVC is llmd's own object and stays."""
        from llmd.render.values import decode_selector, selector_changes

        live = self.kubectl.get_json("deployments.apps", self.s.decode_deployment)
        if live is None:
            return
        have = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        changes = selector_changes(have, decode_selector(bundle.manifest_docs(B.VALUES["ms"])[0]))
        if not changes:
            return
        kept = f"; the model cache PVC {self.s.pvc_name} is kept" if self.s.model_cache == "pvc" else ""
        self.ui.warn(f"decode Deployment {self.s.decode_deployment} will be replaced: its selector is immutable and "
                     f"changes ({'; '.join(changes)}); its pods are deleted before the sync creates the new ones{kept}")
        self.kubectl.run("delete", "deployments.apps", self.s.decode_deployment, "--ignore-not-found",
                         "--cascade=foreground", "--wait=true", "--timeout=120s", mutates=True, timeout=150,
                         fail_code=ExitCode.DEPLOY_FAILED, title="replace the decode Deployment (selector change)")
        self.report.step("replace decode deployment", "done", "selector changes: " + "; ".join(changes) + kept)

    def _sync_failed(self, exc: CommandFailed) -> DeployError | ClusterError:
        """Exit 5 with the redacted stderr tail and a ledger of which releases exist now."""
        tail = exc.result.tail(20) if exc.result is not None else str(exc)
        try:
            now: dict[str, Release] | None = {k: v for k, v in self.helm.releases().items() if k in self.s.releases}
        except Exception:  # the ledger is best effort; the sync error is what matters
            now = None
        ledger = "; ".join(f"{r}: {now[r].status if r in now else 'not installed'}" for r in self.s.releases) \
            if now is not None else ""
        if exc.result is not None and not exc.result.timed_out and classify_failure(exc.result) == "unreachable":
            # The API server went away mid-sync (exit 4, not a chart error): what is installed is unknown until
            # it is back; a release helm was writing may be left pending.
            return ClusterError(
                f"the API server became unreachable during helmfile sync; releases: {ledger or 'unknown'}",
                hint=f"when the cluster answers again (`kubectl cluster-info`), re-run `llmd deploy` (it resumes); "
                     f"if it reports a pending release, `{self.llmd('deploy', '--recover')}` with the rest of this "
                     "deploy's flags",
                details=tail)
        if exc.result is not None and exc.result.timed_out:
            head = "helmfile sync timed out"
        else:
            head = f"helmfile sync failed (exit {exc.result.returncode if exc.result else '?'})"
        return DeployError(f"{head}; releases: {ledger or 'unknown (helm list failed)'}",
                           hint=f"fix the cause above and re-run `llmd deploy` (it resumes), or remove what was "
                                f"installed with `{self.llmd('cleanup')}`",
                           details=tail)


class SyncTracker:
    """Follows helmfile's output to know which release was being installed when a run was cut short."""

    START = re.compile(r"(?:Upgrading|Installing|Adding|Deleting)\s+release=([a-z0-9-]+)|Release \"([a-z0-9-]+)\" "
                       r"does not exist")
    DONE = re.compile(r"^NAME:\s+([a-z0-9-]+)|Release \"([a-z0-9-]+)\" has been upgraded")

    def __init__(self, releases, echo=None) -> None:
        self.releases = tuple(releases)
        self.echo = echo  # helmfile's own lines, shown with -v
        self.started: list[str] = []
        self.done: set[str] = set()

    def feed(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)
        for pattern, sink in ((self.START, "start"), (self.DONE, "done")):
            m = pattern.search(line)
            if m:
                name = next(g for g in m.groups() if g)
                if name not in self.releases:
                    continue
                if sink == "start" and name not in self.started:
                    self.started.append(name)
                elif sink == "done":
                    self.done.add(name)

    def in_flight(self) -> list[str]:
        return [r for r in self.started if r not in self.done]


def deploy(settings, runner: Runner, ui, *, out_dir: Path, recover: bool = False) -> DeployReport:
    return Deployer(settings, runner, ui, out_dir=out_dir, recover=recover).run()

