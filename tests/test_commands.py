"""The command registry: verbs and groups from one table, each imported only when it runs or --help lists it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmd.cli import commands

DEMO = commands.Group("demo", "A demo group.", ("hello", "say-bye"), package="fakes.cli_group")


@pytest.fixture
def with_demo_group(monkeypatch):
    monkeypatch.setattr(commands, "COMMANDS", (*commands.COMMANDS, DEMO))
    monkeypatch.setattr(commands, "_built", {})
    for name in ("fakes.cli_group.hello", "fakes.cli_group.say_bye"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_group_sub_command_runs_through_the_error_boundary(cli, with_demo_group):
    r = cli("demo", "hello", "--name", "llmd")
    assert r.exit_code == 0 and r.stdout == "hello llmd\n"
    assert "fakes.cli_group.say_bye" not in sys.modules  # a sibling is not imported to run one sub-command

    r = cli("demo", "say-bye")
    assert r.exit_code == 2 and "bye refused" in r.stderr and "hint: say hello instead" in r.stderr


def test_group_help_lists_sub_commands_and_root_help_lists_the_group(cli, with_demo_group):
    r = cli("demo")  # no sub-command: the group's help
    assert "hello" in r.stdout and "say-bye" in r.stdout and "Greet someone." in r.stdout
    r = cli("--help")
    assert "demo" in r.stdout and "A demo group." in r.stdout
    assert r.stdout.index("deploy") < r.stdout.index("sim") < r.stdout.index("demo")  # table order


def test_unknown_sub_command_is_a_usage_error_with_a_suggestion(cli, with_demo_group):
    r = cli("demo", "helo")
    assert r.exit_code == 2 and "No such command 'helo'" in r.stderr and "Did you mean 'hello'" in r.stderr


def test_every_verb_in_the_table_resolves_to_a_function():
    for entry in commands.COMMANDS:
        verbs = entry.verbs() if isinstance(entry, commands.Group) else (entry,)
        for verb in verbs:
            assert callable(verb.load()), verb


def test_running_one_command_imports_no_other_command_module():
    code = (
        "import sys\n"
        "from llmd.cli import main\n"
        "try:\n    main(['config', '-h'])\nexcept SystemExit:\n    pass\n"
        "names = [e.name for e in __import__('llmd.cli.commands', fromlist=['x']).COMMANDS]\n"
        "print(sorted(n for n in names if 'llmd.cli.' + n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['config']"
