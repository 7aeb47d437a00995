"""Shared bits of `deploy`, `status` and `cleanup`: the failure document for --json and rendering helpers."""

from __future__ import annotations

import contextlib

from llmd.errors import LlmdError


def attach_log(err: LlmdError, runner) -> None:
    """The run's command transcript goes with its error: the boundary prints it as `log: <path>`."""
    log = getattr(getattr(runner, "transcript", None), "path", None)
    if log is not None and err.log_path is None:
        err.log_path = str(log)


def error_fields(err: LlmdError) -> dict:
    """What every --json failure document says about the error (each command's document places them)."""
    return {"message": err.message, "hint": err.hint, "details": err.details, "exit_code": int(err.exit_code)}


@contextlib.contextmanager
def json_failure(ui, enabled: bool, runner=None):
    """With --json, a failure still prints one JSON document on stdout before the error boundary exits.
    The error also carries the run's command transcript, which the boundary prints as `log: <path>`."""
    try:
        yield
    except LlmdError as err:
        attach_log(err, runner)
        if enabled:
            e = error_fields(err)
            ui.json({"status": "failed", "exit_code": e["exit_code"], "error": e["message"], "details": e["details"],
                     "hint": e["hint"]})
        raise


def steps_table(title: str, rows: list[tuple[str, str, str]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("step")
    t.add_column("result")
    t.add_column("detail", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t
