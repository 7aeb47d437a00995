"""`llmd prereqs status`: each prerequisite, installed or not, its release, whether llmd installed it."""

from __future__ import annotations

import typer

from llmd.cli.common import finish, load, make_runner
from llmd.cli.lifecycle import json_failure
from llmd.cli.options import JsonOpt, settings_options
from llmd.cli.prereqs._shared import LwsOpt


@settings_options
def status(ctx: typer.Context, *, lws: LwsOpt = False, json: JsonOpt = False, flags, sets, config) -> None:
    """Each prerequisite: needed by this deployment or not, installed or not, its release, whether llmd installed it.

    Exit 0 when every needed prerequisite is present and usable, 3 when one is missing, 4 cluster unreachable.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    from llmd.ops.prereqs.status import status as run_status

    with json_failure(ui, json, runner):
        report = run_status(settings, runner, lws=lws, say=None if json else ui.info)
    finish(ui, json, report, lambda: _show_status(ui, settings, report), exit_code=3 if report.missing else 0)


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
        from llmd.ops.preflight import INSTALL_GMP
        from llmd.ops.prereqs.fixes import install_command
        from llmd.ops.prereqs.inspect import GMP

        ui.error(f"missing: {', '.join(report.missing)}")
        if set(report.missing) - {GMP}:
            ui.hint(f"`{install_command(settings, report.target.context, lws='lws' in report.missing)}` installs "
                    "them")
        if GMP in report.missing:
            ui.hint(f"{GMP}: {INSTALL_GMP}")
    else:
        ui.ok("every needed prerequisite is present")
