"""`llmd scheduler apply`: switch the running stack's scheduler by changing only the inferencepool release.

Order: render + validate (exit 2 before any process); pin the context; read the running EPP config
(Deployment --config-file + ConfigMap); nothing to do when it is the same; refuse a change that also needs
the model servers changed (KV-events wiring); record the model-server pod UIDs and the EPP pods; `helmfile
--selector component=gaie sync`; wait until the old EPP pods are gone and new ones are Ready; check that the
EPP now reads the new config and that every model-server pod kept its UID. `dry_run` stops after the diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.errors import DeployError, ExitCode, NotReadyError, Refused
from llmd.kube.helm import Helmfile
from llmd.kube.kubectl import Kubectl
from llmd.ops import wait
from llmd.ops.scheduler_running import RunningEpp, read_running
from llmd.ops.target import Target
from llmd.proc import Runner

GAIE_SELECTOR = "component=gaie"  # the helmfile label of the inferencepool release (render/manifests.py)
ROLL_TIMEOUT_S = 600.0


@dataclass
class ApplyReport:
    target: Target
    source: str  # the new config's origin: "profile random", "file x.yaml"
    before_file: str
    after_file: str
    diff: str  # unified diff of the EPP config text, running -> new
    weights: list[dict[str, Any]]  # plugin, before, after
    dry_run: bool = False
    changed: bool = False
    planned: list[str] = field(default_factory=list)
    old_epp_pods: list[str] = field(default_factory=list)
    new_epp_pods: list[str] = field(default_factory=list)
    model_pods: dict[str, str] = field(default_factory=dict)  # name -> uid, unchanged by the apply
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"status": "planned" if self.dry_run else ("applied" if self.changed else "unchanged"),
                "target": self.target.to_dict(), "source": self.source, "changed": self.changed,
                "dry_run": self.dry_run, "before_file": self.before_file, "after_file": self.after_file,
                "diff": self.diff, "weights": self.weights, "plan": self.planned, "old_epp_pods": self.old_epp_pods,
                "new_epp_pods": self.new_epp_pods, "model_pods_kept": sorted(self.model_pods),
                "warnings": self.warnings, "elapsed_s": round(self.elapsed_s, 1)}


def _uids(items: list[dict[str, Any]]) -> dict[str, str]:
    return {p["metadata"]["name"]: str(p["metadata"].get("uid", "")) for p in items}


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def weight_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per plugin of either config: its weight (or '-' for non-scorers) before and after; only differences."""
    from llmd.scheduler.plan import weight_rows

    def table(doc: dict[str, Any] | None) -> dict[str, str]:
        if not doc:
            return {}
        try:
            rows = weight_rows(doc)
        except (KeyError, TypeError):  # a running config the EPP rejected: show what it has, not why
            return {}
        return {f"{r['profile']}/{r['plugin']}": "-" if r["weight"] is None else f"{r['weight']:g}" for r in rows}

    old, new = table(before), table(after)
    keys = list(old) + [k for k in new if k not in old]
    return [{"plugin": k, "before": old.get(k, "absent"), "after": new.get(k, "absent")}
            for k in keys if old.get(k) != new.get(k)]


def change_report(target: Target, source: str, before: tuple[str, str, dict[str, Any] | None],
                  after: tuple[str, str, dict[str, Any]], *, dry_run: bool, warnings: list[str]) -> ApplyReport:
    """The report of a scheduler change, before anything is applied: `before`/`after` are (config file, its text,
    its document) of the running and the new config; the diff is of the texts, the weight table of the documents.
    Both platforms build their `scheduler apply` report here (the cluster's EPP, the local gateway)."""
    (before_file, before_text, before_doc), (after_file, after_text, after_doc) = before, after
    diff = "".join(difflib.unified_diff(before_text.splitlines(keepends=True), after_text.splitlines(keepends=True),
                                        fromfile=f"running: {before_file or '?'}", tofile=f"new: {after_file}"))
    return ApplyReport(target, source, before_file, after_file, diff, weight_changes(before_doc, after_doc),
                       dry_run=dry_run, warnings=warnings)


