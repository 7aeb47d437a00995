"""Rough edges a new user hit (issue 7): each test reproduces one and fails without its fix."""

from __future__ import annotations

import json
import re

import pytest

from llmd.settings import load_settings


def test_config_names_the_context_flag_as_users_type_it(cli):
    r = cli("config", "--json", "--context", "kind-llmd", "--tp", "1", "--monitoring")
    doc = json.loads(r.stdout)["settings"]
    assert doc["kube_context"]["source"] == "flag --context"
    assert doc["tensor_parallel"]["source"] == "flag --tensor-parallel"
    assert doc["monitoring"]["source"] == "flag --monitoring"


def _suggested(message: str) -> str:
    return re.findall(r"'([a-z0-9-]+)'", message.rsplit("try", 1)[-1].rsplit("e.g.", 1)[-1])[-1]


def test_a_too_long_postfix_gets_a_suggestion_that_itself_passes(cli):
    r = cli("config", "--release-postfix", "a-very-long-release-postfix-for-the-team")
    assert r.exit_code == 2
    fix = _suggested(r.stderr)
    load_settings({"release_postfix": fix})  # raises if the suggestion fails the length budget


def test_an_invalid_long_postfix_gets_a_suggestion_that_passes(cli):
    r = cli("config", "--release-postfix", "A_Very_Long_Release_Postfix_For_The_Team_Xyz")
    assert r.exit_code == 2 and "DNS-1035" in r.stderr
    load_settings({"release_postfix": _suggested(r.stderr)})


def test_quiet_dry_run_still_shows_the_plan(cli):
    r = cli("-q", "deploy", "--dry-run", "--no-hf-token")
    assert r.exit_code == 0, r.stderr
    assert "plan (dry-run" in r.stderr and "$ kubectl" in r.stderr and "helmfile" in r.stderr
    assert "→" not in r.stderr  # progress steps stay silent


def test_quiet_render_still_lists_the_files(cli, tmp_path):
    r = cli("-q", "render", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0
    assert str(tmp_path / "out" / "helmfile.yaml") in r.stderr.splitlines()


@pytest.mark.parametrize("argv", [
    ("test", "--sim", "--perf", "--requests", "2"),
    ("deploy", "--dry-run", "--no-hf-token"),
    ("status",),
    ("cleanup", "--force"),
    ("doctor",),
])
def test_a_state_dir_that_is_a_file_is_bad_input_before_any_work(cli, fp, tmp_path, monkeypatch, argv):
    blocker = tmp_path / "state-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LLMD_STATE_DIR", str(blocker))
    r = cli(*argv)  # fp is strict: any subprocess started would fail the test
    assert r.exit_code == 2, r.stderr
    assert f"{blocker} is not a directory" in r.stderr and "LLMD_STATE_DIR" in r.stderr
    assert "internal error" not in r.stderr and "smoke test" not in r.stderr


def test_unwritable_output_path_is_refused_before_the_run(cli, tmp_path):
    (tmp_path / "adir").mkdir()
    r = cli("test", "--sim", "--perf", "--requests", "2", "--report-file", str(tmp_path / "adir"), "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["smoke"] is None and "is a directory" in doc["error"]["message"]


def test_a_late_write_error_keeps_the_results(cli):
    # /dev/full passes every pre-check (a writable device) and fails the write itself: ENOSPC
    r = cli("test", "--sim", "--perf", "--requests", "3", "--output-tokens", "4", "--report-file", "/dev/full",
            "--json")
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["perf"]["stages"][0]["requests"]["ok"] == 3  # the results survive, in the document
    assert "json report /dev/full" in doc["error"]["message"] and "not saved" in doc["error"]["message"]
    assert "c=1" in r.stderr and "TTFT" in r.stderr  # and the table printed


def test_missing_tool_hint_says_how_to_put_make_tools_on_path(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl anywhere
    r = cli("status")
    assert r.exit_code == 3
    assert "make tools" in r.stderr and 'export PATH="$PWD/.tools/bin:$PATH"' in r.stderr
