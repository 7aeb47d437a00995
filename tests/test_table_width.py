"""Tables at 80 and 120 columns fit and never cut a number; without a terminal the layout ignores $COLUMNS."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from llmd.cli import perf_view as perf
from llmd.loadgen.report import PerfReport
from llmd.ui import Ui


def _tty_ui(width: int) -> tuple[Ui, io.StringIO]:
    ui = Ui()
    buf = io.StringIO()
    ui.err = Console(file=buf, width=width, force_terminal=True, no_color=True, highlight=False, soft_wrap=True)
    return ui, buf


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> PerfReport:
    """A real perf run against the embedded simulator (a two-stage sweep), read back from its JSON report."""
    import subprocess
    import sys

    from conftest import REAL_POPEN

    out = tmp_path_factory.mktemp("perf") / "r.json"
    argv = [sys.executable, "-m", "llmd", "test", "--sim", "--perf", "--sweep", "1,2", "--requests", "4",
            "--output-tokens", "4", "--input-tokens", "8", "--report-file", str(out)]
    with REAL_POPEN(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as p:
        _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    doc = json.loads(out.read_text())
    return PerfReport(config=doc["config"], environment=doc["environment"], stages=doc["stages"],
                      complete=doc["complete"], warnings=doc["warnings"], files={"json": str(out)})


def _numbers(report: PerfReport) -> list[str]:
    f = perf._fmt
    want = []
    for s in report.stages:
        want += [s["label"], f"{s['requests']['ok']}/{s['requests']['failed']}", f(s["throughput"]["request_rate"]),
                 f(s["throughput"]["output_token_rate"]), f"{f(s['ttft_ms']['p50'])}/{f(s['ttft_ms']['p99'])}",
                 f"{f(s['e2e_ms']['p50'])}/{f(s['e2e_ms']['p99'])}", f(s["queue_ms"]["p99"])]
    return want


@pytest.mark.parametrize("width", [80, 120])
def test_perf_table_fits_the_terminal_and_keeps_every_number(report, width):
    ui, buf = _tty_ui(width)
    perf.show(report, ui)
    text = buf.getvalue()
    assert "…" not in text
    table_lines = [ln for ln in text.splitlines() if ln[:1] in "┏┃┡│└"]
    assert table_lines and all(len(ln) <= width for ln in table_lines), max(map(len, table_lines))
    for value in _numbers(report):
        assert value in text, value  # whole, on one line
    for header in ("ok/fail", "req/s", "tok/s", "TTFT", "ITL50", "TPOT50", "E2E", "q99", "good", "CPU"):
        assert header in text


def test_at_80_columns_the_perf_table_is_split_and_repeats_the_stage(report):
    ui, buf = _tty_ui(80)
    perf.show(report, ui)
    text = buf.getvalue()
    assert text.count("┃ stage ") == 2  # two narrower tables, each with the key column


def test_a_table_too_wide_even_to_split_is_stacked():
    from rich.table import Table

    t = Table(title="wide")
    t.add_column("key")
    t.add_column("a", no_wrap=True)
    t.add_column("b", no_wrap=True)
    t.add_row("row1", "1234567890" * 5, "x" * 45)
    ui, buf = _tty_ui(40)
    ui.render(t)
    text = buf.getvalue()
    assert "…" not in text and "row1" in text
    assert "".join(text.split()).count("1234567890" * 5) == 1  # folded lines joined: every digit is there


@pytest.mark.parametrize("argv", [("config",), ("deploy", "--dry-run", "--no-hf-token")])
def test_without_a_terminal_the_layout_is_the_same_at_any_width(cli, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "80")
    narrow = cli(*argv).stderr
    monkeypatch.setenv("COLUMNS", "200")
    wide = cli(*argv).stderr
    assert narrow == wide and "…" not in narrow


def test_a_long_path_in_a_text_column_folds_instead_of_stacking_the_table():
    from llmd.cli.lifecycle import steps_table

    path = "/root/.local/state/llmd/local/llm-d-inference-scheduling/inference-scheduling"
    ui, buf = _tty_ui(80)
    ui.render(steps_table("cleanup", [(f"state {path}", "removed", "state, EPP config and logs")]))
    text = buf.getvalue()
    assert "┃ step" in text and all(len(ln) <= 80 for ln in text.splitlines())
    assert path in "".join(ln.strip("│ ").split("│")[0].strip() for ln in text.splitlines() if ln.startswith("│"))
