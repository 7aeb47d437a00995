"""The perf run's views: a live status line per stage and the final table. run_perf calls them through its
`view` (llmd.ops.perf.PerfView); `llmd test` and `llmd bench compare` pass `PerfTable(ui)`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from llmd.loadgen.report import SCHEMA

if TYPE_CHECKING:
    from llmd.loadgen.engine import Progress, Stage
    from llmd.loadgen.report import PerfReport


class PerfTable:
    """The view of a perf run on the Ui: a live line per stage on a terminal, the table when the run ends."""

    def __init__(self, ui) -> None:
        self.ui = ui

    def stage(self, stage: Stage) -> LiveLine | None:
        return LiveLine(self.ui, stage) if self.ui.interactive else None

    def report(self, report: PerfReport) -> None:
        show(report, self.ui)


class LiveLine:
    """One status line per stage (done / in flight / errors / rolling TTFT p50), refreshed by the load engine."""

    def __init__(self, ui, stage: Stage) -> None:
        from rich.live import Live

        self.stage = stage
        self.t0 = time.monotonic()
        self.shown = 0.0
        # refreshed from the event loop (no refresh thread competing with the load for the GIL)
        self.live = Live("", console=ui.err, auto_refresh=False, transient=True)
        self.live.start()

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.shown < 0.2:
            return
        self.shown = now
        recent = sorted(p.ttft_recent)
        p50 = f"{recent[len(recent) // 2]:.1f} ms" if recent else "-"
        self.live.update(f"  {self.stage.label()}  {time.monotonic() - self.t0:5.1f} s  done {p.done}  "
                         f"in flight {p.inflight}  errors {p.errors}  TTFT p50 {p50}", refresh=True)

    def close(self) -> None:
        self.live.stop()


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def show(report: PerfReport, ui) -> None:
    """The final table on stderr (stdout stays free for --json); -q keeps it: it is what --perf is for."""
    from rich.table import Table

    title = "perf" + ("" if report.complete else " (INCOMPLETE)") + (
        " via port-forward" if report.environment.get("via_port_forward") else "")
    t = Table(title=title)
    t.caption = ("times in ms; TTFT/E2E p50/p99; tok/s = output tokens/s; q99 = client queue delay p99; "
                 "good = goodput (req/s meeting --slo); CPU = busiest client process")
    for col in ("stage", "ok/fail", "req/s", "tok/s", "TTFT", "ITL50", "TPOT50", "E2E", "q99", "good", "CPU"):
        t.add_column(col, justify="right" if col != "stage" else "left", no_wrap=True)
    for s in report.stages:
        r, th = s["requests"], s["throughput"]
        good = s.get("slo", {}).get("goodput")
        t.add_row(s["label"], f"{r['ok']}/{r['failed']}", _fmt(th["request_rate"]), _fmt(th["output_token_rate"]),
                  f"{_fmt(s['ttft_ms']['p50'])}/{_fmt(s['ttft_ms']['p99'])}", _fmt(s["itl_ms"]["p50"]),
                  _fmt(s["tpot_ms"]["p50"]), f"{_fmt(s['e2e_ms']['p50'])}/{_fmt(s['e2e_ms']['p99'])}",
                  _fmt(s["queue_ms"]["p99"]), "-" if good is None else _fmt(good),
                  f"{s['client']['cpu_per_core_max']:.0%}")
    if ui.err.is_terminal:
        ui.render(t)
    else:  # a log file or CI has no line width: never truncate numbers
        width = ui.err.width
        ui.err.width = max(width, 132)
        try:
            ui.render(t)
        finally:
            ui.err.width = width
    hits = [f"{s['label']} {c['hit_rate']:.1%}" for s in report.stages
            if (c := s["tokens"].get("cached")) and c.get("hit_rate") is not None]
    # 0% says something for shared-prefix only; elsewhere it is noise from servers that always report the field
    if hits and (report.config.get("workload") == "shared-prefix" or any(
            (s["tokens"].get("cached") or {}).get("cached_tokens") for s in report.stages)):
        # from usage.prompt_tokens_details.cached_tokens: what prefix-aware routing buys shows here
        ui.info("prefix cache: " + ", ".join(h + " of prompt tokens cached" for h in hits))
    for s in report.stages:
        if s["failures"]:
            ui.warn(f"{s['label']}: failures " + ", ".join(f"{k} {v}" for k, v in s["failures"].items())
                    + (f" (429 shed rate {s['shed_429'] / max(1, s['requests']['measured']):.1%})"
                       if s["shed_429"] else ""))
    for w in report.warnings:
        ui.warn(w)
    for b in report.breaches:
        ui.error(b)
    if report.files.get("json"):
        ui.result(f"report ({SCHEMA}): {report.files.get('json')}" + (
            f", records CSV: {report.files['csv']}" if report.files.get("csv") else ""))
    if report.files.get("benchmark_report"):  # one file per stage, named after it: not the path the user gave
        ui.info("benchmark reports (v0.2): " + ", ".join(report.files["benchmark_report"]))
