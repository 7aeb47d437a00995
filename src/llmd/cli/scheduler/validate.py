"""`llmd scheduler validate FILE...`: check EPP configs against the pinned EPP image's plugin registry."""

# No `from __future__ import annotations`: Typer reads the Annotated option objects.
from typing import Annotated

import typer

from llmd.cli.options import JsonOpt

FilesArg = Annotated[list[str], typer.Argument(help="EndpointPickerConfig files, or inferencepool values files "
                                                    "holding them under inferenceExtension.pluginsCustomConfig",
                                               show_default=False)]


def validate(ctx: typer.Context, files: FilesArg, json: JsonOpt = False) -> None:
    """Check EndpointPickerConfig files the way the pinned EPP (llm-d-inference-scheduler v0.7.1) reads them.

    Reports every problem at once as FILE:LINE:COLUMN with the fix: unknown top-level keys and plugin types
    (did-you-mean, known renames such as kv-cache-scorer), parameters a plugin does not take, wrong parameter
    types, duplicate names, undefined pluginRefs, weights on non-scorers, several pickers in a profile, profiles
    without a scorer. Exit 2 when any finding is an error (the EPP would not start); warnings alone exit 0.
    """
    from llmd.scheduler.validate import check_file, errors

    ui = ctx.obj.ui(json_mode=json)
    findings = [f for path in files for f in check_file(path)]
    errs = errors(findings)
    if json:
        ui.json({"valid": not errs, "files": files, "errors": len(errs), "warnings": len(findings) - len(errs),
                 "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            (ui.error if f.severity == "error" else ui.warn)(str(f))
        bad = {f.file for f in errs}
        for path in files:
            if path not in bad:
                ui.ok(f"{path}: the EPP accepts it" + (" (with warnings)" if any(f.file == path for f in findings)
                                                        else ""))
        if errs:
            ui.result(f"{len(errs)} error(s), {len(findings) - len(errs)} warning(s) in {len(bad)} of "
                      f"{len(files)} file(s)")
    if errs:
        raise typer.Exit(2)
