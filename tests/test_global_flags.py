"""Global switches work before and after the command; -v is a counter that really shows more."""

from __future__ import annotations

import json

import pytest

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    Fake,
    clock_fixture,
    fake_fixture,
    no_killpg_fixture,
)


def _not_deployed(fake) -> None:
    fake.context()
    fake.reachable()
    fake.namespace(False)


@pytest.mark.parametrize("argv", [("-v", "status"), ("status", "-v")])
def test_verbose_before_or_after_shows_each_child_with_exit_time_and_output(cli, fake, argv):
    _not_deployed(fake)
    r = cli(*argv, "--context", CTX)
    assert r.exit_code == 6, r.stderr
    assert "$ kubectl --context" in r.stderr and "version --output json" in r.stderr
    assert "↳ exit 0 in" in r.stderr
    assert '"serverVersion"' in r.stderr  # the child's own output


def test_without_verbose_children_stay_quiet(cli, fake):
    _not_deployed(fake)
    r = cli("status", "--context", CTX)
    assert "↳ exit" not in r.stderr and '"serverVersion"' not in r.stderr


def test_vv_shows_the_whole_output_and_v_only_its_tail(cli, fp, fake):
    from llmd.proc import CmdResult
    from llmd.ui import Ui

    result = CmdResult(cmd=None, returncode=1, stdout="".join(f"line {i}\n" for i in range(50)), duration_s=0.5)
    for verbose, first_shown in ((1, "line 30"), (2, "line 0")):
        ui = Ui(verbose=verbose)
        with ui.err.capture() as cap:
            ui.child_result(result)
        out = cap.get()
        assert "↳ exit 1 in 0.50s" in out and first_shown in out and "line 49" in out
        assert ("earlier lines" in out) == (verbose == 1)


@pytest.mark.parametrize("argv", [("-q", "deploy"), ("deploy", "-q"), ("deploy", "--quiet")])
def test_quiet_after_the_command_too(cli, argv):
    r = cli(*argv, "--dry-run", "--no-hf-token")
    assert r.exit_code == 0, r.stderr
    assert "plan (dry-run" in r.stderr and "→" not in r.stderr


def test_no_color_and_debug_are_accepted_after_the_command(cli):
    r = cli("config", "--json", "--no-color", "--debug")
    assert r.exit_code == 0 and json.loads(r.stdout)["settings"]


def test_help_lists_the_global_options_and_says_v_counts(cli):
    r = cli("status", "--help")
    assert "--verbose" in r.stdout and "counter" in r.stdout and "--no-color" in r.stdout
