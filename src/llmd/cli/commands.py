"""Command registration: one module per verb under llmd.cli, listed in the order users reach for them."""

from __future__ import annotations

import importlib

import typer

# (command name, module under llmd.cli, function). `test` lives in cli/test.py, registered by name.
COMMANDS = (
    ("deploy", "deploy", "deploy"),
    ("test", "test", "test"),
    ("status", "status", "status"),
    ("cleanup", "cleanup", "cleanup"),
    ("doctor", "doctor", "doctor"),
    ("render", "render", "render"),
    ("config", "config", "config"),
    ("sim", "sim", "sim"),
)
# (group name, module under llmd.cli): a Typer sub-app named `app` with its own commands.
GROUPS = (
    ("prereqs", "prereqs"),
)


def register(app: typer.Typer) -> None:
    from llmd.cli.perf_options import perf_epilog

    epilogs = {"test": perf_epilog()}  # the perf metric definitions also stored in every perf report
    for name, module, func in COMMANDS:
        app.command(name, epilog=epilogs.get(name))(getattr(importlib.import_module(f"llmd.cli.{module}"), func))
    for name, module in GROUPS:
        app.add_typer(importlib.import_module(f"llmd.cli.{module}").app, name=name)
