"""`llmd prereqs install`: install what the stack needs and the cluster lacks, at the pinned releases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from llmd.cli.common import finish, load, make_runner
from llmd.cli.lifecycle import json_failure, steps_table
from llmd.cli.options import DryRunOpt, JsonOpt, settings_options
from llmd.cli.prereqs._shared import ChartOpt, CrdDirOpt, LwsOpt, OutOpt, RepoOpt, WaitOpt


@settings_options
def install(ctx: typer.Context, *, lws: LwsOpt = False, crd_dir: CrdDirOpt = None, chart: ChartOpt = None,
            repo: RepoOpt = None, out: OutOpt = None, wait_timeout: WaitOpt = 600, dry_run: DryRunOpt = False,
            json: JsonOpt = False, flags, sets, config) -> None:
    """Install what the stack needs and the cluster lacks, at the pinned releases of llm-d v0.6.0.

    Gateway API v1.5.1 and Inference Extension v1.4.0 CRDs (applied server-side, waited on until Established),
    the environment's gateway control plane (-e istio: Istio 1.29.1 with ENABLE_GATEWAY_API_INFERENCE_EXTENSION;
    agentgateway v1.0.0; kgateway v2.2.1; gke: managed, nothing to install) as its own helmfile, LWS with --lws,
    Prometheus Operator CRDs with --monitoring (gke: Managed Prometheus instead, named, not installed). What is
    present is left alone (a second run changes nothing); a newer release is never downgraded and an install
    llmd did not make is never taken over (exit 10, nothing changed). Ends with llmd doctor's verdict.
    --dry-run writes the helmfile to stdout and lists the plan.

    Exit 0 installed or nothing to do, 2 bad input, 3 a prerequisite still fails doctor, 4 cluster unreachable,
    5 apply or helmfile failed, 6 not ready in --wait-timeout, 10 refused.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    from llmd.ops.prereqs.catalog import catalog
    from llmd.ops.prereqs.install import Request, wanted
    from llmd.ops.prereqs.install import install as run_install
    from llmd.paths import state_dir
    from llmd.render.mirror import mirror_rules
    from llmd.render.prereqs import ChartSources, release_charts

    runner = make_runner(ctx, ui, dry_run=dry_run, echo=ui.verbose > 0)
    with json_failure(ui, json, runner):
        req = Request(settings.environment, lws=lws, monitoring=settings.monitoring,
                      crd_dirs=tuple(crd_dir or ()), out_dir=out or state_dir() / "prereqs", dry_run=dry_run,
                      wait_timeout_s=float(wait_timeout))
        _, charts = wanted(catalog(), req)
        repos = [n for c in charts for n in c.repositories]
        origin = " and ".join(dict.fromkeys(settings.sources[k] for k in ("prereq_charts", "prereq_repos")
                                            if k in settings.sources))
        # a setting may name any component's release (one config for every -e): only this install's are used
        every = list(catalog().charts.values())
        configured = ChartSources.parse(settings.prereq_charts, settings.prereq_repos, release_charts(every),
                                        [n for c in every for n in c.repositories],
                                        labels=(f"prereq_charts (from {origin})", f"prereq_repos (from {origin})"))
        sources = ChartSources.parse(chart or [], repo or [], release_charts(charts), repos).over(configured)
        req = dataclasses.replace(req, sources=sources, image_mirror=tuple(mirror_rules(settings)))
        report = run_install(settings, runner, ui, req)
    finish(ui, json, report, lambda: _show_install(ui, report), exit_code=report.exit_code)


def _show_install(ui, report) -> None:
    for note in report.notes:
        ui.info(note)
    rows = [(s.name, s.action, s.detail) for s in report.steps]
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
