"""`-o json|yaml` beside `--json` on every verb with data; the old `-o PATH` spellings still work, with a warning."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.parametrize("argv", [("config",), ("render", "--out", "-"), ("deploy", "--dry-run", "--no-hf-token"),
                                  ("cleanup", "--dry-run"), ("test", "--sim")])
def test_o_json_is_json_and_o_yaml_the_same_document(cli, argv):
    as_json = cli(*argv, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        r = cli(*argv, "-o", fmt)
        assert r.exit_code == 0, r.stderr
        other = parse(r.stdout)
        assert type(other) is type(doc)
        assert (other.keys() == doc.keys()) if isinstance(doc, dict) else (len(other) == len(doc))


def test_every_verb_with_json_has_o(cli):
    from llmd.cli.commands import COMMANDS, Group

    names = [[e.name] for e in COMMANDS if not isinstance(e, Group)]
    names += [[e.name, sub.name] for e in COMMANDS if isinstance(e, Group) for sub in e.verbs()]
    for path in names:
        r = cli(*path, "--help")
        assert r.exit_code == 0, path
        if "--json" in r.stdout:
            assert "table|json|yaml" in r.stdout, path


def test_a_bad_format_is_a_usage_error(cli):
    r = cli("status", "-o", "xml")
    assert r.exit_code == 2 and "'xml' is not one of table, json, yaml" in r.stderr


def test_o_table_contradicts_json(cli):
    r = cli("config", "--json", "-o", "table")
    assert r.exit_code == 2 and "contradicts --json" in r.stderr


def test_status_failure_document_is_yaml_with_o_yaml(cli):
    r = cli("status", "-o", "yaml", "-n", "Bad_NS")
    assert r.exit_code == 2
    assert yaml.safe_load(r.stdout)["status"] == "failed"


def test_render_o_dir_is_the_old_spelling_of_out(cli, tmp_path):
    r = cli("render", "-o", str(tmp_path / "r"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "r" / "helmfile.yaml").is_file()
    assert "old spelling of --out" in r.stderr


def test_test_o_file_is_the_old_spelling_of_report_file(cli, tmp_path):
    out = tmp_path / "perf.json"
    r = cli("test", "--sim", "--perf", "--requests", "2", "--output-tokens", "4", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert json.loads(out.read_text())["schema"] and "old spelling of --report-file" in r.stderr
    r = cli("test", "--sim", "--perf", "--requests", "2", "--output-tokens", "4", "--report-file", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["perf"]["files"]["json"] == str(out)


def test_bench_compare_o_file_is_the_old_spelling_of_report_file(cli, tmp_path):
    out = tmp_path / "compare.json"
    # nothing deployed: the path reached --report-file (a warning, no usage error) and the run fails at the first apply
    r = cli("bench", "compare", "--platform", "local", "--scheduler", "random,default", "--requests", "2",
            "--output", str(out))
    assert r.exit_code == 6, r.stderr
    assert f"-o/--output {out} is the old spelling of --report-file {out}" in r.stderr
    r = cli("bench", "compare", "--platform", "local", "--scheduler", "random", "-o", str(out),
            "--report-file", str(out))
    assert r.exit_code == 2 and "is not a format and --report-file is given too" in r.stderr


def test_report_plot_hint_names_the_flags_that_write_reports(cli, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    r = cli("report", "plot", str(bad))
    assert r.exit_code == 2
    assert "`llmd test --perf --report-file` or `llmd bench compare --report-file`" in r.stderr
