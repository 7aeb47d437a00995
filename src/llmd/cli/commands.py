"""Command registration: one declarative table of verbs and command groups, in the order users reach for them.

    Verb("deploy")                            -> `llmd deploy`, the function `deploy` in llmd/cli/deploy.py
    Group("scheduler", "help", ("validate",)) -> `llmd scheduler validate`, the function `validate` in
                                                 llmd/cli/scheduler/validate.py (one file per sub-command)

To add a group: one line `Group(name, help, (sub-command, ...))` in COMMANDS, and the package llmd/cli/<name>/
with an empty __init__.py and one module per sub-command, each defining a function named like its module
(`-` in a command name is `_` in the module and function name). Nothing is imported until it is needed: a command
is imported and converted to click when it is invoked (or when --help lists it), so every added verb or group
costs start-up nothing (bench/cli_startup.py).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

from llmd.cli import help_format


def _ident(name: str) -> str:
    return name.replace("-", "_")


@dataclass(frozen=True)
class Verb:
    """`llmd <name>`: the function `func` (default: the name) in the module `module` (default: llmd.cli.<name>)."""

    name: str
    module: str = ""
    func: str = ""
    epilog: Callable[[], str] | None = None  # built only when the command is
    # (keyword argument, flag) that `-o VALUE` fed before -o meant a format (cli/output_format.py)
    legacy_output: tuple[str, str] | None = None

    def load(self) -> Callable[..., Any]:
        module = importlib.import_module(self.module or f"llmd.cli.{_ident(self.name)}")
        return getattr(module, self.func or _ident(self.name))


@dataclass(frozen=True)
class Group:
    """`llmd <name> <sub-command>`: one module per sub-command in the package `package` (default llmd.cli.<name>)."""

    name: str
    help: str
    commands: tuple[str | Verb, ...]  # a Verb to give a sub-command more than its name (legacy_output, epilog)
    package: str = ""

    def verbs(self) -> tuple[Verb, ...]:
        package = self.package or f"llmd.cli.{_ident(self.name)}"
        subs = (Verb(sub) if isinstance(sub, str) else sub for sub in self.commands)
        return tuple(dataclasses.replace(sub, module=sub.module or f"{package}.{_ident(sub.name)}") for sub in subs)


def _perf_epilog() -> str:
    from llmd.cli.perf_options import perf_epilog

    return perf_epilog()  # the perf metric definitions also stored in every perf report


COMMANDS: tuple[Verb | Group, ...] = (
    Verb("deploy"),
    Verb("test", epilog=_perf_epilog, legacy_output=("perf_output", "--report-file")),
    Verb("status"),
    Verb("cleanup"),
    Verb("doctor"),
    Verb("render", legacy_output=("out", "--out")),
    Verb("config"),
    Verb("sim"),
    Verb("version"),
    Verb("completion"),
    Group("prereqs", "Install, inspect and remove the cluster prerequisites: Gateway API + InferencePool CRDs, the "
                     "gateway control plane, LWS, Prometheus Operator CRDs.", ("install", "status", "uninstall")),
    Group("scheduler", "EPP scheduler profiles: validate, show, apply, metrics",
          ("validate", "show", "apply", "metrics")),
    Group("bench", "Benchmarks across configurations: `bench compare` runs one workload per scheduler profile.",
          (Verb("compare", legacy_output=("perf_output", "--report-file")),)),
    Group("report", "Work with perf reports and comparisons: `report plot` draws a chart.", ("plot",)),
)


# Built click commands, keyed by their path ("deploy", "scheduler validate"): main() runs many times in-process
# under tests, and converting a command again on every call made the suites quadratically slow.
_built: dict[str, click.Command] = {}


def _build_verb(verb: Verb, path: str) -> click.Command:
    if path not in _built:
        single = typer.Typer(add_completion=False, rich_markup_mode=help_format.MARKUP)
        single.command(verb.name, epilog=verb.epilog() if verb.epilog else None)(verb.load())
        command = typer.main.get_command(single)  # one command and no callback: the command itself
        taken = {o for p in command.params for o in p.opts}
        from llmd.cli import global_flags, output_format

        if "--json" in taken and not {"-o", "--output"} & taken and command.callback is not None:
            command.params.append(output_format.option(verb.legacy_output[1] if verb.legacy_output else None))
            command.callback = output_format.wrap(command.callback, verb.legacy_output)
        command.params += [p for p in global_flags.params() if not set(p.opts) & taken]  # `llmd status -v`
        help_format.group_options(command)
        _built[path] = command
    return _built[path]


def _build_group(group: Group) -> click.Command:
    if group.name not in _built:
        _built[group.name] = LazyGroup(name=group.name, help=group.help, entries=group.verbs(), prefix=group.name,
                                       rich_markup_mode=help_format.MARKUP,
                                       no_args_is_help=True)
    return _built[group.name]


class LazyGroup(TyperGroup):
    """A click group whose table entries are imported and built on first use, in table order. Commands added with
    `@app.command()` (tests, extensions) follow the table."""

    def __init__(self, *, entries: tuple[Verb | Group, ...] | None = None, prefix: str = "", **attrs: Any) -> None:
        super().__init__(**attrs)
        self.entries = {e.name: e for e in (COMMANDS if entries is None else entries)}
        self.prefix = prefix
        # click's "Did you mean ...?" reads the names from .commands: table names map to None until built
        self.commands = {**dict.fromkeys(self.entries), **self.commands}  # type: ignore[dict-item]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.entries.get(cmd_name)
        if entry is None:
            return self.commands.get(cmd_name)
        if isinstance(entry, Group):
            return _build_group(entry)
        return _build_verb(entry, f"{self.prefix} {cmd_name}".strip())
