"""Help at 80 and 120 columns cuts nothing a user must read: every option name, every valid value, defaults."""

from __future__ import annotations

import re

import pytest

from llmd.settings import ACCELERATORS, ENVIRONMENTS, SCHEDULERS


def _commands():
    from llmd.cli.commands import COMMANDS, Group

    out = [[e.name] for e in COMMANDS if not isinstance(e, Group)]
    out += [[e.name, sub.name] for e in COMMANDS if isinstance(e, Group) for sub in e.verbs()]
    return out


def _help(cli, monkeypatch, columns: int, *path: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    r = cli(*path, "--help")
    assert r.exit_code == 0, (path, r.stderr)
    return r.stdout


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_every_option_name_is_whole_and_no_line_overflows(cli, monkeypatch, columns, path):
    import typer

    from llmd.cli.commands import LazyGroup
    from llmd.cli.root import app

    text = _help(cli, monkeypatch, columns, *path)
    assert "…" not in text
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    command = root
    for name in path:
        command = command.get_command(None, name)  # type: ignore[arg-type]
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,=/]|$)", text, re.M), (path, opt)
    long_lines = [ln for ln in text.splitlines() if len(ln) > columns and " " in ln.strip()]
    assert not long_lines, long_lines


@pytest.mark.parametrize("columns", [80, 120])
def test_value_lists_and_defaults_survive_80_columns(cli, monkeypatch, columns):
    text = _help(cli, monkeypatch, columns, "deploy")
    words = set(re.findall(r"[\w.-]+", text))
    for value in (*ENVIRONMENTS, *ACCELERATORS, *SCHEDULERS):
        assert value in words, value  # whole: never split at a hyphen, never '…'
    assert "[default: istio]" in text and "[default: 4]" in text and "[default: nvidia-l40s]" in text
    assert "[env LLMD_REPLICAS]" in text  # help text is not read as Rich markup
    assert "Deployment settings:" in text and "Global options (before or after the command):" in text


def test_perf_flags_keep_their_section_and_defaults(cli, monkeypatch):
    text = _help(cli, monkeypatch, 80, "test")
    assert "Perf test (with --perf):" in text and "[default: 120.0]" in text
    assert "shared-prefix" in set(re.findall(r"[\w.|-]+", text.replace("|", " ")))
