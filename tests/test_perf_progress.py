"""Perf progress: done/total and an ETA; without a terminal a line per stage and one every LOG_EVERY_S."""

from __future__ import annotations

import re
from types import SimpleNamespace

from llmd.cli import perf_view
from llmd.loadgen.engine import Progress


def _stage(requests=None, duration_s=None, warmup_s=0.0):
    return SimpleNamespace(requests=requests, duration_s=duration_s, warmup_s=warmup_s, label=lambda: "c=4")


def test_request_bounded_stage_shows_done_of_total_and_an_eta_from_its_pace():
    p = Progress(done=50, inflight=4, errors=1)
    p.ttft_recent.extend([10.0, 20.0, 30.0])
    text = perf_view.progress_text(_stage(requests=200), p, elapsed=5.0)
    assert "done 50/200 (25%)" in text and "in flight 4" in text and "errors 1" in text
    assert "TTFT p50 20.0 ms" in text and "ETA 15 s" in text


def test_time_bounded_stage_eta_counts_down_the_warmup_and_duration():
    assert perf_view.eta_s(_stage(duration_s=30.0, warmup_s=5.0), done=10, elapsed=20.0) == 15.0
    assert perf_view.eta_s(_stage(requests=100, duration_s=60.0), done=50, elapsed=10.0) == 10.0  # the sooner
    assert perf_view.eta_s(_stage(requests=100), done=0, elapsed=1.0) is None  # no pace yet


def test_without_a_terminal_a_long_stage_logs_progress_lines(cli, monkeypatch):
    monkeypatch.setattr(perf_view, "LOG_EVERY_S", 0.3)  # the shipped interval is 10 s; same mechanism
    r = cli("test", "--sim", "--perf", "--sweep", "1,2", "--duration", "1.2s", "--output-tokens", "4")
    assert r.exit_code == 0, r.stderr
    assert len(re.findall(r"→ perf stage c\d", r.stderr)) == 2  # a line per stage
    lines = re.findall(r"c=\d\s+\d+\.\d s  done \d+  in flight \d+  errors \d+  TTFT p50 .*ETA \d+ s", r.stderr)
    assert len(lines) >= 2, r.stderr


def test_quiet_runs_print_no_progress_lines(cli, monkeypatch):
    monkeypatch.setattr(perf_view, "LOG_EVERY_S", 0.2)
    r = cli("-q", "test", "--sim", "--perf", "--duration", "1s", "--output-tokens", "4")
    assert r.exit_code == 0 and "in flight" not in r.stderr and "TTFT" in r.stderr  # the table stays
