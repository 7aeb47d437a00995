"""Perf flags: F10 validation before any socket, parsing, stages; `llmd test --sim --perf` exit codes."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json

import pytest

from llmd.cli.perf_options import build_perf_options, perf_epilog
from llmd.errors import ConfigError
from llmd.loadgen.metrics import METRICS, parse_slo, percentile, summarize
from llmd.loadgen.options import PerfOptions

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(("flags", "needle"), [
    (["--concurrency", "0"], "--concurrency 0 is out of range"),
    (["--rate", "-1"], "--rate -1.0 is out of range"),
    (["--duration", "-5"], "--duration: duration '-5' must not be negative"),
    (["--duration", "soon"], "--duration: invalid duration 'soon'"),
    (["--requests", "0"], "--requests 0 is out of range"),
    (["--concurrency", "2", "--rate", "3"], "exclusive"),
    (["--workload", "nope"], "--workload 'nope' is unknown"),
    (["--workload", "file"], "--workload file needs --dataset"),
    (["--workload", "file", "--dataset", "missing.jsonl"], "does not exist"),
    (["--api", "embeddings"], "--api 'embeddings' is not supported"),
    (["--sweep", "1,x"], "not a list of positive numbers"),
    (["--sweep", "1.5,2"], "concurrencies must be integers"),
    (["--slo", "ttft=fast"], "invalid --slo ttft value"),
    (["--slo", "latency=3ms"], "invalid --slo item"),
    (["--max-error-rate", "2"], "--max-error-rate 2.0 is out of range"),
    (["--report-file", "/nonexistent-dir/r.json"], "--report-file /nonexistent-dir/r.json: directory"),
    (["--warmup", "-1"], "must not be negative"),
    (["--workers", "0"], "--workers 0 is out of range"),
])
def test_invalid_perf_flags_exit_2_before_any_socket(cli, flags, needle):  # F10
    # --url points at a port nothing listens on: exit 2 proves validation ran before any connection attempt
    res = cli("test", "--url", "http://127.0.0.1:9", "--perf", *flags)
    assert res.exit_code == 2, res.stderr
    assert needle in res.stderr
    assert "hint:" in res.stderr


def test_parsing_durations_and_defaults():
    o = build_perf_options({"duration": "2m", "warmup": "500ms", "request_timeout": "90", "concurrency": 4})
    assert (o.duration, o.warmup, o.request_timeout) == (120.0, 0.5, 90.0)
    (stage,) = o.stages()
    assert stage.mode == "closed" and stage.concurrency == 4 and stage.duration_s == 120.0
    assert PerfOptions().stages()[0].duration_s == 30.0  # no bound given: 30 s
    assert PerfOptions(requests=5).stages()[0].duration_s is None


def test_sweep_stages():
    assert [s.concurrency for s in PerfOptions(sweep="1,4,16").stages()] == [1, 4, 16]
    rates = PerfOptions(sweep="2,5", rate=1.0, arrival="poisson").stages()
    assert [(s.mode, s.rate, s.arrival) for s in rates] == [("open", 2, "poisson"), ("open", 5, "poisson")]
    assert [s.rate for s in PerfOptions(sweep="rate=0.5,1").stages()] == [0.5, 1.0]


def test_slo_parsing():
    assert parse_slo("ttft=200ms,tpot=50,e2e=1.5s") == {"ttft": 200.0, "tpot": 50.0, "e2e": 1500.0,
                                                       "attainment": 0.95}
    assert parse_slo("ttft=1s,attainment=0.5")["attainment"] == 0.5
    with pytest.raises(ConfigError, match="attainment"):
        parse_slo("ttft=1s,attainment=2")
    with pytest.raises(ConfigError, match="no latency limit"):
        parse_slo("attainment=0.9")


def test_slo_limits_take_every_duration_the_other_time_flags_take():
    """--duration 1m works, so --slo e2e=1m must too: one duration parser (a bare number stays milliseconds)."""
    assert parse_slo("e2e=1m,ttft=1m30s,tpot=250us,itl=20") == {"e2e": 60000.0, "ttft": 90000.0, "tpot": 0.25,
                                                                 "itl": 20.0, "attainment": 0.95}
    assert parse_slo("ttft = 200 ms")["ttft"] == 200.0
    for bad in ("ttft=0", "ttft=-5ms", "ttft=fast", "ttft=1x"):
        with pytest.raises(ConfigError, match="invalid --slo ttft value"):
            parse_slo(bad)


def test_statistics():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    s = summarize([float(x) for x in range(1, 101)])
    assert (s["count"], s["mean"], s["p50"], s["max"], s["min"]) == (100, 50.5, 50.5, 100.0, 1.0)
    assert s["p99"] == pytest.approx(99.01)
    assert summarize([])["p50"] is None


def test_help_lists_metric_definitions(cli):
    res = cli("test", "--help")
    assert res.exit_code == 0
    for name in ("--concurrency", "--sweep", "--slo", "--max-error-rate", "--workers", "ttft_ms", "goodput"):
        assert name in res.stdout
    assert all(k in perf_epilog() for k in METRICS)


def test_llmd_test_sim_perf_passes_and_writes_report(cli, tmp_path):
    out = tmp_path / "r.json"
    res = cli("test", "--sim", "--perf", "--requests", "8", "--concurrency", "2", "--output-tokens", "4",
              "--report-file", str(out), "--csv", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] and doc["stages"][0]["requests"]["ok"] == 8
    assert doc["stages"][0]["tokens"]["output_source"] == "usage"


def test_llmd_test_sim_perf_exit_8_on_slo_breach(cli, tmp_path):
    out = tmp_path / "r.json"
    res = cli("test", "--sim", "--perf", "--requests", "6", "--concurrency", "2", "--output-tokens", "4",
              "--slo", "ttft=0.001ms", "--report-file", str(out))
    assert res.exit_code == 8, res.stderr
    assert "SLO attainment 0.0%" in res.stderr
    assert json.loads(out.read_text())["breaches"]


def test_prompt_plus_output_must_fit_max_model_len():  # F10
    PerfOptions(input_tokens=900, output_tokens=100).check_model_len(1024)
    with pytest.raises(ConfigError, match="exceed max_model_len 1024"):
        PerfOptions(input_tokens=1000, output_tokens=100).check_model_len(1024)
    with pytest.raises(ConfigError, match="--output-tokens 2048"):
        PerfOptions(input_tokens=1, output_tokens=2048).check_model_len(1024)
    with pytest.raises(ConfigError):
        PerfOptions(workload="shared-prefix", system_prompt_len=1000, question_len=64).check_model_len(1024)
    PerfOptions(input_tokens=10**6).check_model_len(None)  # unknown limit: nothing to check


@pytest.mark.parametrize(("kw", "needle"), [
    ({"arrival": "poisson"}, "--arrival poisson needs an open loop"),           # closed loop c=1 would run instead
    ({"arrival": "poisson", "sweep": "c=1,4"}, "--arrival poisson needs an open loop"),
    ({"concurrency": 2, "sweep": "1,4"}, "--concurrency and --sweep are exclusive"),  # the 2 was silently dropped
    ({"rate": 5.0, "sweep": "c=1,4"}, "--rate and --sweep c=... are exclusive"),  # closed stages; 5/s dropped
])
def test_flags_that_would_be_silently_ignored_are_refused(kw, needle):  # F10
    with pytest.raises(ConfigError, match=needle):
        PerfOptions(**kw).validate()
    PerfOptions(rate=1.0, arrival="poisson").validate()
    PerfOptions(sweep="rate=1,2", arrival="poisson").validate()


def test_sweep_values_must_be_distinct():  # stage names (records, benchmark-report files) come from the values
    with pytest.raises(ConfigError, match="--sweep '1,4,1' repeats 1"):
        PerfOptions(sweep="1,4,1").validate()
    with pytest.raises(ConfigError, match="repeats 2"):
        PerfOptions(sweep="rate=2,2.0").validate()
