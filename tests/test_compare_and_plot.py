"""`llmd bench compare` input checks (exit 2), nothing deployed (exit 6) and ratios; `llmd report plot` on perf
reports, sweeps and comparisons.

`report plot` runs as a real child process: matplotlib loaded into the pytest process would slow every later
garbage collection (and the timing-sensitive load-engine tests with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from llmd.ops import compare


def stage(label: str, ttft50: float, hit: float | None, tok_s: float, failed: int = 0) -> dict:
    return {"name": label, "label": label, "ttft_ms": {"p50": ttft50, "p99": ttft50 * 3}, "tpot_ms": {"p50": 5.0},
            "throughput": {"output_token_rate": tok_s, "request_rate": tok_s / 32},
            "tokens": {"cached": None if hit is None else {"hit_rate": hit}},
            "requests": {"failed": failed}, "failures": {"truncated": failed} if failed else {}}


def test_stage_summary_and_ratios_to_the_baseline():
    base = compare.stage_summary(stage("c=16", 200.0, 0.1, 1000.0))
    fast = compare.stage_summary(stage("c=16", 20.0, 0.8, 2000.0, failed=2))
    assert fast["errors"] == 2 and fast["failures"] == {"truncated": 2} and fast["hit_rate"] == 0.8
    r = compare.ratios(fast, base)
    assert r["ttft_p50_ms"] == 0.1 and r["output_tok_s"] == 2.0 and r["hit_rate"] == 8.0
    assert r["errors"] is None  # the baseline had none: no ratio


def test_bench_compare_bad_input_is_exit_2_before_anything_runs(cli):
    for profiles, needle in (("random,nosuch", "nosuch"), ("random,random", "twice"), ("", "--scheduler")):
        r = cli("bench", "compare", "--platform", "local", "--scheduler", profiles) if profiles else \
            cli("bench", "compare", "--platform", "local")
        assert r.exit_code == 2 and needle in r.stderr, r.stderr


def test_bench_compare_with_nothing_deployed_is_exit_6(cli):
    r = cli("bench", "compare", "--platform", "local", "--scheduler", "random,default", "--requests", "4")
    assert r.exit_code == 6 and "nothing is deployed on the local platform" in r.stderr


def plot(*args: str) -> SimpleNamespace:
    p = subprocess.run([sys.executable, "-m", "llmd", "report", "plot", *args], check=False, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    return SimpleNamespace(exit_code=p.returncode, stderr=p.stderr)


def test_report_plot_draws_perf_reports_sweeps_and_comparisons(tmp_path):
    sweep = {"schema": "llmd.perf/v1", "config": {"workload": "shared-prefix"},
             "stages": [stage("c=1", 30.0, 0.7, 300.0), stage("c=16", 90.0, 0.6, 2000.0)]}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    r = plot(str(tmp_path / "sweep.json"))
    assert r.exit_code == 0, r.stderr
    png = (tmp_path / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    cmp_doc = {"schema": compare.SCHEMA, "platform": "local", "profiles": ["random", "default"],
               "entries": {"random": compare.stage_summary(stage("c=16", 260.0, 0.15, 1100.0)),
                           "default": compare.stage_summary(stage("c=16", 24.0, None, 2200.0))}}
    (tmp_path / "cmp.json").write_text(json.dumps(cmp_doc))
    r = plot(str(tmp_path / "cmp.json"), "--out", str(tmp_path / "chart.png"))
    assert r.exit_code == 0 and (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("content, needle", [("{not json", "not JSON"), ('{"schema": "other"}', "not an llmd"),
                                             ("[1, 2]", "JSON object")])
def test_report_plot_refuses_what_is_not_a_report(cli, tmp_path, content, needle):
    (tmp_path / "x.json").write_text(content)
    r = cli("report", "plot", str(tmp_path / "x.json"))  # refused before matplotlib is imported
    assert r.exit_code == 2 and needle in r.stderr
    assert not (tmp_path / "x.png").exists()
    assert cli("report", "plot", str(tmp_path / "missing.json")).exit_code == 2
