"""`--json` is a contract: after argument parsing, every outcome prints exactly one JSON document on stdout."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("args", [
    ("--rate", "5", "--sweep", "c=1,2"),
    ("--rate", "0"),
    ("--sweep", "1,x"),
    ("--max-error-rate", "2"),
])
def test_bad_perf_values_still_print_the_document(cli, args):
    r = cli("test", "--sim", "--json", "--perf", *args)
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)  # exactly one document
    assert doc["smoke"] is None and doc["perf"] is None  # nothing ran: the simulator never started
    assert doc["error"]["exit_code"] == 2 and doc["error"]["message"]


@pytest.mark.parametrize("verb", ["render", "config"])
def test_bad_settings_print_the_failure_document(cli, verb):
    r = cli(verb, "--json", "-n", "Bad_NS")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and "DNS-1123" in doc["error"]


def test_render_write_failure_prints_the_failure_document(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("render", "--json", "--out", str(blocker / "sub"))
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and str(blocker) in doc["error"]