class Applier:
    def __init__(self, settings: Any, runner: Runner, ui: Any, *, out_dir: Path, dry_run: bool = False) -> None:
        self.s = settings
        self.runner = runner
        self.ui = ui
        self.out_dir = Path(out_dir)
        self.dry_run = dry_run

    def run(self) -> ApplyReport:
        from llmd.ops.preflight import PreflightReport, check_tools
        from llmd.ops.target import pin_target
        from llmd.render import bundle as B
        from llmd.render import kv_events, render_bundle

        t0 = wait.CLOCK.now()
        bundle = render_bundle(self.s)  # invalid settings or EPP config: exit 2, nothing started
        gaie = bundle.manifest_docs(B.VALUES["gaie"])[0]["inferenceExtension"]
        new_file = gaie["pluginsConfigFile"]
        new_text = gaie["pluginsCustomConfig"][new_file]
        check_tools(self.runner, PreflightReport())
        scope, target = pin_target(self.s, self.runner)
        self.kubectl = Kubectl(self.runner, scope)
        running = read_running(self.s, self.kubectl)
        from llmd.scheduler import selection

        chosen = selection.for_settings(self.s)
        report = change_report(target, chosen.source, (running.config_file, running.text, running.doc),
                               (new_file, new_text, chosen.config), dry_run=self.dry_run,
                               warnings=list(bundle.warnings))
        if running.config_file == new_file and running.text == new_text:
            report.elapsed_s = wait.CLOCK.now() - t0
            return report  # the EPP already runs exactly this config: nothing to roll
        before_kv, after_kv = kv_events.wiring(running.doc or {}), kv_events.wiring(chosen.config)
        if before_kv != after_kv:
            raise Refused("this change also changes the model servers (vLLM --block-size / --kv-events-config for "
                          "precise-prefix-cache-scorer), and `llmd scheduler apply` changes only the EPP",
                          hint="run `llmd deploy` with the same scheduler flags: it re-renders every release and "
                               "restarts the model servers")
        rendered = bundle.write(self.out_dir)
        helmfile = Helmfile(self.runner, scope)
        sync = helmfile.cmd(rendered / B.HELMFILE, "sync", selector=GAIE_SELECTOR)
        if self.dry_run:
            report.planned = [sync.display()]
            report.elapsed_s = wait.CLOCK.now() - t0
            return report
        model_before = self.model_pods()
        epp_before = _uids(self.epp_pods(running))
        self.ui.step(f"helmfile sync of {self.s.gaie_release} only (--selector {GAIE_SELECTOR})")
        helmfile.sync(rendered / B.HELMFILE, selector=GAIE_SELECTOR, on_line=self.ui.detail)
        report.old_epp_pods = sorted(epp_before)
        report.new_epp_pods = self.wait_rolled(running, set(epp_before.values()),
                                               min(float(self.s.timeout), ROLL_TIMEOUT_S))
        now_running = read_running(self.s, self.kubectl)
        if (now_running.config_file, now_running.text) != (new_file, new_text):
            raise DeployError(f"the EPP restarted but reads {now_running.config_file!r}, not {new_file!r}",
                              hint=f"`kubectl get deployment {self.s.epp_name} -n {self.s.namespace} -o yaml` shows "
                                   "its --config-file; re-run `llmd scheduler apply`")
        model_after = self.model_pods()
        if model_after != model_before:
            gone = sorted(set(model_before.items()) - set(model_after.items()))
            raise DeployError("model-server pods changed during the scheduler apply: "
                              + ", ".join(name for name, _ in gone),
                              hint="something else is rolling the model servers; `llmd status` shows them")
        report.model_pods = model_after
        report.changed = True
        self.record_state(new_file)
        report.elapsed_s = wait.CLOCK.now() - t0
        return report

    def model_pods(self) -> dict[str, str]:
        from llmd.render.values import pool_match_labels

        selector = ",".join(f"{k}={v}" for k, v in sorted(pool_match_labels(self.s).items()))
        listing = self.kubectl.get_json("pods", selector=selector) or {}
        return _uids(listing.get("items") or [])

    def epp_pods(self, running: RunningEpp) -> list[dict[str, Any]]:
        listing = self.kubectl.get_json("pods", selector=running.pod_selector) or {}
        return list(listing.get("items") or [])

    def wait_rolled(self, running: RunningEpp, old_uids: set[str], timeout_s: float) -> list[str]:
        """Until no old EPP pod is left and `desired` new ones are Ready; a new pod in a terminal state fails fast."""
        from llmd.ops import diagnose

        deadline = wait.CLOCK.now() + timeout_s
        last = ""
        while True:
            pods = self.epp_pods(running)
            old = [p["metadata"]["name"] for p in pods if str(p["metadata"].get("uid", "")) in old_uids]
            new = [p for p in pods if str(p["metadata"].get("uid", "")) not in old_uids]
            for pod in new:
                finding = diagnose.terminal_finding(self.kubectl, pod, self.s)
                if finding:
                    raise NotReadyError(f"new EPP pod {pod['metadata']['name']}: {finding.reason}", hint=finding.hint,
                                        details=finding.message)
            ready = [p["metadata"]["name"] for p in new if _ready(p)]
            if not old and len(ready) >= running.desired:
                self.ui.ok(f"EPP rolled: {', '.join(ready)} Ready")
                return sorted(ready)
            line = f"EPP roll: old pods left {len(old)}, new pods Ready {len(ready)}/{running.desired}"
            if line != last:
                self.ui.info(line)
                last = line
            if wait.CLOCK.now() >= deadline:
                raise NotReadyError(f"the EPP did not roll within {timeout_s:.0f}s ({line})",
                                    hint=f"`kubectl get pods -n {self.s.namespace} -l {running.pod_selector}` and "
                                         f"`kubectl describe deployment {self.s.epp_name} -n {self.s.namespace}`")
            wait.CLOCK.sleep(wait.POLL_S / 2)

    def record_state(self, config_file: str) -> None:
        """The state ConfigMap's digest must no longer match a deploy bundle: the next `llmd deploy` then syncs
        and restores whatever scheduler its settings name (instead of skipping as 'no changes')."""
        from llmd.ops import state
        from llmd.ops.deploy import SSA

        self.kubectl.run(*SSA, "--filename", "-", mutates=True, stdin=state.configmap_manifest(
            self.s, f"scheduler-apply:{config_file}"), check=True, fail_code=ExitCode.DEPLOY_FAILED, timeout=60,
            title="record the applied scheduler")


def apply_scheduler(settings: Any, runner: Runner, ui: Any, *, out_dir: Path, dry_run: bool = False) -> ApplyReport:
    return Applier(settings, runner, ui, out_dir=out_dir, dry_run=dry_run).run()
