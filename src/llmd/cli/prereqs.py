"""`llmd prereqs install|status|uninstall`: the cluster prerequisites of the stack, one command each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.lifecycle import json_failure, steps_table
from llmd.cli.options import DryRunOpt, JsonOpt, settings_options

app = typer.Typer(name="prereqs", no_args_is_help=True,
                  help="Install, inspect and remove the cluster prerequisites: Gateway API + InferencePool CRDs, "
                       "the gateway control plane, LWS, Prometheus Operator CRDs.")

LwsOpt = Annotated[bool, typer.Option("--lws", help="Also LeaderWorkerSet 0.7.0 (multi-node serving) into lws-system")]
CrdDirOpt = Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
    "--crd-dir", help="Directory of CRD manifests used instead of downloading them (air-gapped clusters); repeatable")]
ChartOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--chart", help="RELEASE=REF: install a release from another chart source (mirror, local chart dir); repeatable")]
RepoOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--repo", help="NAME=URL: use another URL for a chart repository (e.g. istio=https://mirror/istio); repeatable")]
OutOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    "--out", help="Where to write the prerequisites' helmfile (default $LLMD_STATE_DIR/prereqs)")]
WaitOpt = Annotated[int, typer.Option("--wait-timeout", min=10, max=86_400,
                                      help="Seconds to wait for the control plane to run")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Uninstall even while llm-d stacks use the prerequisites "
                                                        "(their objects are deleted with the CRDs, and named)")]
STYLE = {"install": "success", "upgrade": "success", "unchanged": "muted", "planned": "info", "refuse": "error",
         "removed": "success", "failed": "error"}


@app.command("install")
@settings_options
def install(ctx: typer.Context, *, lws: LwsOpt = False, crd_dir: CrdDirOpt = None, chart: ChartOpt = None,
            repo: RepoOpt = None, out: OutOpt = None, wait_timeout: WaitOpt = 600, dry_run: DryRunOpt = False,
            json: JsonOpt = False, flags, sets, config) -> None:
    """Install what the stack needs and the cluster lacks, at the pinned releases of llm-d v0.6.0.

    Gateway API v1.5.1 and Inference Extension v1.4.0 CRDs (applied server-side, waited on until Established),
    the environment's gateway control plane (-e istio: Istio 1.29.1 with ENABLE_GATEWAY_API_INFERENCE_EXTENSION;
    agentgateway v1.0.0; kgateway v2.2.1; gke: managed, nothing to install) as its own helmfile, LWS with --lws,
    Prometheus Operator CRDs with --monitoring. What is present is left alone (a second run changes nothing);
    a newer release is never downgraded and an install llmd did not make is never taken over (exit 10, nothing
    changed). Ends with llmd doctor's verdict. --dry-run writes the helmfile to stdout and lists the plan.

    Exit 0 installed or nothing to do, 2 bad input, 3 a prerequisite still fails doctor, 4 cluster unreachable,
    5 apply or helmfile failed, 6 not ready in --wait-timeout, 10 refused.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    from llmd.ops.prereqs.catalog import catalog
    from llmd.ops.prereqs.install import Request, wanted
    from llmd.ops.prereqs.install import install as run_install
    from llmd.paths import state_dir
    from llmd.render.prereqs import ChartSources

    runner = make_runner(ctx, ui, dry_run=dry_run, echo=ui.verbose > 0)
    with json_failure(ui, json, runner):
        req = Request(settings.environment, lws=lws, monitoring=settings.monitoring,
                      crd_dirs=tuple(crd_dir or ()), out_dir=out or state_dir() / "prereqs", dry_run=dry_run,
                      wait_timeout_s=float(wait_timeout))
        _, charts = wanted(catalog(), req)
        releases = [r.name for c in charts for r in c.releases]
        repos = [n for c in charts for n in c.repositories]
        req = Request(**{**req.__dict__, "sources": ChartSources.parse(chart or [], repo or [], releases, repos)})
        report = run_install(settings, runner, ui, req)
    if json:
        ui.json(report.to_dict())
    else:
        _show_install(ui, report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _show_install(ui, report) -> None:
    from rich.text import Text

    for note in report.notes:
        ui.info(note)
    rows = [(s.name, Text(s.action, style=STYLE.get(s.action, "")), s.detail) for s in report.steps]
    if rows:
        ui.render(steps_table("llmd prereqs install — " + report.target.describe().split(" on ", 1)[-1], rows))
    if report.dry_run:
        ui.info(f"helmfile: {report.helmfile} (also on stdout; plain `helmfile -f {report.helmfile} sync` runs it)")
        for line in report.planned:
            ui.info(f"  $ {line}")
        ui.data(Path(report.helmfile).read_text(encoding="utf-8"))
        return
    ui.info(f"helmfile: {report.helmfile}")
    if report.doctor is not None:
        from llmd.cli.doctor import _show

        _show(ui, report.doctor)
    if report.prereq_failures:
        ui.error(f"prerequisites still failing: {', '.join(report.prereq_failures)} (exit {report.exit_code})")
    elif report.changed:
        ui.ok("prerequisites installed")


@app.command("status")
@settings_options
def status(ctx: typer.Context, *, lws: LwsOpt = False, json: JsonOpt = False, flags, sets, config) -> None:
    """Each prerequisite: needed by this deployment or not, installed or not, its release, whether llmd installed it.

    Exit 0 when every needed prerequisite is present and usable, 3 when one is missing, 4 cluster unreachable.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    from llmd.ops.prereqs.status import status as run_status

    with json_failure(ui, json, runner):
        report = run_status(settings, runner, lws=lws)
    if json:
        ui.json(report.to_dict())
    else:
        _show_status(ui, settings, report)
    if report.missing:
        raise typer.Exit(3)


def _show_status(ui, settings, report) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"llmd prereqs status — {report.target.describe().split(' on ', 1)[-1]}", title_justify="left")
    for col in ("prerequisite", "needed", "installed", "version", "pinned", "by llmd", "detail"):
        t.add_column(col, overflow="fold")
    for st, need in report.items:
        state = ("ok" if st.ok else "unusable") if st.installed else "no"
        style = "success" if st.ok else ("error" if need else "muted")
        t.add_row(st.key, "yes" if need else "no", Text(state, style=style), st.version or "-", st.pinned,
                  "yes" if st.by_llmd else "no", st.problem or st.detail)
    ui.render(t)
    for note in report.notes:
        ui.info(note)
    if report.missing:
        from llmd.ops.prereqs.fixes import install_command

        ui.error(f"missing: {', '.join(report.missing)}")
        ui.hint(f"`{install_command(settings, report.target.context, lws='lws' in report.missing)}` installs them")
    else:
        ui.ok("every needed prerequisite is present")


@app.command("uninstall")
@settings_options
def uninstall(ctx: typer.Context, *, force: ForceOpt = False, yes: YesOpt = False, json: JsonOpt = False,
              flags, sets, config) -> None:
    """Remove what `llmd prereqs install` installed (recorded on the cluster), nothing else.

    Refuses while llm-d stacks still use the prerequisites, naming the objects (exit 10, nothing removed);
    --force removes them with the CRDs. Asks first on a terminal; without one, --yes is required (exit 10).
    Exit 0 removed or nothing to remove, 9 something remains.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    from llmd.errors import CleanupIncomplete, Refused
    from llmd.ops.prereqs.uninstall import uninstall as run_uninstall

    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    with json_failure(ui, json, runner):
        if not yes and not sys.stdin.isatty():
            raise Refused("prereqs uninstall needs confirmation but stdin is not a terminal; nothing was done",
                          hint="re-run with --yes (the in-use guard still applies; --force overrides it)")
        confirm = None if yes else (lambda q: typer.confirm(q, default=False, err=True))
        report = run_uninstall(settings, runner, ui, force=force, confirm=confirm)
    if json:
        ui.json(report.to_dict())
    elif report.nothing_to_do:
        ui.ok("nothing to uninstall: llmd installed no prerequisites on this cluster")
    else:
        ui.render(steps_table("llmd prereqs uninstall", [(f"{r.what} {r.name}", r.status, r.detail)
                                                        for r in report.rows]))
        if report.in_use:
            ui.warn(f"deleted with their CRDs: {', '.join(report.in_use)}")
    if not report.complete:
        if json:
            raise typer.Exit(9)
        failed = [f"{r.what} {r.name}" for r in report.rows if r.status == "failed"]
        raise CleanupIncomplete(f"uninstall incomplete: {', '.join(failed)} remain",
                                hint="fix the cause shown in the table, then re-run (safe to repeat)")
    if not json and not report.nothing_to_do:
        ui.ok("prerequisites installed by llmd removed")
