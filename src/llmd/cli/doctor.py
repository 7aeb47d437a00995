"""`llmd doctor`: check every prerequisite of `llmd deploy` and say how to fix what is missing."""

from __future__ import annotations

import contextlib

import typer

from llmd.cli.common import finish, load, make_runner
from llmd.cli.options import JsonOpt, settings_options

STYLES = {"ok": "success", "warn": "warning", "fail": "error", "skip": "muted"}


@settings_options
def doctor(ctx: typer.Context, *, json: JsonOpt = False, flags, sets, config) -> None:
    """Check what `llmd deploy` needs, changing nothing: kubectl/helm/helmfile and their versions, HF token,
    kube context and API server, Gateway API + InferencePool v1 CRDs, the environment's GatewayClass, default
    StorageClass (model cache on a PVC), GPU capacity for replicas × TP, namespace state, RBAC and releases
    left pending.

    Every check runs and reports ok, warn, fail or skip with the fix; when the cluster cannot be reached the
    cluster-side checks are skipped. Table on stderr, --json on stdout. Exit 0 all ok (warnings allowed),
    3 a prerequisite is missing, 4 the cluster is unreachable or forbidden.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    from llmd.ops.doctor import run_checks

    with _progress(ui) as on_check:
        # the spinner names the running check on a terminal; elsewhere a line says what is awaited
        report = run_checks(settings, runner, on_check=on_check, say=None if on_check else ui.step)
    finish(ui, json, report, lambda: _show(ui, report), exit_code=report.exit_code)


@contextlib.contextmanager
def _progress(ui):
    """A spinner naming the running check, on a terminal only (a blackholed server takes seconds)."""
    if not ui.interactive:
        yield None
        return
    with ui.err.status("checking") as status:
        yield lambda name: status.update(f"checking {name}")


def _show(ui, report) -> None:
    from rich.table import Table
    from rich.text import Text

    where = report.target.describe() if report.target else "(no usable context)"
    t = Table(title=f"llmd doctor — {where}", title_justify="left")
    t.add_column("check")
    t.add_column("status")
    t.add_column("detail", overflow="fold")
    for c in report.checks:
        detail = Text(c.message)
        for fix in c.fixes if c.status in ("fail", "warn") else ():
            detail.append(f"\nfix: {fix}", style="hint")
        t.add_row(c.name, Text(c.status, style=STYLES[c.status]), detail)
    ui.render(t)
    failed = [c.name for c in report.checks if c.failed]
    warned = [c.name for c in report.checks if c.status == "warn"]
    if failed:
        ui.error(f"not ready to deploy: {', '.join(failed)} failed (exit {report.exit_code})")
    elif warned:
        ui.ok(f"ready to deploy, with warnings: {', '.join(warned)}")
    else:
        ui.ok("ready to deploy")
