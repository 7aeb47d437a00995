"""`llmd prereqs uninstall`: remove what `llmd prereqs install` installed, nothing else."""

from __future__ import annotations

import sys

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.lifecycle import json_failure, steps_table
from llmd.cli.options import JsonOpt, settings_options
from llmd.cli.prereqs._shared import ForceOpt, YesOpt


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
