"""`llmd scheduler show [--profile NAME | --running]`: an EPP config with its weights in a table."""

# No `from __future__ import annotations`: @settings_options rebuilds the signature for Typer.
from typing import Annotated, Optional

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.options import JsonOpt, settings_options

ProfileOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--profile", help="A scheduler profile (default: --scheduler / the settings' profile)", show_default=False)]
RunningOpt = Annotated[bool, typer.Option("--running", help="Read the config of the running EPP from the cluster")]


@settings_options
def show(ctx: typer.Context, *, profile: ProfileOpt = None, running: RunningOpt = False, json: JsonOpt = False,
         flags, sets, config) -> None:
    """Show the effective EndpointPickerConfig of a profile (with --scorer-weight/--scorer-param/--scheduler-config
    applied), or with --running the one the deployed EPP was started with. The weights are shown in a table
    (stderr), the config as YAML on stdout; --json prints both as one document.

    Exit 2 bad input, 4 cluster unreachable, 6 nothing deployed (--running).
    """
    from llmd.cli.lifecycle import json_failure
    from llmd.errors import ConfigError

    if profile is not None:
        flags = {**flags, "scheduler": profile}
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    with json_failure(ui, json):  # --json: a failure is one document on stdout too
        if profile is not None and running:
            raise ConfigError("--profile and --running exclude each other",
                              hint="--profile NAME shows what a profile would deploy, --running what the EPP runs")
        if running:
            from llmd.platform import select

            report = select(settings).running_scheduler(settings, make_runner(ctx, ui, echo=ui.verbose > 0))
        else:
            from llmd.ops.scheduler_show import show_profile

            report = show_profile(settings)
    if json:
        ui.json(report.to_dict())
        return
    from llmd.render import yamlsafe

    for w in report.warnings:
        ui.warn(w)
    for e in report.errors:
        ui.error(e)
    if report.rows():
        ui.render(weights_table(report))
    ui.data(yamlsafe.dump(report.config))


def weights_table(report):
    from rich.table import Table

    rows = report.rows()
    several = len({r["profile"] for r in rows}) > 1
    t = Table(title=f"{report.source}" + (f" — {report.config_file}" if report.config_file else ""),
              title_justify="left")
    for col in (["profile"] if several else []) + ["plugin", "kind", "weight", "parameters"]:
        t.add_column(col, overflow="fold", justify="right" if col == "weight" else "left")
    for r in rows:
        plugin = r["plugin"] if r["plugin"] == r["type"] else f"{r['plugin']} ({r['type']})"
        kind = r["kind"] + (" (added by the EPP)" if r["implicit"] else "")
        weight = "-" if r["weight"] is None else f"{r['weight']:g}"
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items())
        t.add_row(*([r["profile"]] if several else []), plugin, kind, weight, params)
    return t
