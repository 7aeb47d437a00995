"""The Typer app and the one error boundary.

Commands only translate: they load settings, call one `llmd.ops` function and show its report.
Heavy modules (jinja2, httpx, the load engine) are imported inside the commands so that
`llmd --version` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Optional

import typer

from llmd import __version__
from llmd.cli.commands import LazyGroup
from llmd.cli.global_flags import HELP
from llmd.errors import ExitCode, LlmdError

app = typer.Typer(
    name="llmd",
    cls=LazyGroup,  # the commands of llmd.cli.commands.COMMANDS, imported when invoked
    help="Deploy, test and tear down the llm-d inference-scheduling stack on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # our boundary prints errors; locals (tokens) never print
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: wraps, never cuts (cli/help_format.py)
    context_settings={"help_option_names": ["-h", "--help"]},
)

EPILOG_EXIT_CODES = (
    "Exit codes: 0 ok, 1 internal error, 2 bad input, 3 missing prerequisite, 4 cluster unreachable/forbidden, "
    "5 deploy failed, 6 not ready, 7 test failed, 8 perf thresholds breached, 9 cleanup incomplete, "
    "10 refused by a guard, 130/143 interrupted."
)


class State:
    """The single ctx.obj: global switches shared by every command."""

    def __init__(self, debug: bool, verbose: int, quiet: bool, no_color: bool = False) -> None:
        self.debug = debug
        self.verbose = verbose
        self.quiet = quiet
        self.no_color = no_color
        self.doc_format = "json"  # -o yaml: the same documents as YAML (cli/output_format.py)

    def ui(self, json_mode: bool = False):
        from llmd.ui import Ui

        ui = Ui(json_mode=json_mode, verbose=self.verbose, quiet=self.quiet,
                color=False if self.no_color else None, doc_format=self.doc_format)
        ui.readiness_view = _readiness_table
        return ui


def _readiness_table(ui):
    from llmd.cli.readiness_view import ReadinessTable  # imported when a deploy waits, not at start-up

    return ReadinessTable(ui)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"llmd {__version__}\n")
        raise typer.Exit()


@app.callback(epilog=EPILOG_EXIT_CODES)
def root(
    ctx: typer.Context,
    *,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,  # noqa: UP045
                                                    help="Show the version and exit")] = None,
    debug: Annotated[bool, typer.Option("--debug", envvar="LLMD_DEBUG", help=HELP["debug"])] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=HELP["verbose"])] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=HELP["quiet"])] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help=HELP["no_color"])] = False,
) -> None:
    ctx.obj = State(debug=debug, verbose=verbose, quiet=quiet, no_color=no_color)


def _on_sigterm(signum, frame):
    from llmd import proc

    proc.last_signal = signal.SIGTERM
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one place that turns exceptions into exit codes."""
    from llmd import proc

    if os.environ.get("_LLMD_COMPLETE"):  # a <TAB> through the hook of `llmd completion`: register the shells
        from typer._completion_classes import completion_init

        completion_init()
    debug = os.environ.get("LLMD_DEBUG", "") not in ("", "0") or "--debug" in (argv or sys.argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    code: int = ExitCode.OK
    try:
        # Non-standalone Typer returns the code of typer.Exit, and turns Ctrl-C into 130 itself.
        rv = app(args=argv, prog_name="llmd", standalone_mode=False)
        if rv == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        if isinstance(rv, int):
            code = rv
    except LlmdError as err:
        code = err.exit_code
        _report(err, debug)
    except KeyboardInterrupt:
        code = ExitCode.for_signal(proc.last_signal)
        proc.kill_all_children()
        _stderr("✗ interrupted; child processes stopped")
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, EOFError):
        code = ExitCode.INTERRUPTED
        _stderr("✗ aborted")
    except Exception as exc:  # click usage errors and bugs
        show = getattr(exc, "show", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `llmd`, `llmd prereqs`: the help itself, as asked
            sys.stdout.write(exc.ctx.get_help() + "\n")  # type: ignore[attr-defined]
        elif callable(show) and hasattr(exc, "exit_code"):  # click usage error
            show()
            code = ExitCode.USAGE
        else:
            code = ExitCode.INTERNAL
            if debug:
                from rich.console import Console

                Console(stderr=True).print_exception(show_locals=False)
            _stderr(f"✗ internal error: {type(exc).__name__}: {exc}\n  (re-run with --debug for the traceback)")
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(int(code))


def _stderr(text: str) -> None:
    from llmd.redact import redact

    sys.stderr.write(redact(text) + "\n")
    sys.stderr.flush()


def _report(err: LlmdError, debug: bool) -> None:
    _stderr(f"✗ {err.message}")
    if err.details:
        _stderr(err.details)
    if err.hint:
        _stderr(f"hint: {err.hint}")
    log = err.log_path
    if log:
        _stderr(f"log: {log}")
    if debug:
        import traceback

        _stderr("".join(traceback.format_exception(err)))
