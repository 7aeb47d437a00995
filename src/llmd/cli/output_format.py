"""`-o/--output json|yaml|table` beside `--json`, on every command that has `--json` (kubectl/helm habit).

Added by the registry (cli/commands.py) to each command whose function takes a `json` flag, so a new verb gets it
by having `--json`. `-o json` is `--json`; `-o yaml` prints the same document as YAML; `-o table` is the default.
Two verbs used `-o` for a path before (`render -o DIR`, `test -o FILE`): there a value that is not a format
still goes to that option (now `--out` and `--report-file`), with a warning.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from typer import _click as click
from typer._click.exceptions import BadParameter
from typer._click.globals import get_current_context
from typer.core import TyperOption

FORMATS = ("table", "json", "yaml")
PARAM = "output_format"


def option(legacy: str | None) -> click.Parameter:
    extra = f"; any other value is the old spelling of {legacy}" if legacy else ""
    return TyperOption(param_decls=[PARAM, "--output", "-o"], default=None, metavar="table|json|yaml",
                       help="Output format: table (default, on stderr), json (same as --json) or yaml, "
                            f"on stdout{extra}")


def wrap(callback: Callable[..., Any], legacy: tuple[str, str] | None) -> Callable[..., Any]:
    """The command's callback, taking `output_format` off the keyword arguments: json/yaml set `json` and the
    State's document format; with `legacy` (kwarg, flag), another value goes to that kwarg."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        value = kwargs.pop(PARAM, None)
        if value is not None:
            fmt = value.lower()
            if fmt in FORMATS:
                if fmt != "table":
                    kwargs["json"] = True
                    get_current_context().obj.doc_format = fmt
                elif kwargs.get("json"):
                    raise BadParameter("-o table contradicts --json; pass one of them", param_hint="'-o'")
            elif legacy is not None:
                kwarg, flag = legacy
                if kwargs.get(kwarg) not in (None, _default(kwarg)):
                    raise BadParameter(f"{value!r} is not a format and {flag} is given too",
                                             param_hint="'-o'")
                click.echo(f"! -o/--output {value} is the old spelling of {flag} {value}; -o now takes a format "
                           f"({'|'.join(FORMATS)})", err=True)
                kwargs[kwarg] = value
            else:
                raise BadParameter(f"{value!r} is not one of {', '.join(FORMATS)}", param_hint="'-o'")
        return callback(*args, **kwargs)

    return run


def _default(kwarg: str) -> Any:
    return "rendered" if kwarg == "out" else None  # render's --out default
