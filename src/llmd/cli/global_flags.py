"""The global switches (-q, -v, --debug, --no-color), accepted before the command and after it alike.

`llmd -v status` and `llmd status -v` mean the same: the root callback parses them before the command name, and
every command built from the registry (cli/commands.py) carries the same options, hidden from nothing, which add
to the one State of the run.
"""

from __future__ import annotations

from typing import Any

from typer import _click as click
from typer.core import TyperOption

PANEL = "Global options (before or after the command)"

HELP = {
    "quiet": "Only errors and results: no progress (plans, tables and documents still print)",
    "verbose": "More detail, a counter: -v echoes every child command with its exit code, time and output "
               "tail, -vv its whole output",
    "debug": "Show tracebacks [env LLMD_DEBUG]",
    "no_color": "No colours on stderr [env NO_COLOR]",
}


def _apply(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    state = ctx.obj
    if state is None or not value:
        return
    if param.name == "verbose":
        state.verbose += int(value)
    else:
        setattr(state, str(param.name), True)


def params() -> list[click.Parameter]:
    """Fresh option objects for one command (click keeps per-command state on them)."""
    def flag(decls: list[str], name: str, **kw: Any) -> click.Parameter:
        return TyperOption(param_decls=[name, *decls], help=HELP[name], callback=_apply, expose_value=False,
                           rich_help_panel=PANEL, **kw)

    return [
        flag(["--quiet", "-q"], "quiet", is_flag=True, default=False),
        flag(["--verbose", "-v"], "verbose", count=True, default=0),
        flag(["--debug"], "debug", is_flag=True, default=False),
        flag(["--no-color"], "no_color", is_flag=True, default=False),
    ]
