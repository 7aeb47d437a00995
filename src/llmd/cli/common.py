"""Helpers every command uses to turn options into (ui, settings, runner)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from llmd.paths import state_dir


def load(ctx: typer.Context, flags: dict[str, Any], sets: list[str], config: str | None, *,
         json_mode: bool = False, need_token: bool = False, json_errors: bool = False):
    """Build the Ui and the validated Settings (ConfigError -> exit 2 before anything runs). With
    `json_errors` (deploy/status/cleanup/doctor --json) bad input also prints the failure document."""
    from llmd.cli.lifecycle import json_failure
    from llmd.cli.options import FLAG_NAMES
    from llmd.settings import load_settings

    ui = ctx.obj.ui(json_mode=json_mode)
    with json_failure(ui, json_errors):
        settings = load_settings(flags, sets=sets, config=config, need_token=need_token, warn=ui.warn,
                                 flag_names=FLAG_NAMES)
    return ui, settings


def finish(ui, json: bool, report, show: Callable[[], None], *, exit_code: int = 0) -> None:
    """The end of a reporting verb: with --json the report's one document on stdout, else its view; then the
    verb's exit code (0: return normally)."""
    if json:
        ui.json(report.to_dict())
    else:
        show()
    if exit_code:
        raise typer.Exit(exit_code)


def make_runner(ctx: typer.Context, ui, *, dry_run: bool = False, echo: bool = True):
    from llmd.paths import require_state_dir
    from llmd.proc import Runner, Transcript

    if not dry_run:  # the transcript is written on the first command: a bad state dir fails now, not mid-run
        require_state_dir("runs", "the command transcript")
    return Runner(
        dry_run=dry_run,
        transcript=Transcript(None if dry_run else state_dir()),
        echo=ui.cmd if (echo and not ui.json_mode) or ui.verbose > 0 else None,
        on_result=ui.child_result if ui.verbose > 0 else None,
    )
