"""`llmd cleanup`: remove the stack llmd deployed — only what llmd created."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.lifecycle import json_failure, steps_table
from llmd.cli.options import DryRunOpt, ForceOpt, JsonOpt, settings_options

KeepPvcOpt = Annotated[bool, typer.Option("--keep-pvc", help="Keep the model-cache PVC for the next deploy")]
RemoveNsOpt = Annotated[bool, typer.Option(
    "--remove-namespace", help="Also delete the namespace, only if llmd created it (label managed-by=llmd) "
                               "and no other Helm release lives in it")]


@settings_options
def cleanup(ctx: typer.Context, *, keep_pvc: KeepPvcOpt = False, remove_namespace: RemoveNsOpt = False,
            force: ForceOpt = False, dry_run: DryRunOpt = False, json: JsonOpt = False, flags, sets, config) -> None:
    """Uninstall the three releases and delete the objects labelled managed-by=llmd for this release postfix.

    Asks first, naming the context, the API server and the namespace. --force skips the question but never
    the guards: protected namespaces (default, kube-*, gateway/system namespaces) are refused, and without a
    terminal --force is required (exit 10, nothing done). Exit 0 when done or nothing to clean up, 9 when
    something remains (the table says what and why).
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    from llmd.errors import CleanupIncomplete, Refused
    from llmd.ops import cleanup as ops
    from llmd.platform import select

    runner = make_runner(ctx, ui, dry_run=dry_run)  # starts nothing by itself
    with json_failure(ui, json, runner):
        ops.guard(settings)
        if not dry_run and not force and not sys.stdin.isatty():
            raise Refused("cleanup needs confirmation but stdin is not a terminal; nothing was done",
                          hint="re-run with --force (guards still apply), or --dry-run to see what would go")
        confirm = None if force else (lambda q: typer.confirm(q, default=False, err=True))
        report = select(settings).cleanup(settings, runner, ui, keep_pvc=keep_pvc,
                                          remove_namespace=remove_namespace, confirm=confirm)
    if json:
        ui.json(report.to_dict())
        if not report.complete:
            raise typer.Exit(9)
        return
    where = (report.target.describe() if report.target.platform != "kubernetes"
             else f"{settings.namespace} on {report.target.context or '(current context)'}")
    if report.nothing_to_do:
        ui.ok(f"nothing to clean up in {where}")
        return
    if report.dry_run:
        ui.result("plan (dry-run: nothing was run):")
        for line in report.planned:
            ui.result(f"  $ {line}")
    ui.render(steps_table("cleanup", [(f"{r.what} {r.name}", r.status, r.detail) for r in report.rows]))
    if report.dry_run:
        return
    if not report.complete:
        failed = [f"{r.what} {r.name}" for r in report.rows if r.status == "failed"]
        raise CleanupIncomplete(f"cleanup incomplete in {where}: {', '.join(failed)} remain",
                                hint="fix the cause shown in the table, then re-run `llmd cleanup` (safe to repeat)")
    ui.ok(f"cleaned up {where}")
