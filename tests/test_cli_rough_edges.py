"""Rough edges a new user hit (issue 7): each test reproduces one and fails without its fix."""

from __future__ import annotations

import json
import re

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
