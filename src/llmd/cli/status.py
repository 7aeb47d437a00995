"""`llmd status`: releases, readiness, PVC, gateway Service, HTTPRoute and InferencePool, with a verdict."""

from __future__ import annotations

import typer

from llmd.cli.common import finish, load, make_runner
from llmd.cli.lifecycle import json_failure
from llmd.cli.options import JsonOpt, settings_options


@settings_options
def status(ctx: typer.Context, *, json: JsonOpt = False, flags, sets, config) -> None:
    """Show what is deployed and whether it can serve.

    Exit 0 when healthy; 6 when degraded or not deployed (the verdict line says which); 4 when the
    cluster is unreachable.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    from llmd.platform import select

    with json_failure(ui, json, runner):
        report = select(settings).status(settings, runner, say=ui.step)
    finish(ui, json, report, lambda: _show(ui, settings, report), exit_code=0 if report.healthy else 6)


def _show(ui, settings, report) -> None:
    from rich.table import Table

    t = Table(title=f"llmd status — {report.target.describe()}", title_justify="left")
    for col in ("object", "name", "state"):
        t.add_column(col, overflow="fold")
    for name, st in report.releases.items():
        t.add_row("release", name, st)
    for c in report.components:
        t.add_row(c.key, c.name, f"{c.ready}/{c.desired} ready" + (f" ({c.note})" if c.note and not c.done else ""))
    if report.namespace_exists:
        pvc = report.pvc
        t.add_row("pvc", settings.pvc_name, f"{pvc['phase']} {pvc.get('capacity') or ''}".strip() if pvc else "absent")
        svc = report.gateway_service
        if settings.gateway_service:
            t.add_row("service", settings.gateway_service,
                      f"{svc['type']} {svc['cluster_ip']} ports {svc['ports']}" if svc else "absent")
        route = report.httproute
        t.add_row("httproute", settings.httproute_name,
                  ", ".join(f"{k}={v}" for k, v in route["conditions"].items()) or "no status yet" if route
                  else "absent")
        pool = report.inference_pool
        t.add_row("inferencepool", settings.pool_name,
                  (", ".join(f"{k}={v}" for k, v in pool["conditions"].items()) or "present") if pool else "absent")
    ui.render(t)
    if report.healthy:
        from llmd.ops.target import llmd_command

        test = llmd_command(settings, report.target.context, "test")
        ui.ok(f"healthy: the stack can serve (`{test}` sends a request)")
        return
    ui.error(f"{report.verdict}: " + "; ".join(report.problems))
    if report.hint:
        ui.hint(report.hint)
        return
    scope = f"-n {settings.namespace}" + (f" --context {report.target.context}" if report.target.context else "")
    if any(st.startswith("pending-") for st in report.releases.values()):
        from llmd.ops.preflight import recover_hint

        ui.hint(recover_hint(settings, report.target.context))
    elif report.verdict == "not deployed":
        ui.hint("`llmd deploy` installs or repairs the stack")
    else:
        ui.hint(f"`kubectl get pods {scope}` and `kubectl get events {scope}` show why; `llmd deploy` re-waits "
                "with fail-fast diagnosis")
