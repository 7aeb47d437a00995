"""`llmd scheduler apply --scheduler NAME`: switch the running EPP's scheduler, leaving the model servers alone."""

# No `from __future__ import annotations`: @settings_options rebuilds the signature for Typer.
import typer

from llmd.cli.common import load, make_runner
from llmd.cli.lifecycle import json_failure
from llmd.cli.options import DryRunOpt, JsonOpt, settings_options


@settings_options
def apply(ctx: typer.Context, *, dry_run: DryRunOpt = False, json: JsonOpt = False, flags, sets, config) -> None:
    """Apply a scheduler profile (--scheduler, --scorer-weight, --scorer-param, --scheduler-config) to the running
    stack: only the inferencepool release is synced (helmfile --selector component=gaie), the EPP restarts with the
    new config, and the command returns once the new EPP pod is Ready and the old one gone. The model-server pods
    keep running (their UIDs are checked). --dry-run shows the config diff and the command, and changes nothing.
    With --platform local the running gateway swaps its scheduler in-process (the same diff, report and exit codes;
    the replicas keep their pids).

    Exit 2 bad input, 3 missing tool, 4 cluster unreachable, 5 sync failed, 6 not deployed or the EPP did not
    roll, 10 the change also needs the model servers changed (use `llmd deploy`).
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui)  # --dry-run still reads the running config: only mutations are skipped
    from llmd.platform import select

    with json_failure(ui, json, runner):
        report = select(settings).apply_scheduler(settings, runner, ui, settings.scheduler, dry_run=dry_run)
    if json:
        ui.json(report)
        return
    for w in report.get("warnings", []):
        ui.warn(w)
    if not report["diff"]:
        ui.ok(f"the EPP already runs this config ({report['after_file']}); nothing changed")
        return
    if dry_run:
        ui.data(report["diff"])
        ui.result("would run: " + "; ".join(report["plan"]))
    _changes(ui, report)
    if report["changed"]:
        ui.ok(f"EPP now runs {report['source']} ({report['after_file']}); pods "
              f"{', '.join(report['old_epp_pods']) or '-'} → {', '.join(report['new_epp_pods'])}; "
              f"{len(report['model_pods_kept'])} model-server pods untouched (same UIDs) in {report['elapsed_s']:.0f}s")


def _changes(ui, report) -> None:
    from rich.table import Table

    title = f"{report['before_file']} → {report['after_file']}"
    if not report["weights"]:
        ui.result(f"{title}: plugin parameters changed (weights unchanged)")
        return
    t = Table(title=f"{'would change' if report['dry_run'] else 'changed'}: {title}", title_justify="left")
    for col in ("plugin", "weight before", "weight after"):
        t.add_column(col, overflow="fold")
    for row in report["weights"]:
        t.add_row(row["plugin"], row["before"], row["after"])
    ui.render(t)
