"""`llmd deploy`: install or update the stack and wait until it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.lifecycle import json_failure, steps_table
from llmd.cli.options import DryRunOpt, JsonOpt, settings_options
from llmd.paths import rendered_dir

RecoverOpt = Annotated[bool, typer.Option(
    "--recover", help="Repair releases left pending-* by an interrupted run: uninstall one stuck at revision 1, "
                      "roll any other back to its last deployed revision")]
OutOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--out", help="Where to write the rendered files [default: <state dir>/rendered/<namespace>/<postfix>]",
    show_default=False)]


@settings_options
def deploy(ctx: typer.Context, *, recover: RecoverOpt = False, out: OutOpt = None, dry_run: DryRunOpt = False,
           json: JsonOpt = False, flags, sets, config) -> None:
    """Deploy the inference-scheduling stack: preflight, namespace, HF token Secret (stdin only), model cache,
    helmfile sync, HTTPRoute, then wait for the EPP, the gateway and every decode replica.

    --platform local instead starts simulated replicas and a scheduling gateway on 127.0.0.1 (no cluster).
    Idempotent: an identical second run changes nothing. --dry-run prints every command and the rendered
    directory and runs nothing. Exit 3 missing prerequisite, 4 cluster unreachable, 5 deploy failed or
    pending release, 6 not ready, 10 protected namespace (default, kube-*, ...), 130 interrupted.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, need_token=True, json_errors=json)
    runner = make_runner(ctx, ui, dry_run=dry_run)
    out_dir = Path(out) if out else rendered_dir(settings)
    with json_failure(ui, json, runner):
        _check_out(out_dir, given=bool(out))
    from llmd.platform import select

    with json_failure(ui, json, runner):
        report = select(settings).deploy(settings, runner, ui, out_dir=out_dir, recover=recover)
    if json:
        ui.json(report.to_dict())
        return
    if report.dry_run:
        ui.result("plan (dry-run: nothing was run):")
        for line in report.planned:
            ui.result(f"  $ {line}")
        ui.ok(f"dry-run complete; rendered files in {report.rendered_dir}")
        return
    ui.render(steps_table("deploy", [(s.name, s.status, s.detail) for s in report.steps]))
    verb = "Deployed" if report.changed else "Up to date:"
    what = report.what or ", ".join(settings.releases)
    ui.ok(f"{verb} {what} in {report.target.describe()} ({report.elapsed_s:.0f}s)")
    ui.info("Next:")
    for cmd in report.next_commands(settings):
        ui.info(f"  {cmd}")


def _check_out(out_dir: Path, *, given: bool) -> None:
    """Deploy renders before it runs anything (dry-run too): an unusable directory is bad input (exit 2)."""
    from llmd.errors import ConfigError
    from llmd.paths import dir_problem

    problem = dir_problem(out_dir)
    if problem:
        raise ConfigError(f"cannot write the rendered files to {out_dir}: {problem}",
                          hint="pass another --out directory" if given else
                          "point LLMD_STATE_DIR at a writable directory, or pass --out DIR")
